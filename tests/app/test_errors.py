"""The one error and log policy of the computing handlers (`app.errors.logged_run`)."""
import inspect
import logging

import gradio as gr
import pytest

from app.errors import logged_run, loggable


def make(body):
    @logged_run("toy", lambda a: loggable(steps=a["steps"]))
    def handler(text: str, steps: int = 8, progress=gr.Progress(), *, clock):
        yield from body(text, steps, clock)
    return handler


def counting(text, steps, clock):
    for i in range(steps):
        clock.steps += 1
        yield text, i


def test_the_handler_keeps_its_public_signature_without_the_clock():
    params = inspect.signature(make(counting)).parameters
    assert list(params) == ["text", "steps", "progress", "request"] and inspect.isgeneratorfunction(make(counting))
    assert params["request"].annotation is gr.Request  # Gradio fills it with the browser session, not an input


@pytest.mark.parametrize("name", ["run_infill", "run_compare", "run_augment", "_variants"])
def test_gradio_sees_the_session_parameter_of_every_computing_handler(name):
    from gradio.utils import get_type_hints, is_special_typed_parameter

    from app import handlers

    fn = getattr(handlers, name)
    assert is_special_typed_parameter("request", get_type_hints(fn))


def test_a_finished_run_logs_one_line_with_its_size(caplog):
    with caplog.at_level(logging.INFO, logger="edlm.app"):
        assert [i for _, i in make(counting)("x", 3)] == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records if r.name == "edlm.app"]
    assert len(lines) == 1 and lines[0].startswith("toy run finished: steps 3, 3 steps in ")


def test_a_closed_run_logs_stopped_and_closes_its_work(caplog):
    closed = []

    def body(text, steps, clock):
        try:
            yield from counting(text, steps, clock)
        finally:
            closed.append(True)

    with caplog.at_level(logging.INFO, logger="edlm.app"):
        run = make(body)("x", 100)
        next(run), next(run)
        run.close()  # what Gradio does on a closed page or a client's cancel
    assert closed == [True]
    assert any("toy run stopped (closed page or client cancel): steps 100, 2 steps" in r.getMessage()
               for r in caplog.records)


def test_the_sessions_stop_ends_its_run_normally_and_no_other_session(caplog):
    from app.guard import guarded, request_stop

    def body(text, steps, clock):
        yield from guarded(counting(text, steps, clock), clock)
        yield "end", clock.stopped

    with caplog.at_level(logging.INFO, logger="edlm.app"):
        # Gradio passes the request by position after the inputs and the progress: found by its type
        mine, other = gr.Request(session_hash="mine"), gr.Request(session_hash="other")
        run, bystander = make(body)("x", 100, gr.Progress(), mine), make(body)("x", 5, request=other)
        assert [next(run), next(run)] == [("x", 0), ("x", 1)]
        request_stop("mine")
        assert list(run) == [("end", True)]  # the handler ran on to its own end, told it was stopped
        assert list(bystander)[-1] == ("end", False)  # another session's Stop changes nothing here
    logged = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("toy run stopped (Stop): steps 100, 2 steps") for line in logged)
    assert any(line.startswith("toy run finished: steps 5, 5 steps") for line in logged)


def test_a_rejection_is_one_line_without_the_users_text_in_the_log(caplog):
    def body(text, steps, clock):
        raise ValueError(f"cannot fill {text!r}")
        yield

    with caplog.at_level(logging.INFO, logger="edlm.app"), pytest.raises(gr.Error) as e:
        list(make(body)("<b>SECRET</b>", 5))
    assert "SECRET" in str(e.value) and "<b>" not in str(e.value)  # the page gets it, escaped
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "toy rejected: ValueError" in logged and "toy run failed (ValueError)" in logged
    assert "SECRET" not in logged


def test_a_fault_logs_its_traceback_but_never_its_message(caplog):
    def body(text, steps, clock):
        raise KeyError(text)  # the traceback's source line names the variable, never the value
        yield

    with caplog.at_level(logging.INFO, logger="edlm.app"), pytest.raises(gr.Error, match="internal error"):
        list(make(body)("SECRET", 5))
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "toy failed: KeyError" in logged and "SECRET" not in logged


def test_a_forged_setting_is_logged_as_invalid(caplog):
    with caplog.at_level(logging.INFO, logger="edlm.app"), pytest.raises(gr.Error):
        list(make(counting)("x", "3\nFAKE LOG LINE"))  # range() of a string: a fault, logged without it
    assert any("steps (invalid)" in r.getMessage() for r in caplog.records)
    assert not any("FAKE LOG LINE" in r.getMessage() for r in caplog.records)
