"""The page's controls are built from the settings' schema and wired to the handlers by parameter name."""
import gradio as gr
import pytest

from app import ui
from app.widgets import setting_widget
from edlm.limits import SETTING, SETTINGS


@pytest.fixture(scope="module")
def page():
    with ui.build() as demo:
        pass
    return demo


def controls(demo, label):
    return [c for c in demo.blocks.values() if getattr(c, "label", None) == label]


def test_every_slider_spans_its_schema_range_and_never_offers_an_invalid_value(page):
    for st in SETTINGS:
        found = controls(page, st.label)
        if st.control != "slider" or not found:
            continue
        lo, hi, step = st.widget or (st.lo, st.hi, 1)
        assert (found[0].minimum, found[0].maximum) == (lo, hi), st.name
        assert st.lo <= found[0].minimum and found[0].maximum <= st.hi, st.name
    assert controls(page, "Temperature")[0].maximum == SETTING["temperature"].widget[1]


def test_a_registered_unmask_order_appears_in_the_page_without_touching_it():
    from edlm import transitions

    @transitions.unmask_order("toy-left-first")
    def left_first(ctx):
        return ctx.masked

    try:
        with gr.Blocks():
            dropdown = setting_widget("unmask")
        assert "toy-left-first" in [v for _, v in dropdown.choices]
        from edlm.bench import parse_variant
        from edlm.limits import validate

        assert parse_variant("mdlm+toy-left-first", 8, 4, 0.5, 1.0, 0).unmask == "toy-left-first"  # bench variants
        assert validate(unmask="toy-left-first").unmask == "toy-left-first"  # the CLI's --unmask, the API
    finally:
        del transitions.UNMASK["toy-left-first"]


def test_inputs_follow_the_handlers_parameter_names():
    with gr.Blocks():
        boxes = {name: gr.Textbox(label=name) for name in ("text", "steps", "seed")}

    def handler(text, seed, steps, progress=None):
        pass

    assert ui.inputs_for(handler, boxes) == [boxes["text"], boxes["seed"], boxes["steps"]]
    with pytest.raises(TypeError, match="takes k, which the page has no control for"):
        ui.inputs_for(lambda text, k: None, boxes)


def test_every_setting_of_the_schema_reaches_the_handlers_and_the_page(page):
    import inspect

    from app.handlers import run_compare, run_infill, run_variants, with_every_setting

    names = {st.name for st in SETTINGS}
    for handler in (run_infill, run_variants):
        assert names <= set(inspect.signature(handler).parameters)
    assert names - {"sampler"} <= set(inspect.signature(run_compare).parameters)
    for st in SETTINGS:  # each has its control on the page, labelled from the schema
        assert controls(page, st.label), st.name

    @with_every_setting(exclude=("seed",))
    def toy(text, k=1, progress=None, **more):
        yield text, k, more

    params = list(inspect.signature(toy).parameters)
    assert params[:2] == ["text", "k"] and params[-1] == "progress" and "seed" not in params
    (text, k, more), = list(toy("t", 3, *[st.default for st in SETTINGS if st.name not in ("k", "seed")]))
    assert (text, k) == ("t", 3) and set(more) == names - {"k", "seed"}


def test_every_control_starts_at_the_default_models_own_settings(monkeypatch):
    """The page's controls (and so the API's defaults, which Gradio takes from them) start at the settings of the
    model the page opens on: the general model's untempered weights and temperature, not the library's."""
    monkeypatch.setattr(ui, "MODEL", "general")
    with ui.build() as demo:
        pass
    assert controls(demo, SETTING["target_ess"].label)[0].value == 0.0
    assert controls(demo, SETTING["temperature"].label)[0].value == 0.8
    assert controls(demo, SETTING["k"].label)[0].value == 16
