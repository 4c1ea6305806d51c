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


def test_stop_cancels_a_long_run(client):
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
    # the app keeps serving
    assert "[MASK]" not in client.predict("A [MASK:2] b.", "mdlm", 4, api_name="/infill")[0]
