"""The compute guard of every handler: one process-wide semaphore around each reverse step, the server's time
limit checked between steps, and the work closed when a run is cancelled."""
from __future__ import annotations

import threading
import time

from edlm.limits import LIMITS


# Never more computations at once than the queue's limit, even while a cancelled run finishes its last step
# (Gradio frees a cancelled run's slot at once; its thread ends at the next step, see `guarded`).
_COMPUTE = threading.BoundedSemaphore(LIMITS.concurrency)


class RunClock:
    """One run's compute time against the server's limit (a chosen delay per step is not counted), and its size
    for the run log (`steps` counted by the handler, in `unit`s)."""

    def __init__(self, unit: str = "steps"):
        self.start, self.slept, self.steps, self.unit = time.perf_counter(), 0.0, 0, unit

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
    """Run a step generator one step at a time under the compute semaphore, and stop it at the time limit.
    Closing this generator (Gradio does so on Stop, a closed page or a client's cancel) closes the steps, so
    the work ends at its next step."""
    try:
        while True:
            if clock.over():
                raise TimeLimit()
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
