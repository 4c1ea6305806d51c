"""The continuous model in a real browser: the span positions move through the embedding view step by step, and
the replay draws them as they were (a second app, serving a tiny continuous bundle)."""
import pytest

from .test_browser import ARGS, CHROMIUM, SHOTS, WAIT_MS, open_app, set_steps


@pytest.fixture(scope="module")
def continuous_url(trained, corpus, tokenizer_dir, tmp_path_factory):
    import torch

    from edlm.bundle import export_bundle
    from edlm.train import TrainConfig, train

    from ..conftest import TINY
    from .conftest import serve

    model = train(TrainConfig(kind="denoiser", out_dir=str(tmp_path_factory.mktemp("continuous")),
                              corpus=str(corpus), tokenizer=str(tokenizer_dir), max_steps=40, lr=3e-3,
                              process="continuous", **TINY))
    parts = {"tokenizer": tokenizer_dir, "denoiser": model, "ar": trained["ar"], "judge": trained["ar"]}
    folder = export_bundle(parts, tmp_path_factory.mktemp("bundle") / "tiny-continuous", dtype=torch.float32)
    yield from serve(folder, tmp_path_factory.mktemp("gradio-cache"), [])


TITLE = "(document.querySelector('#edlm-reveal .gtitle') || {}).textContent || ''"


def test_the_points_move_toward_words_live_and_in_the_replay(continuous_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        open_app(page, continuous_url)
        page.locator("#edlm-text textarea").fill("The [MASK:6] of the Union is strong.")
        set_steps(page, 6)
        page.locator("#edlm-generate").click()
        page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('done')", timeout=WAIT_MS)
        page.get_by_role("tab", name="Watch").click()
        page.wait_for_function(f"({TITLE}).includes('step 6 of 6') && ({TITLE}).includes('embedding space')",
                               timeout=WAIT_MS)
        labels = page.locator("#edlm-reveal .textpoint").count()
        assert labels == 6  # each span position labelled with its nearest word
        result = page.locator("#edlm-result textarea").input_value()
        assert result.startswith("The ") and result.endswith(" of the Union is strong.")
        page.locator("#edlm-step-back").click()
        page.wait_for_function(f"({TITLE}).includes('step 5 of 6')", timeout=WAIT_MS)
        page.locator("#edlm-step-back").click()
        page.wait_for_function(f"({TITLE}).includes('step 4 of 6')", timeout=WAIT_MS)
        page.locator("#edlm-play").click()  # the replay plays the points forward to the end
        page.wait_for_function(f"({TITLE}).includes('step 6 of 6')", timeout=WAIT_MS)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#edlm-reveal").screenshot(path=str(SHOTS / "embedding_view.png"))
        browser.close()
