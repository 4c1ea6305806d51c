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
SHOTS = Path(os.environ.get("EDLM_SCREENSHOTS", Path(__file__).resolve().parents[2] / "results" / "screenshots"))

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium for the browser test (see .ci/run)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(app_url)
        page.wait_for_selector("#edlm-text textarea", timeout=60_000)
        yield page
        browser.close()


def test_type_generate_and_see_the_plots(page):
    box = page.locator("#edlm-text textarea")
    box.fill("Gentlemen of the Senate and of the [MASK:5] of Representatives, the [MASK:4] is at peace.")
    page.locator("#edlm-generate").click()
    page.wait_for_selector("#edlm-weights .js-plotly-plot", timeout=60_000)
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('done')", timeout=60_000)
    live = page.locator("#edlm-live").inner_text()
    assert "Gentlemen of the Senate and of the" in live and "is at peace." in live and "▒" not in live
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "app.png"), full_page=True)
    assert (SHOTS / "app.png").stat().st_size > 10_000


def test_mask_selection_button(page):
    box = page.locator("#edlm-text textarea")
    box.fill("We hold these truths to be self-evident.")
    box.evaluate("el => { el.focus(); el.setSelectionRange(3, 7); }")  # "hold"
    page.get_by_role("button", name="Mask selection").click()
    page.wait_for_function("document.querySelector('#edlm-text textarea').value.includes('[MASK:')",
                           timeout=30_000)
    value = box.input_value()
    assert value.startswith("We [MASK:") and value.endswith("] these truths to be self-evident.")


def test_closing_the_page_ends_its_run(page, app_url, app_log):
    """A closed tab sends no Stop: the server notices the dropped connection and ends the run."""
    from .test_client import stopped_runs, wait_for_stopped

    tab = page.context.browser.new_page(viewport={"width": 1400, "height": 1800})  # a second tab, own session
    tab.goto(app_url)
    tab.locator("#edlm-text textarea").fill(" ".join(["[MASK:40] and the nation"] * 6))
    steps = tab.locator("#edlm-steps input[type=number]")
    steps.fill("256")
    steps.press("Enter")
    tab.locator("#edlm-generate").click()
    tab.wait_for_function("document.querySelector('#edlm-status').innerText.includes('/ 3072')", timeout=60_000)
    before = len(stopped_runs(app_log))
    tab.close()
    line = wait_for_stopped(app_log, before)
    assert int(line.split(" step events")[0].split()[-1]) < 3072


def test_stop_button_halts_the_run(page, app_log):
    from .test_client import stopped_runs, wait_for_stopped

    box = page.locator("#edlm-text textarea")
    box.fill(" ".join(["[MASK:40] and the people"] * 6))
    steps = page.locator("#edlm-steps input[type=number]")
    steps.fill("256")  # a run of thousands of steps, so Stop arrives long before the end
    steps.press("Enter")
    page.locator("#edlm-generate").click()
    page.wait_for_function("document.querySelector('#edlm-status').innerText.includes('of 240 tokens filled')",
                           timeout=60_000)
    before = len(stopped_runs(app_log))
    running = page.locator("#edlm-status").inner_text()
    page.locator("#edlm-stop").click()
    page.wait_for_timeout(1500)
    first = page.locator("#edlm-status").inner_text()
    page.wait_for_timeout(2500)
    assert "/ 3072" in running  # 12 windows x 256 steps: the long run really started
    assert "stopped" in first and page.locator("#edlm-status").inner_text() == first and "done" not in first
    assert int(wait_for_stopped(app_log, before).split(" step events")[0].split()[-1]) < 3072  # server side too
