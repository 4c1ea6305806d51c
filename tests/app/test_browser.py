"""A real browser (Debian's Chromium driven by Playwright, no browser download) types a span, generates, and
sees the live text and the charts."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _install_chromium() -> None:
    """Test set-up: Debian's Chromium from the package registry, when we may install system packages."""
    if shutil.which("chromium") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    subprocess.run("apt-get update -qq && apt-get install -y -qq chromium chromium-driver", shell=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


_install_chromium()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
# Every wait is for a signal of the app (its readiness marker, a status line); the time limit is only a safety net,
# generous because CI's machine may be busy (at a load of 8 on 2 cores a page took over 30 s to connect).
WAIT_MS = int(float(os.environ.get("EDLM_TEST_WAIT_SECONDS", "300")) * 1000)
SHOTS = Path(os.environ.get("EDLM_SCREENSHOTS", Path(__file__).resolve().parents[2] / "results" / "screenshots"))

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium for the browser test (see .ci/run)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def open_app(page, url: str) -> None:
    """Load the app and wait for its readiness signal: the page is connected and its buttons answer."""
    page.goto(url)
    page.wait_for_selector("#edlm-ready [data-ready]", state="attached", timeout=WAIT_MS)


def set_steps(page, n: int) -> None:
    """Type a step count into the settings (opening them first: they start folded)."""
    steps = page.locator("#edlm-steps input[type=number]")
    if not steps.is_visible():
        page.get_by_text("Settings: sampler").click()
        steps.wait_for(state="visible", timeout=WAIT_MS)
    slider = page.locator("#edlm-steps input[type=range]")
    for _ in range(3):  # a late re-render of a freshly loaded page can reset a value typed too early: type again
        steps.fill(str(n))
        steps.press("Tab")  # leaving the box commits the value, as a person's next click does
        try:
            page.wait_for_function(f"document.querySelector('#edlm-steps input[type=range]').value === '{n}'",
                                   timeout=5_000)
        except Exception:
            continue
        page.wait_for_timeout(300)
        if slider.input_value() == str(n) and steps.input_value() == str(n):
            return
    raise AssertionError(f"the steps setting did not take {n}: it shows {steps.input_value()}")


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        open_app(page, app_url)
        yield page
        browser.close()


def test_type_generate_and_see_the_plots(page):
    box = page.locator("#edlm-text textarea")
    box.fill("Gentlemen of the Senate and of the [MASK:5] of Representatives, the [MASK:4] is at peace.")
    page.locator("#edlm-generate").click()
    page.wait_for_selector("#edlm-weights .js-plotly-plot", timeout=WAIT_MS)
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('done')", timeout=WAIT_MS)
    live = page.locator("#edlm-live").inner_text()
    assert "Gentlemen of the Senate and of the" in live and "is at peace." in live and "▒" not in live
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "app.png"), full_page=True)
    assert (SHOTS / "app.png").stat().st_size > 10_000


def test_ctrl_enter_in_the_text_box_runs_generate(page):
    box = page.locator("#edlm-text textarea")
    box.fill("We hold these [MASK:3] to be self-evident.")
    box.press("Control+Enter")  # this run's own end: all 3 of its tokens (the last run filled 9)
    page.wait_for_function("(s => s.includes('3 of 3 tokens filled') && s.includes('done'))"
                           "(document.querySelector('#edlm-status').innerText)", timeout=WAIT_MS)
    assert box.input_value() == "We hold these [MASK:3] to be self-evident."  # no line break typed into it
    done = page.locator("#edlm-status").inner_text()
    page.wait_for_timeout(1500)
    assert page.locator("#edlm-status").inner_text() == done  # one press, one run (no second one after it)
    result = page.locator("#edlm-result textarea").input_value()
    assert result.startswith("We hold these ") and result.endswith(" to be self-evident.") and "[MASK" not in result


def test_mask_selection_button(page):
    box = page.locator("#edlm-text textarea")
    box.fill("We hold these truths to be self-evident.")
    box.evaluate("el => { el.focus(); el.setSelectionRange(3, 7); }")  # "hold"
    page.get_by_role("button", name="Mask selection").click()
    page.wait_for_function("document.querySelector('#edlm-text textarea').value.includes('[MASK:')",
                           timeout=WAIT_MS)
    value = box.input_value()
    assert value.startswith("We [MASK:") and value.endswith("] these truths to be self-evident.")


def test_closing_the_page_ends_its_run(page, app_url, app_log):
    """A closed tab sends no Stop: the server notices the dropped connection and ends the run."""
    from .test_client import stopped_runs, wait_for_stopped

    tab = page.context.browser.new_page(viewport={"width": 1400, "height": 1800})  # a second tab, own session
    open_app(tab, app_url)
    tab.locator("#edlm-text textarea").fill(" ".join(["[MASK:40] and the nation"] * 6))
    set_steps(tab, 256)
    tab.locator("#edlm-generate").click()
    tab.wait_for_function("document.querySelector('#edlm-status').innerText.includes('/ 3072')", timeout=WAIT_MS)
    before = len(stopped_runs(app_log))
    tab.close()
    line = wait_for_stopped(app_log, before)
    assert int(line.split(" step events")[0].split()[-1]) < 3072


def test_stop_button_halts_the_run(page, app_log):
    """Stop ends the run as a normal end: no error badge, the partial text in the result with the still-masked
    stretches as [MASK:n] (the writer's text intact around them), the stopped run kept for the replay."""
    from .test_client import stopped_runs, wait_for_stopped

    box = page.locator("#edlm-text textarea")
    box.fill(" ".join(["[MASK:40] and the people"] * 6))
    set_steps(page, 256)  # a run of thousands of steps, so Stop arrives long before the end
    page.locator("#edlm-generate").click()
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('of 240 tokens filled')",
                           timeout=WAIT_MS)
    before = len(stopped_runs(app_log))
    running = page.locator("#edlm-status").inner_text()
    # A page busy with a long stream is slow to take input on a loaded machine: allow it the time.
    page.locator("#edlm-stop").click(timeout=WAIT_MS, no_wait_after=True)
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('stopped at step')",
                           timeout=WAIT_MS)
    first = page.locator("#edlm-status").inner_text()
    page.wait_for_timeout(2500)  # and no late step of the stopped run overwrites it
    assert "/ 3072" in running  # 12 windows x 256 steps: the long run really started
    assert page.locator("#edlm-status").inner_text() == first and "done" not in first
    assert "Error" not in page.locator("#edlm-status").inner_text()
    assert "Error" not in page.locator("#edlm-result").inner_text()
    result = page.locator("#edlm-result textarea").input_value()
    assert result.count(" and the people") == 6 and "[MASK:" in result and "[MASK][MASK]" not in result
    assert page.locator("#edlm-replay").is_visible()  # the stopped run can be replayed
    line = wait_for_stopped(app_log, before)
    assert "run stopped (Stop)" in line and int(line.split(" step events")[0].split()[-1]) < 3072  # server too


def test_writer_flow_result_copy_variants_use_and_rewrite(page):
    """At a laptop's 1280x900 the result appears beside the text without scrolling; copy gives the plain text;
    variants show distinct fills; "use this" puts one into the input; rewriting a selected word of the result
    refills only that word."""
    page.set_viewport_size({"width": 1280, "height": 900})
    set_steps(page, 32)
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#edlm-text textarea")
    box.fill("Gentlemen of the Senate, the [MASK:5] is at peace with all nations.")
    page.locator("#edlm-generate").click()
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('done')", timeout=WAIT_MS)
    result = page.locator("#edlm-result textarea")
    text = result.input_value()
    assert text.startswith("Gentlemen of the Senate, the ") and text.endswith(" is at peace with all nations.")
    top = result.bounding_box()
    assert top is not None and top["y"] + top["height"] <= 900 and page.evaluate("window.scrollY") == 0

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#edlm-result button[aria-label*='opy'], #edlm-result button[title*='opy']").first.click()
    assert page.evaluate("navigator.clipboard.readText()") == text

    page.locator("#edlm-variants").click()
    page.wait_for_selector("#edlm-use-3", state="visible", timeout=WAIT_MS)
    fills = [variant_text(page, i) for i in range(4)]
    assert len(set(fills)) > 1 and all(f.endswith(" is at peace with all nations.") for f in fills)
    assert not page.locator("#edlm-variant-4").is_visible()
    page.locator("#edlm-use-2").click()
    page.wait_for_function(f"document.querySelector('#edlm-text textarea').value === {fills[2]!r}",
                           timeout=WAIT_MS)

    # Rewrite one word of the result: select "peace" in the result box.
    start = text.index("peace")
    result.evaluate(f"el => {{ el.focus(); el.setSelectionRange({start}, {start + 5}); }}")
    before = page.locator("#edlm-status").inner_text()
    page.locator("#edlm-rewrite").click()
    page.wait_for_function("document.querySelector('#edlm-text textarea').value.includes('[MASK:')",
                           timeout=WAIT_MS)
    masked = box.input_value()
    assert masked.startswith(text[:start] + "[MASK:") and masked.endswith("]" + text[start + 5:])
    page.wait_for_function(f"(s => s !== {before!r} && s.includes('done'))"
                           "(document.querySelector('#edlm-status').innerText)", timeout=WAIT_MS)
    again = result.input_value()
    assert again.startswith(text[:start]) and again.endswith(text[start + 5:])
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "writer.png"))

    # Undo walks back through what the page replaced (the rewrite's masked text, then the variant), Redo forward.
    page.locator("#edlm-undo").click()
    page.wait_for_function(f"document.querySelector('#edlm-text textarea').value === {fills[2]!r}",
                           timeout=WAIT_MS)
    page.locator("#edlm-redo").click()
    page.wait_for_function(f"document.querySelector('#edlm-text textarea').value === {masked!r}", timeout=WAIT_MS)


def variant_text(page, i: int) -> str:
    """A variant card's text as the writer reads it (its chips' words, without the span labels)."""
    return page.evaluate(f"""() => [...document.querySelectorAll('#edlm-variant-{i} .token-container')]
        .map(c => c.querySelector('.text') ? c.querySelector('.text').textContent : c.textContent).join('')""")


def test_variants_beside_the_result_and_keeping_one_spans_fill(page):
    """Variants appear right under the result, each span's fill coloured; Keep takes one span's fill from one
    variant into the text and leaves the other span masked, so Generate retries only it; Undo takes it back."""
    page.set_viewport_size({"width": 1280, "height": 900})
    box = page.locator("#edlm-text textarea")
    text = "The [MASK:4] of the Union is strong, and our [MASK:5] grows every year."
    box.fill(text)
    page.locator("#edlm-generate").click()
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('done')", timeout=WAIT_MS)
    page.locator("#edlm-variants").click()
    page.wait_for_function("(document.querySelector('#edlm-variant-1') || {}).textContent?.includes('grows every "
                           "year') && document.querySelector('#edlm-variant-box').innerText.includes('best first')",
                           timeout=WAIT_MS)  # this text's variants, not an earlier test's
    result, card = page.locator("#edlm-result").bounding_box(), page.locator("#edlm-variant-0").bounding_box()
    examples = page.locator("#edlm-examples").bounding_box()
    assert result["y"] < card["y"] < examples["y"] and abs(card["x"] - result["x"]) < 40  # in the result's column
    fills = dict(page.evaluate("""() => [...document.querySelectorAll('#edlm-variant-1 .token.highlighted')]
        .map(t => [t.querySelector('.label').textContent, t.querySelector('.text').textContent])"""))
    assert set(fills) <= {"span 1", "span 2"} and fills  # the fills are coloured and labelled, fixed text is not
    assert page.locator("#edlm-variant-1 .token:not(.highlighted)").count() >= 2
    span = "span 1" if "span 1" in fills else "span 2"  # keep a fill that is there (a tiny model may write "")
    marker, other, left = ("[MASK:4]", "[MASK:5]", 5) if span == "span 1" else ("[MASK:5]", "[MASK:4]", 4)
    page.locator("#edlm-keep-span input").fill(span)
    page.locator("#edlm-keep-span input").press("Enter")
    page.locator("#edlm-keep-from input").fill("#2")
    page.locator("#edlm-keep-from input").press("Enter")
    page.locator("#edlm-keep").click()
    kept = text.replace(marker, fills[span])
    page.wait_for_function(f"document.querySelector('#edlm-text textarea').value === {kept!r}", timeout=WAIT_MS)
    before = page.locator("#edlm-status").inner_text()
    page.locator("#edlm-generate").click()
    page.wait_for_function(f"(s => s !== {before!r} && s.includes('{left} of {left} tokens filled') && "
                           "s.includes('done'))(document.querySelector('#edlm-status').innerText)", timeout=WAIT_MS)
    head, tail = kept.split(other)  # only the other span was filled again; the kept fill stays as it was
    result = page.locator("#edlm-result textarea").input_value()
    assert result.startswith(head) and result.endswith(tail)
    page.locator("#edlm-undo").click()
    page.wait_for_function(f"document.querySelector('#edlm-text textarea').value === {text!r}", timeout=WAIT_MS)


def test_a_selection_becomes_a_span_of_words(page):
    box = page.locator("#edlm-text textarea")
    box.fill("We hold these truths to be self-evident.")
    page.locator("#edlm-span-length input").fill("let the model choose")
    page.locator("#edlm-span-length input").press("Enter")
    box.evaluate("el => { el.focus(); el.setSelectionRange(14, 20); }")  # "truths"
    page.locator("#edlm-mask").click()
    page.wait_for_function("document.querySelector('#edlm-text textarea').value === "
                           "'We hold these [MASK] to be self-evident.'", timeout=WAIT_MS)
    page.locator("#edlm-span-length input").fill("as selected")
    page.locator("#edlm-span-length input").press("Enter")


LESSON = "(document.querySelector('#edlm-lesson-view') || {innerText: ''}).innerText"  # (rendered once opened)


def set_delay(page, seconds: float) -> None:
    """The delay per step (Watch tab), typed and committed."""
    box = page.locator("#edlm-delay input[type=number]")
    box.fill(str(seconds))
    box.press("Tab")
    page.wait_for_function(f"Number(document.querySelector('#edlm-delay input[type=range]').value) === {seconds}",
                           timeout=WAIT_MS)


def run_eight_steps(page) -> None:
    """A finished 8-step run of one 8-token span at a laptop's size, the Watch tab open (steps left at 8)."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#edlm-text textarea").fill("The [MASK:8] of the Union is strong.")
    set_steps(page, 8)
    before = page.locator("#edlm-status").inner_text()  # an earlier test's run may have ended with the same words
    page.locator("#edlm-generate").click()
    page.wait_for_function(f"(s => s !== {before!r} && s.includes('8 of 8 tokens filled') && s.includes('done'))"
                           "(document.querySelector('#edlm-status').innerText)", timeout=WAIT_MS)
    page.get_by_role("tab", name="Watch").click()


def test_the_teachers_lesson_step_buttons_guided_step_and_top_tokens(page):
    """After a run: the step buttons walk the replay; the guided view shows one IS step stage by stage (the kept
    candidate marked at stage 4); clicking a filled word charts the denoiser's top tokens there."""
    run_eight_steps(page)
    page.locator("#edlm-step-back").click()
    page.wait_for_function("document.querySelector('#edlm-status').innerText.match(/replay: step (\\d+) of "
                           "(\\d+)/) && RegExp.$1 !== RegExp.$2", timeout=WAIT_MS)
    shown = page.locator("#edlm-status").inner_text()
    page.locator("#edlm-step-forward").click()
    page.wait_for_function(f"document.querySelector('#edlm-status').innerText !== {shown!r}", timeout=WAIT_MS)

    page.locator("#edlm-lesson").get_by_text("Lesson: one importance-sampling step").click()
    page.wait_for_function(f"{LESSON}.includes('stage 1')",
                           timeout=WAIT_MS)
    for _ in range(4):
        page.locator("#edlm-lesson-next").click()
        page.wait_for_timeout(300)
    page.wait_for_function(f"{LESSON}.includes('Stage 5')",
                           timeout=WAIT_MS)
    assert page.locator("#edlm-lesson-view tr.edlm-kept").count() == 1
    page.locator("#edlm-lesson-view").scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#edlm-lesson").screenshot(path=str(SHOTS / "lesson.png"))

    page.locator("#edlm-tokens").get_by_text("What the model hesitated between").click()
    chip = page.locator("#edlm-token-chips .token-container").nth(1)  # the first filled token after "The "
    chip.wait_for(state="visible", timeout=WAIT_MS)
    chip.click()
    page.wait_for_function("(document.querySelector('#edlm-top-tokens .gtitle') || {}).textContent"
                           "?.includes(\"the model's top tokens\")", timeout=WAIT_MS)
    page.locator("#edlm-tokens").screenshot(path=str(SHOTS / "top_tokens.png"))
    set_steps(page, 32)


def test_compare_replays_and_stops_like_the_main_view(page, app_log):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#edlm-text textarea").fill("The [MASK:8] of the Union is strong.")
    set_steps(page, 8)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#edlm-compare").click()
    page.wait_for_selector("#edlm-cmp-replay", state="visible", timeout=WAIT_MS)
    page.locator("#edlm-cmp-back").click()
    page.wait_for_function("document.querySelector('#edlm-tab-compare').innerText.includes('replay: step')",
                           timeout=WAIT_MS)
    page.locator("#edlm-cmp-play").click()
    page.wait_for_function("document.querySelector('#edlm-tab-compare').innerText.match(/replay: step (\\d+) of "
                           "\\1\\b/)", timeout=WAIT_MS)
    # a long comparison, stopped: both sides end normally and say where (slowed down, as a teacher would, so the
    # page is not flooded with two texts' updates at the tiny model's hundreds of steps a second)
    page.locator("#edlm-text textarea").fill(" ".join(["[MASK:40] and the nation"] * 3))
    set_steps(page, 256)
    page.get_by_role("tab", name="Watch").click()
    set_delay(page, 0.05)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#edlm-compare").click()
    page.wait_for_function("/step \\d+ \\/ (\\d{3,})/.test(document.querySelector('#edlm-tab-compare').innerText)",
                           timeout=WAIT_MS)  # running, hundreds of steps to go
    page.locator("#edlm-compare-stop").click()
    page.wait_for_function("document.querySelector('#edlm-tab-compare').innerText.includes('stopped at step')",
                           timeout=WAIT_MS)
    assert page.locator("#edlm-tab-compare .error, #edlm-tab-compare [data-testid=error]").count() == 0
    set_steps(page, 32)
    page.get_by_role("tab", name="Watch").click()  # the page as the other tests expect it
    set_delay(page, 0)


def test_replay_slider_and_play_show_earlier_steps(page):
    run_eight_steps(page)
    page.wait_for_selector("#edlm-replay", state="visible", timeout=WAIT_MS)
    # the finished text (the live view renders the run's last update a moment after the status line)
    page.wait_for_function("!document.querySelector('#edlm-live').innerText.includes('▒')", timeout=WAIT_MS)
    number = page.locator("#edlm-replay input[type=number]")
    number.fill("1")
    number.press("Enter")
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('replay: step 1 of')",
                           timeout=WAIT_MS)
    assert "▒" in page.locator("#edlm-live").inner_text()
    page.locator("#edlm-play").click()  # plays on from step 1 to the end
    page.wait_for_function("document.querySelector('#edlm-status').innerText.match(/replay: step (\\d+) of \\1\\b/)",
                           timeout=WAIT_MS)
    assert "▒" not in page.locator("#edlm-live").inner_text()
    set_steps(page, 32)


def test_on_a_phone_the_result_comes_right_after_the_text(page, app_url):
    """390x844: the result box sits under the text and its buttons, before the examples; the candidates table
    fits the screen (no column cut off)."""
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
    open_app(phone, app_url)
    result, examples = phone.locator("#edlm-result").bounding_box(), phone.locator("#edlm-examples").bounding_box()
    generate = phone.locator("#edlm-generate").bounding_box()
    assert generate["y"] < result["y"] < examples["y"]
    label = phone.locator("#edlm-result [data-testid=block-info]").bounding_box()
    copy = phone.locator("#edlm-result button[aria-label*=opy]").bounding_box()
    assert label and copy and (label["x"] + label["width"] <= copy["x"] or label["y"] + label["height"] <= copy["y"])
    tabs = phone.evaluate("() => [...document.querySelectorAll('button[role=tab]')].map(b => b.innerText)")
    assert tabs == ["Watch", "Compare", "Augment"]  # all three on the bar, none behind a "more tabs" menu
    phone.get_by_role("tab", name="Watch").click()
    table = phone.locator("#edlm-cands").bounding_box()
    assert table["x"] >= 0 and table["x"] + table["width"] <= 390
    phone.close()


def test_the_denoising_view_never_breaks_a_line_inside_a_word(page, app_url):
    """At a phone's width the live text wraps like text: two pieces with no space between them (a word's pieces,
    a word and its comma) always share a line."""
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
    open_app(phone, app_url)
    phone.locator("#edlm-text textarea").fill("The waiter recommended the [MASK:30], and the soup, which was "
                                              "[MASK:20]; everyone agreed it was remarkable.")
    set_steps(phone, 8)
    phone.locator("#edlm-generate").click()
    phone.wait_for_function("document.querySelector('#edlm-status').innerText.includes('done')", timeout=WAIT_MS)
    phone.get_by_role("tab", name="Watch").click()
    replay = phone.locator("#edlm-replay input[type=number]")  # a step half way: pieces of many kinds
    replay.fill("4")
    replay.press("Tab")
    phone.wait_for_function("document.querySelector('#edlm-status').innerText.includes('replay: step 4')",
                            timeout=WAIT_MS)
    broken = phone.evaluate("""() => {
      const chips = [...document.querySelectorAll('#edlm-live .token-container')];
      const out = [];
      for (let i = 1; i < chips.length; i++) {
        const a = chips[i - 1], b = chips[i];
        if (/\\s$/.test(a.innerText) || /^\\s/.test(b.innerText)) continue;
        const ra = [...a.getClientRects()].pop(), rb = b.getClientRects()[0];
        if (ra && rb && Math.abs(ra.top - rb.top) > 2) out.push(a.innerText + '|' + b.innerText);
      }
      return [chips.length, out];
    }""")
    phone.close()
    assert broken[0] > 10 and broken[1] == [], broken


def test_generate_again_draws_a_new_seed_and_the_run_downloads(page):
    """Pressing Generate again retries with a new seed (shown), unless the writer keeps it; the finished run
    downloads as JSON and as a GIF from the Watch tab."""
    import re

    page.locator("#edlm-text textarea").fill("The [MASK:6] of the Union is strong.")
    shown = re.search(r"seed (\d+)", page.locator("#edlm-status").inner_text())  # an earlier test's run, if any
    seeds = [shown.group(1) if shown else "none yet"]
    for _ in range(2):  # each run's status names its seed: wait for one other than the last run's
        page.locator("#edlm-generate").click()
        page.wait_for_function(f"(s => /seed \\d+/.test(s) && !s.includes('seed {seeds[-1]} ') && s.includes('done')"
                               " && !s.includes('processing'))(document.querySelector('#edlm-status').innerText)",
                               timeout=WAIT_MS)
        seeds.append(re.search(r"seed (\d+)", page.locator("#edlm-status").inner_text()).group(1))
    assert len(set(seeds)) == 3  # two presses, two new seeds
    page.get_by_role("tab", name="Watch").click()
    for button, name in (("#edlm-export", "edlm-run.json"), ("#edlm-export-gif", "edlm-run.gif")):
        page.locator(button).click()
        page.wait_for_function(f"[...document.querySelectorAll('#edlm-export-file a')].some(a => "
                               f"(a.href || '').endsWith({name!r}))", timeout=WAIT_MS)


def test_the_augment_preview_fits_a_desktop_and_a_phone(page, app_url):
    """Every column of the preview is on screen, the variant first, and headers wrap by word, not by letter."""
    for width, height in ((1280, 900), (390, 844)):
        tab = page.context.browser.new_page(viewport={"width": width, "height": height})
        open_app(tab, app_url)
        tab.get_by_role("tab", name="Augment").click()
        tab.locator("#edlm-aug-lines textarea").fill("The state of the Union is strong and our people are free.\n"
                                                   "We shall pay the public debt in full and on time.")
        tab.locator("#edlm-aug-go").click()
        tab.wait_for_function("document.querySelector('#edlm-tab-augment').innerText.includes('variants kept')",
                              timeout=WAIT_MS)
        heads = tab.evaluate("""() => [...document.querySelectorAll('#edlm-aug-table th')].map(th => {
            const r = th.getBoundingClientRect(); return [th.innerText.trim(), r.left, r.right, r.height]; })""")
        heads = [h for h in heads if h[0]]
        assert [h[0] for h in heads][:2] == ["#", "variant"]
        assert all(0 <= left and right <= width + 1 for _, left, right, _ in heads), heads
        assert all(h[3] < 80 for h in heads), heads  # a header of one or two lines, never a letter per line
        tab.close()


def test_choosing_a_sampler_sets_its_own_settings(page):
    """The writer picks edlm-ar, then edlm-smc: the order, the IS window and the temperature follow each sampler's
    own settings (what `--sampler S` runs with), and the steps keep the writer's value."""
    from app.models import model_settings

    set_steps(page, 12)
    for name in ("edlm-ar", "edlm-smc"):
        want = model_settings("default", sampler=name)
        page.locator("#edlm-sampler input").click()  # the list opens; the writer clicks a sampler in it
        page.get_by_role("option", name=name, exact=True).click()
        page.wait_for_function(f"document.querySelector('#edlm-unmask input').value === {want['unmask']!r}",
                               timeout=WAIT_MS)
        assert float(page.locator("#edlm-is-window input[type=number]").input_value()) == want["is_window"]
        assert float(page.locator("#edlm-temperature input[type=number]").input_value()) == want["temperature"]
        assert page.locator("#edlm-steps input[type=number]").input_value() == "12"
    assert model_settings("default", sampler="edlm-ar")["unmask"] != model_settings("default")["unmask"]
    set_steps(page, 32)
