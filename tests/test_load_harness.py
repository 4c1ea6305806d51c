"""bench/load.py's bounded waits against a real Gradio queue: a job the queue refuses must end the wait at once
(gradio_client's own job iterator never ends for it), and a job that never answers must time out."""
import importlib.util
import time
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("load_harness", Path(__file__).resolve().parent.parent / "bench" / "load.py")
load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)


@pytest.fixture(scope="module")
def full_queue_app():
    import gradio as gr

    def slow(text):
        for i in range(40):
            time.sleep(0.1)
            yield f"{text} {i}"

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(slow, box, out, api_name="slow", concurrency_limit=1)
    demo.queue(max_size=1, default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield url
    demo.close()


def test_a_refused_job_ends_the_wait_and_a_silent_one_times_out(full_queue_app):
    from gradio_client import Client

    client = Client(full_queue_app, verbose=False)
    running = client.submit("a", api_name="/slow")
    load.first_output_or_end(running, 30)               # streaming: its first output arrives
    assert running.outputs()
    queued = client.submit("b", api_name="/slow")        # waits in the queue of one
    time.sleep(0.5)
    refused = client.submit("c", api_name="/slow")
    t0 = time.monotonic()
    load.first_output_or_end(refused, 30)
    assert time.monotonic() - t0 < 10 and refused.done() and not refused.outputs()
    with pytest.raises(Exception, match="(?i)queue"):
        refused.result(timeout=5)
    with pytest.raises(TimeoutError, match="no output within"):
        load.first_output_or_end(queued, 0.2)           # still waiting behind the running job
    running.result(timeout=60)
    queued.result(timeout=60)
