"""The README's screenshots, one per journey, taken from a running app with Debian's Chromium (Playwright).

    python app.py &                        # the app on its default models
    python scripts/screenshots.py --url http://127.0.0.1:7860/ --out docs

Writer journeys (fill, variants beside the result, a phone) run on the general model where it is installed;
teacher journeys (replay, the guided IS step, top tokens, Compare) on the embedded diffusion model `default`,
and the embedding view on `continuous`.
Seeds are fixed, so the same models give the same pictures.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

WAIT = 300_000  # ms: a safety net; every wait is for a signal of the page
WRITER_TEXT = ("Thanks for the [MASK:6] last week. The kids loved the pool, and we finally [MASK:8] before the rain "
               "started.")
TEACHER_TEXT = "The [MASK:8] of the Union is strong, and our [MASK:6] grows every year."


def choose(page, elem: str, value: str) -> None:
    box = page.locator(f"#{elem} input")
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(300)


def settings(page, seed: int = 7, steps: int | None = None) -> None:
    """Fix the seed (and steps) in the folded settings."""
    if not page.locator("#edlm-seed input[type=number]").is_visible():
        page.get_by_text("Settings: sampler").click()
    for elem, value in (("edlm-seed", seed), ("edlm-steps", steps)):
        if value is not None:
            box = page.locator(f"#{elem} input[type=number]")
            box.fill(str(value))
            box.press("Tab")
    keep = page.locator("#edlm-keep-seed input")
    if not keep.is_checked():
        keep.check()
    page.get_by_text("Settings: sampler").click()  # fold them again


def use_model(page, name: str) -> None:
    choose(page, "edlm-model", name)
    page.wait_for_function("document.querySelector('#edlm-model-note').innerText.length > 0", timeout=WAIT)
    page.wait_for_timeout(1000)


def generate(page, text: str) -> None:
    before = page.locator("#edlm-status").inner_text()
    page.locator("#edlm-text textarea").fill(text)
    page.locator("#edlm-generate").click()
    page.wait_for_function(f"(s => s !== {before!r} && s.includes('done') && !s.includes('processing'))"
                           "(document.querySelector('#edlm-status').innerText)", timeout=WAIT)
    page.wait_for_timeout(1500)  # the views that follow a run (lesson, tokens) are filled after it


def writer_journey(page, model: str) -> None:
    """The writer's fill with a fixed seed, then four variants under it."""
    use_model(page, model)
    settings(page)
    generate(page, WRITER_TEXT)
    page.locator("#edlm-variants").click()
    page.wait_for_selector("#edlm-use-3", state="visible", timeout=WAIT)
    page.wait_for_function("document.querySelector('#edlm-variant-box').innerText.includes('best first')",
                           timeout=WAIT)


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860/")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--writer-model", default="general", help="model for the writer's journeys")
    ap.add_argument("--teacher-model", default="default", help="model for the teacher's journeys")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(args.url)
        page.wait_for_selector("#edlm-ready [data-ready]", state="attached", timeout=WAIT)

        # Writer: a fill, then four variants beside it, each span's fill coloured
        writer_journey(page, args.writer_model)
        page.screenshot(path=str(out / "writer.png"), full_page=True, clip=dict(x=0, y=0, width=1280, height=1250))

        # Phone: the same page at 390x844, variants right under the result
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(args.url)
        phone.wait_for_selector("#edlm-ready [data-ready]", state="attached", timeout=WAIT)
        writer_journey(phone, args.writer_model)
        phone.evaluate("document.querySelector('#edlm-result').scrollIntoView({block: 'start'})")
        phone.wait_for_timeout(500)
        phone.screenshot(path=str(out / "phone.png"))
        phone.close()

        # Teacher: a replay part way, the guided IS step at its last stage, the top tokens of a clicked word
        use_model(page, args.teacher_model)
        settings(page, seed=3, steps=16)
        generate(page, TEACHER_TEXT)
        page.get_by_role("tab", name="Watch").click()
        replay = page.locator("#edlm-replay input[type=number]")
        replay.fill("6")
        replay.press("Enter")
        page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('replay: step 6')",
                               timeout=WAIT)
        page.wait_for_timeout(1000)
        page.locator("#edlm-tab-watch").screenshot(path=str(out / "teacher.png"))
        page.locator("#edlm-lesson").get_by_text("Lesson: one importance-sampling step").click()
        for _ in range(4):
            page.locator("#edlm-lesson-next").click()
            page.wait_for_timeout(400)
        page.wait_for_function("(document.querySelector('#edlm-lesson-view') || {innerText: ''}).innerText"
                               ".includes('Stage 5')", timeout=WAIT)
        page.locator("#edlm-lesson").screenshot(path=str(out / "lesson.png"))
        page.locator("#edlm-tokens").get_by_text("What the model hesitated between").click()
        page.locator("#edlm-token-chips .token-container").nth(1).click()
        page.wait_for_function("(document.querySelector('#edlm-top-tokens .gtitle') || {}).textContent"
                               "?.includes('top tokens')", timeout=WAIT)
        page.wait_for_timeout(500)
        page.locator("#edlm-tokens").screenshot(path=str(out / "top_tokens.png"))

        # Compare: both samplers, then replayed at a middle step
        page.get_by_role("tab", name="Compare").click()
        page.locator("#edlm-compare").click()
        page.wait_for_selector("#edlm-cmp-replay", state="visible", timeout=WAIT)
        step = page.locator("#edlm-cmp-replay input[type=number]")
        step.fill("8")
        step.press("Enter")
        page.wait_for_function("document.querySelector('#edlm-tab-compare').innerText.includes('replay: step 8')",
                               timeout=WAIT)
        page.wait_for_timeout(1000)
        page.locator("#edlm-tab-compare").screenshot(path=str(out / "compare.png"))

        # Continuous noise: the span positions' points in embedding space, replayed part way
        page.get_by_role("tab", name="Watch").click()
        use_model(page, "continuous")
        settings(page, seed=3, steps=16)
        generate(page, TEACHER_TEXT)
        replay = page.locator("#edlm-replay input[type=number]")
        replay.fill("10")
        replay.press("Enter")
        page.wait_for_function("(document.querySelector('#edlm-reveal .gtitle') || {}).textContent"
                               "?.includes('step 10 of 16')", timeout=WAIT)
        page.wait_for_timeout(1000)
        page.locator("#edlm-reveal").screenshot(path=str(out / "embedding_view.png"))
        browser.close()
    for name in ("writer", "phone", "teacher", "lesson", "top_tokens", "compare", "embedding_view"):
        print(out / f"{name}.png", (out / f"{name}.png").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
