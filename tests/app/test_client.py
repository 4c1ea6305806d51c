"""The app's API, driven with gradio_client as a user's script would."""
import time

import pytest
from gradio_client import Client

TEXT = "The state of the [MASK:4] is strong, and the [MASK:3] of the people."


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_infill_streams_steps_and_keeps_fixed_text(client):
    job = client.submit(TEXT, api_name="/infill")  # every other input has a default
    updates = list(job)
    assert len(updates) > 1
    plain, highlighted = updates[-1][0], updates[-1][1]
    assert "[MASK]" not in plain and "▒" not in str(highlighted)
    assert plain.startswith("The state of the ") and plain.endswith(" of the people.")
    assert ", and the " in plain
    assert "[MASK]" in updates[0][0] or "▒" in str(updates[0][1])  # the first update is mid-denoising


def test_settings_reach_the_sampler(client):
    out = client.predict(TEXT, "edlm-nce", 6, 3, 1.0, 1.0, 1.0, 5, api_name="/infill")
    assert "step 6 / 6" in out[2] or "done" in out[2]
    assert out[7]["data"] or out[7].get("value")  # the candidates table of the IS steps


def test_bad_input_is_a_clear_message(client):
    with pytest.raises(Exception, match="no span to fill"):
        client.predict("There is nothing to fill here.", api_name="/infill")
    with pytest.raises(Exception, match="out of range"):
        client.predict("Bad [MASK:0] span.", api_name="/infill")


def stopped_runs(app_log) -> list[str]:
    return [line for line in app_log if "infill run stopped" in line]


def wait_for_stopped(app_log, before: int, timeout: float = 30.0) -> str:
    """The server's log line for a run that ended early (its generator closed), once it appears."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = stopped_runs(app_log)
        if len(lines) > before:
            return lines[-1]
        time.sleep(0.2)
    raise AssertionError("the server did not end the run: " + "".join(app_log[-5:]))


def test_stop_cancels_a_long_run(client, app_log):
    before = len(stopped_runs(app_log))
    long_text = " ".join(["[MASK:40] and the people"] * 6)
    job = client.submit(long_text, "edlm-ar", 256, 8, 1.0, api_name="/infill")
    seen = 0
    start = time.time()
    for _ in job:
        seen += 1
        if seen >= 2:
            break
    job.cancel()
    time.sleep(3)
    outputs = len(job.outputs())
    time.sleep(3)
    assert len(job.outputs()) == outputs  # nothing more arrives after the cancel
    assert job.done() and time.time() - start < 60
    line = wait_for_stopped(app_log, before)  # the server side ended too, long before its 3,072 steps
    assert int(line.split(" step events")[0].split()[-1]) < 3072
    assert "people" not in "".join(app_log)  # the log never holds the user's text
    # the app keeps serving
    assert "[MASK]" not in client.predict("A [MASK:2] b.", "mdlm", 4, api_name="/infill")[0]


@pytest.mark.parametrize("text", ["a [MASK:ZQXCANARY] b", "ZQXCANARY with no span", "ZQXCANARY [MASK:0]"])
def test_rejected_input_never_reaches_the_log(client, app_log, text):
    before = len(app_log)
    with pytest.raises(Exception):
        client.predict(text, api_name="/infill")
    time.sleep(0.5)
    new = "".join(app_log[before:])
    assert "ZQXCANARY" not in "".join(app_log) and "Traceback" not in new
    assert "infill rejected: SpanSyntaxError" in new or "infill rejected: ValueError" in new


def test_error_messages_are_plain_text_not_html(client):
    with pytest.raises(Exception) as err:
        client.predict("<b>bold</b> [MASK:<img src=x>]", api_name="/infill")
    assert "<img" not in str(err.value) and "&lt;img" in str(err.value)


def test_fractional_seed_is_refused_like_the_library(client):
    with pytest.raises(Exception, match="seed must be a whole number"):
        client.predict(TEXT, "mdlm", 4, 1, 0.5, 1.0, 1.0, 1.5, api_name="/infill")


def test_unmask_order_and_remasking_reach_the_sampler(client):
    out = client.predict(TEXT, "mdlm", 24, 1, 0.5, 1.0, 1.0, 3, None, "confidence", "remdm", api_name="/infill")
    assert "[MASK]" not in out[0] and out[0].startswith("The state of the ")
    with pytest.raises(Exception, match="sideways"):
        client.predict(TEXT, "mdlm", 4, 1, 0.5, 1.0, 1.0, 3, None, "sideways", "none", api_name="/infill")


def test_augment_tab_rewrites_pasted_lines(client):
    import json

    lines = "The state of the Union is strong.\nWe shall pay the public debt in full.\nHi"
    preview, note, path = client.predict(lines, None, "text", 2, 0.3, "tokens", "Union", "mdlm", 4, 0, None,
                                         api_name="/augment")
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert [r["record"]["text"] for r in rows] == lines.splitlines()
    assert rows[2]["status"] == "too_short" and "3 records" in note
    for r in rows[:2]:
        assert r["variants"] and all("Union" in v["text"] for v in r["variants"] if "Union" in r["record"]["text"])
    with pytest.raises(Exception, match="paste some lines"):
        client.predict("", None, "text", 2, 0.3, "tokens", "", "mdlm", 4, 0, None, api_name="/augment")


SETTING_VALUES = dict(sampler=["mdlm", "edlm-ar", "edlm-nce", "gpt"], steps=[1, 3, 0, 5000], k=[1, 2, 0],
                      seed=[0, 7, -1, 1.5], unmask=["random", "entropy"], remask=["none", "remdm"])


def _fixed_parts(text):
    import re

    return re.split(r"\[MASK(?::[0-9]+)?\]", text)


def test_fuzz_the_running_app_api(client, app_log):
    """Generated texts (each carrying a canary word) and settings, some invalid, through the real API: a result
    whose text is the fixed parts joined with the fills, or a one-line message; never a traceback, never the
    text in the log."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    piece = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="[]\\\\"), max_size=12)
    span = st.sampled_from(["[MASK:1]", "[MASK:3]", "[MASK]", "[MASK:0]", "[MASK:x]", ""])

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(piece, span), min_size=1, max_size=3), st.data())
    def run(parts, data):
        text = "QZCANARY " + "".join(p + s for p, s in parts)
        s = {k: data.draw(st.sampled_from(v)) for k, v in SETTING_VALUES.items()}
        before = len(app_log)
        try:
            out = client.predict(text, s["sampler"], s["steps"], s["k"], 0.5, 1.0, 1.0, s["seed"], None,
                                 s["unmask"], s["remask"], api_name="/infill")
        except Exception as e:  # the app's one-line message, delivered by gradio_client
            msg = str(e)
            assert "Traceback" not in msg and len(msg.strip().splitlines()) <= 2
        else:
            filled = out[0]
            fixed = _fixed_parts(text)
            pos = 0
            for f in fixed:
                at = filled.find(f, pos)
                assert at >= pos
                pos = at + len(f)
        time.sleep(0.2)
        assert "QZCANARY" not in "".join(app_log[before:]) and "Traceback" not in "".join(app_log[before:])

    run()


def test_variants_api_returns_ranked_distinct_fills(client):
    text = "We the people of the [MASK:5], in order to form a more perfect union."
    out = client.predict(text, 4, "mdlm", 8, 3, api_name="/variants")
    assert len(out) == 4 and [v["seed"] for v in sorted(out, key=lambda v: v["seed"])] == [3, 4, 5, 6]
    assert [v["score"] for v in out] == sorted((v["score"] for v in out), reverse=True)
    assert len({v["text"] for v in out}) > 1
    assert all(v["text"].startswith("We the people of the ") and v["text"].endswith(", in order to form a more "
                                                                                   "perfect union.") for v in out)
    with pytest.raises(Exception, match="n must be a whole number from 1 to 8"):
        client.predict(text, 9, api_name="/variants")


# ------------------------------------------------------------------------------ cancel, limits, disk, log
def wait_for_line(app_log, what: str, before: int, timeout: float = 30.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = [line for line in app_log[before:] if what in line]
        if lines:
            return lines[-1]
        time.sleep(0.2)
    raise AssertionError(f"no {what!r} in the server log: " + "".join(app_log[-5:]))


def submit_and_cancel(job, updates: int = 1) -> None:
    seen = 0
    for _ in job:
        seen += 1
        if seen >= updates:
            break
    job.cancel()


def test_the_stop_endpoint_ends_the_sessions_run_normally_with_its_text_so_far(client, app_log):
    """/stop is a request the client's own run sees at its next step: the run ends with a last output (the
    text so far, masks as [MASK:n], the user's text intact) instead of a cancel that loses it."""
    before = len(stopped_runs(app_log))
    job = client.submit(" ".join(["[MASK:40] and the people"] * 6), "edlm-ar", 256, 8, 1.0, api_name="/infill")
    for seen, _ in enumerate(job, 1):
        if seen == 2:
            client.predict(api_name="/stop")
    result, _, status = job.outputs()[-1][:3]
    assert status.startswith("**stopped** at step") and "still masked" in status
    assert result.count(" and the people") == 6 and "[MASK:" in result and "[MASK][MASK]" not in result
    assert "run stopped (Stop)" in wait_for_stopped(app_log, before)


def test_cancelled_variants_stop_on_the_server_at_their_next_step(client, app_log):
    text = "We the people of the [MASK:12], in order to form a more perfect union."
    before = len(app_log)
    for _ in range(3):  # several submit-and-cancel rounds: each one's work ends, none keeps computing
        submit_and_cancel(client.submit(text, 8, "edlm-ar", 1024, 0, api_name="/variants"))
    deadline = time.time() + 30
    while time.time() < deadline and sum("variants run stopped" in line for line in app_log[before:]) < 3:
        time.sleep(0.2)
    stopped = [line for line in app_log[before:] if "variants run stopped" in line]
    assert len(stopped) == 3, "".join(app_log[before:])
    assert all(int(line.split(" steps in")[0].split()[-1]) < 1024 for line in stopped)
    out = client.predict(text, 2, "mdlm", 4, 0, api_name="/variants")  # and the app keeps serving
    assert len(out) == 2


def test_cancelled_augment_stops_on_the_server_and_big_requests_are_refused_first(client, app_log):
    lines = "\n".join(f"The state of the Union is strong and record {i} grows." for i in range(4))
    before = len(app_log)
    submit_and_cancel(client.submit(lines, None, "text", 4, 0.3, "tokens", "", "edlm-ar", 1024, 0, None,
                                    api_name="/augment"))
    line = wait_for_line(app_log, "augment run stopped", before)
    assert int(line.split(" steps in")[0].split()[-1]) < 1024
    many = "\n".join(f"The state of the Union is strong and record {i} grows." for i in range(200))
    start = time.time()
    with pytest.raises(Exception, match="token-passes"):
        client.predict(many, None, "text", 32, 0.9, "tokens", "", "edlm-ar", 1024, 0, None, api_name="/augment")
    assert time.time() - start < 30  # refused before any sampling


def files_holding(folder, needle: bytes) -> list:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_augment_leaves_no_user_text_on_disk(client, gradio_tmp, tmp_path):
    from gradio_client import handle_file

    from .conftest import FILE_SECONDS

    up = tmp_path / "reviews.txt"
    up.write_text("The ZQXUPLOAD state of the Union is strong.\nWe shall pay the ZQXUPLOAD debt in full.\n")
    local = Client(client.src, verbose=False, download_files=str(tmp_path / "downloads"))
    preview, note, path = local.predict("", handle_file(str(up)), "text", 2, 0.3, "tokens", "ZQXUPLOAD", "mdlm", 4,
                                        0, None, api_name="/augment")
    assert path.endswith("reviews.variants.jsonl") and "ZQXUPLOAD" in open(path, encoding="utf-8").read()
    on_server = files_holding(gradio_tmp, b"ZQXUPLOAD")
    assert all(p.name == "reviews.variants.jsonl" for p in on_server)  # the upload itself is gone already
    time.sleep(FILE_SECONDS + 3)
    assert files_holding(gradio_tmp, b"ZQXUPLOAD") == []  # and the download after FILE_SECONDS


@pytest.mark.parametrize("field, value", [(2, "3 ZQXLOG\nFAKE LOG LINE"), (1, "mdlm\nFAKE LOG LINE ZQXLOG"),
                                          (3, "4\nFAKE LOG LINE ZQXLOG")])
def test_settings_never_forge_log_lines(client, app_log, field, value):
    args = [TEXT, "mdlm", 4, 1]
    args[field] = value
    before = len(app_log)
    with pytest.raises(Exception):
        client.predict(*args, api_name="/infill")
    time.sleep(0.5)
    new = "".join(app_log[before:])
    assert "FAKE LOG LINE" not in new and "ZQXLOG" not in new and "(invalid)" in new


@pytest.mark.parametrize("delay", [-1, 3, 1e308, "x", None])
def test_a_bad_delay_is_one_plain_message(client, app_log, delay):
    before = len(app_log)
    with pytest.raises(Exception, match="delay per step must be a number from 0 to 2") as err:
        client.predict(TEXT, "mdlm", 4, 1, 0.5, 1.0, 1.0, 0, None, "random", "none", delay, api_name="/infill")
    assert "Slider" not in str(err.value) and "component" not in str(err.value).lower()
    time.sleep(0.3)
    assert "Traceback" not in "".join(app_log[before:])


def test_variant_seeds_stay_in_the_range_infill_accepts(client):
    text = "We the people of the [MASK:3]."
    with pytest.raises(Exception, match="out of range for 4 variants"):
        client.predict(text, 4, "mdlm", 4, 2**63 - 2, api_name="/variants")
    out = client.predict(text, 4, "mdlm", 4, 2**63 - 4, api_name="/variants")
    assert max(v["seed"] for v in out) == 2**63 - 1


def test_keywords_become_a_sentence_that_uses_each_of_them(client):
    job = client.submit("people, union, states", "mdlm", 4, api_name="/keywords")
    updates = list(job)
    text, status = updates[-1]
    assert all(w in text.lower() for w in ("people", "union", "states")) and "[MASK" not in text
    assert "100% of the keywords used" in status and "likeliest of 3 orders" in status
    assert any("writing from keywords: step" in u[1] for u in updates[:-1])  # progress while it writes
    with pytest.raises(Exception, match="give the keywords"):
        client.predict(" , ", api_name="/keywords")
