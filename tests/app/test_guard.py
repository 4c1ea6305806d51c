"""The app's run guard: closing a handler's stream ends the work at its next step, and at most
LIMITS.concurrency steps compute at once, however many cancelled runs are still finishing one."""
import threading
import time

import pytest

from app import guard as ui
from edlm.limits import LIMITS


def test_closing_the_guard_closes_the_work_and_frees_the_slot():
    log = []

    def work():
        try:
            for i in range(1000):
                log.append(i)
                yield i
        finally:
            log.append("closed")

    g = ui.guarded(work(), ui.RunClock())
    assert next(g) == 0 and next(g) == 1
    g.close()  # what Gradio does on Stop, a closed page or a client's cancel
    assert log == [0, 1, "closed"]
    assert ui._COMPUTE._value == LIMITS.concurrency  # no slot held after the close


def test_the_time_limit_stops_between_steps(monkeypatch):
    import dataclasses

    monkeypatch.setattr(ui, "LIMITS", dataclasses.replace(LIMITS, app_run_seconds=0.05))
    clock = ui.RunClock()

    def work():
        while True:
            time.sleep(0.02)
            yield 1

    with pytest.raises(ui.TimeLimit):
        for _ in ui.guarded(work(), clock):
            pass


def test_never_more_steps_at_once_than_the_limit():
    running, peak, lock = [0], [0], threading.Lock()

    def work():
        for _ in range(5):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= 1
            yield 1

    threads = [threading.Thread(target=lambda: list(ui.guarded(work(), ui.RunClock()))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == LIMITS.concurrency


def test_a_stop_counts_for_runs_asked_for_before_it_and_only_those(monkeypatch):
    """Stop pressed while a run waits in the queue stops it when it starts; a Stop from before the run was asked
    for (the last run's, or a stray click) never stops it."""
    clock = iter([100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0])
    monkeypatch.setattr(ui.time, "monotonic", lambda: next(clock))
    ui.mark_asked("s")                      # 100: Generate clicked
    ui.request_stop("s")                    # 101: Stop while the run waits
    queued = ui.RunClock(session="s")       # 102: the run starts, asked for at 100
    assert queued.stop_requested()
    later = ui.RunClock(session="s")        # 103: asked for after that Stop
    assert not later.stop_requested()
    assert list(ui.guarded(iter(range(3)), later)) == [0, 1, 2] and not later.stopped
    ui.request_stop("s")                    # 104
    assert list(ui.guarded(iter(range(3)), later)) == [] and later.stopped


def test_stop_requests_are_bounded(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: now[0])
    for i in range(50):
        ui.request_stop(f"old-{i}")
    now[0] = ui.SESSION_SECONDS + 1
    ui.request_stop("new")
    assert [key for key in ui._STOPS if key.startswith("old-")] == []
