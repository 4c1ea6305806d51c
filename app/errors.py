"""The error and log policy of every handler, in one place: an expected rejection is one line for the page and
one log line naming its kind; a fault logs its traceback without the user's text; every computing run logs one
line (how it ended, its validated settings, its size, its seconds) through the `logged_run` decorator."""
from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import gradio as gr

from edlm.limits import LIMITS

from .guard import RunClock, TimeLimit


LOG = logging.getLogger("edlm.app")  # one line per run: how it ended, its settings and size; never the user's text


def loggable(**settings) -> str:
    """Settings for the run log, each as validated or "(invalid)": a value the user sent is logged only once it
    is known to be a plain number or a registered name, so nothing forged reaches the log."""
    from edlm.limits import validate

    out = []
    for name, value in settings.items():
        try:
            validate(**{name: value})
            shown = str(value)
        except (ValueError, TypeError):
            shown = "(invalid)"
        out.append(f"{name} {shown}")
    return ", ".join(out)


def user_message(e: Exception) -> str:
    """One line for the page: what went wrong and what to do; never a traceback. HTML-escaped, since the
    message may quote the user's input and the page renders it."""
    import html

    import torch

    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return ("the model ran out of memory for this request: use a smaller k, fewer steps or shorter spans, or "
                "try again when the server is less busy")
    text = str(e).strip()
    if type(e).__name__ == "ModelFilesError" and "Hugging Face Hub" in text:
        LOG.warning("model download failed: %s", text.splitlines()[0])  # names the model and the fix, no user text
        return ("this server could not download that model (it has no internet access, or the Hub is unreachable):"
                " choose the built-in `default` model. The server's owner finds the command that fetches the files"
                " in the server log.")
    return html.escape(text.splitlines()[0] if text else type(e).__name__)


def rejected(e: Exception, what: str) -> gr.Error:
    """An expected rejection (bad input, missing model files, out of memory): one log line naming the kind of
    error, never its message (which may quote the user's text), and a one-line error for the page."""
    LOG.info("%s rejected: %s", what, type(e).__name__)
    return gr.Error(user_message(e), print_exception=False)


def fault(e: BaseException, what: str) -> gr.Error:
    """An unexpected fault: its traceback in the log without the exception's message (which may quote the
    user's text), and a generic line for the page."""
    import traceback

    LOG.error("%s failed: %s\n%s", what, type(e).__name__, "".join(traceback.format_tb(e.__traceback__)).rstrip())
    return gr.Error("internal error: the server could not finish this request (logged for its owner)",
                    print_exception=False)


def time_limit_error() -> gr.Error:
    return gr.Error(f"this run passed the server's limit of {LIMITS.app_run_seconds:.0f} s and was stopped: use "
                    "fewer steps, a smaller k or shorter spans", print_exception=False)


def logged_run(what: str, describe: Callable[[dict], str]):
    """The policy of every computing handler, a generator taking a `clock` (a RunClock, hidden from Gradio):
    the time limit, a rejection and a fault each become one line for the page, and every run, however it ends
    (Stop, a closed page, a client's cancel included), logs one line: "<what> run <how it ended>: <describe(its
    arguments)>, <clock.steps> steps in <seconds> s". The work it streams is closed on the way out."""
    def deco(fn):
        sig = inspect.signature(fn)
        # Gradio gives the browser session in `request` (so the session's Stop reaches this run); not an input.
        # Gradio passes it by position (after the last positional parameter), found by its type hint.
        request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.Request)
        kept = [p for name, p in sig.parameters.items() if name != "clock"]
        head = [p for p in kept if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                              inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        public = sig.replace(parameters=head + [request] + [p for p in kept if p not in head])

        @functools.wraps(fn)
        def run(*args, **kwargs):
            request = kwargs.pop("request", None)
            if request is None and any(isinstance(a, gr.Request) for a in args):
                request = next(a for a in args if isinstance(a, gr.Request))
                args = tuple(a for a in args if a is not request)
            clock, outcome = RunClock(), "stopped (closed page or client cancel)"
            clock.for_session(getattr(request, "session_hash", None))
            work = fn(*args, clock=clock, **kwargs)
            try:
                yield from work
                outcome = "stopped (Stop)" if clock.stopped else "finished"
            except TimeLimit:
                outcome = "stopped (time limit)"
                raise time_limit_error() from None
            except gr.Error:
                outcome = "failed"
                raise
            except (ValueError, RuntimeError, OSError) as e:  # bad input, missing model files, out of memory
                outcome = f"failed ({type(e).__name__})"
                raise rejected(e, what) from None
            except Exception as e:  # a real fault: its traceback, without the text
                outcome = f"failed ({type(e).__name__})"
                raise fault(e, what) from None
            finally:  # also when Gradio drops the generator of a closed page or a cancelled job
                work.close()
                try:
                    bound = public.bind(*args, request=request, **kwargs)
                    bound.apply_defaults()
                    settings = describe(bound.arguments)
                except TypeError:
                    settings = "(invalid call)"
                LOG.info("%s run %s: %s, %d %s in %.2f s", what, outcome, settings, clock.steps, clock.unit,
                         clock.seconds())

        run.__signature__ = public  # Gradio reads the inputs (and gr.Progress) from it
        run.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "clock"},
                               "request": gr.Request}  # ... and gr.Request from the type hints
        return run
    return deco
