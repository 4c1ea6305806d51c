"""The compute guard of every handler: one process-wide semaphore around each reverse step, the server's time
limit and the session's Stop checked between steps, and the work closed when a run is cancelled.

Stop is a request, not a cancel: the run sees it at its next step and ends normally, with what it has (a cancelled
Gradio event marks its outputs as failed and loses the run). A closed page or a client's cancel still closes the
run's generator, which closes its steps."""
from __future__ import annotations

import threading
import time

from edlm.limits import LIMITS


# Never more computations at once than the queue's limit, even while a cancelled run finishes its last step
# (Gradio frees a cancelled run's slot at once; its thread ends at the next step, see `guarded`).
_COMPUTE = threading.BoundedSemaphore(LIMITS.concurrency)


# Per browser session: when its Stop was last pressed, and when its last run was asked for (the Generate click,
# before the run waits in the queue). A run stops when a Stop came after it was asked for. Bounded: entries
# older than SESSION_SECONDS are dropped whenever one is written.
_STOPS: dict[str, float] = {}
_ASKED: dict[str, float] = {}
_LOCK = threading.Lock()
SESSION_SECONDS = 3600.0


def _write(table: dict[str, float], session: str | None) -> None:
    if not session:
        return
    now = time.monotonic()
    with _LOCK:
        for key in [key for key, at in table.items() if now - at > SESSION_SECONDS]:
            del table[key]
        table[session] = now


def request_stop(session: str | None) -> None:
    """The session's Stop: every run of it asked for before now ends at its next step."""
    _write(_STOPS, session)


def mark_asked(session: str | None) -> None:
    """A run is about to be queued for the session (a Stop pressed while it waits applies to it)."""
    _write(_ASKED, session)


class RunClock:
    """One run's compute time against the server's limit (a chosen delay per step is not counted), its size for
    the run log (`steps` counted by the handler, in `unit`s), and its session's Stop (`stopped` once seen)."""

    def __init__(self, unit: str = "steps", session: str | None = None):
        self.start, self.slept, self.steps, self.unit = time.perf_counter(), 0.0, 0, unit
        self.stopped = False
        self.session = None
        self.asked = time.monotonic()
        if session:
            self.for_session(session)

    def for_session(self, session: str | None) -> None:
        """Tie the run to a browser session: its Stop ends this run if pressed after the run was asked for."""
        self.session = session
        with _LOCK:
            self.asked = min(self.asked, _ASKED.pop(session, self.asked)) if session else self.asked

    def stop_requested(self) -> bool:
        with _LOCK:
            return self.session is not None and _STOPS.get(self.session, float("-inf")) >= self.asked

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.seconds() - self.slept > LIMITS.app_run_seconds

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self.slept += seconds


class TimeLimit(Exception):
    """A run passed `LIMITS.app_run_seconds` of compute."""


def guarded(steps, clock: RunClock):
    """Run a step generator one step at a time under the compute semaphore, stop it at the time limit, and end it
    (normally, `clock.stopped` set) at the session's Stop. Closing this generator (Gradio does so on a closed page
    or a client's cancel) closes the steps, so the work ends at its next step."""
    try:
        while True:
            if clock.over():
                raise TimeLimit()
            if clock.stop_requested():
                clock.stopped = True
                return
            if not _COMPUTE.acquire(timeout=LIMITS.app_run_seconds):
                raise RuntimeError("the server is busy: try again in a minute")
            try:
                item = next(steps)
            except StopIteration:
                return
            finally:
                _COMPUTE.release()
            yield item
    finally:
        close = getattr(steps, "close", None)
        if close:
            close()
