"""Input widgets whose values reach the handler unchecked (`edlm.limits.validate` checks them and names the
setting in one line), and `setting_widget`, which builds a sampling setting's widget from its schema."""
from __future__ import annotations

import gradio as gr

from edlm.limits import SETTING, choices


class Slider(gr.Slider):
    """A slider whose value reaches the handler unchecked: `edlm.limits.validate` checks it and answers with one
    line naming the setting (Gradio's own range check prints a traceback to the log and words it its own way)."""

    def preprocess(self, payload):
        return payload


class Number(gr.Number):
    """A number box whose value reaches the handler unchecked (see Slider)."""

    def preprocess(self, payload):
        return payload


def Choice(choices: list[str], **kw) -> gr.Dropdown:  # noqa: N802 (a component factory)
    """A dropdown whose value is checked by the handler, not by Gradio (same reason as Slider)."""
    return gr.Dropdown(choices, allow_custom_value=True, **kw)


def setting_widget(name: str, value=None, **kw):
    """The control of one sampling setting, built from its schema in `edlm.limits.SETTINGS`: its kind, label,
    hint, the range its slider spans, and for a choice the names registered now (a newly registered sampler or
    unmask order appears without touching the page). `kw` overrides any of them (label, info, elem_id, ...)."""
    st = SETTING[name]
    kw.setdefault("label", st.label or name.replace("_", " ").capitalize())
    kw.setdefault("info", st.hint or _choice_hint(st) or st.help)
    value = st.default if value is None else value
    if st.control == "choice":
        return Choice(list(choices(st.choices)), value=value, **kw)
    if st.control == "checkbox":
        return gr.Checkbox(value=value, **kw)
    if st.control == "number":
        return Number(value=value, **kw)
    lo, hi, step = st.widget or (st.lo, st.hi, 1 if st.kind is int else 0.05)
    return Slider(lo, hi, value=value, step=step, **kw)


def _choice_hint(st) -> str:
    """For the sampler: each registered sampler in a few words."""
    if st.choices != "sampler":
        return ""
    from edlm.samplers import SAMPLERS

    return " · ".join(f"{n}: {s.short or s.help}" for n, s in SAMPLERS.items())
