from __future__ import annotations

import threading
import time

from ivfusion.runtime.stats import RateMeter, StageTimer
from ivfusion.runtime.worker import LatestWinsWorker


def test_latest_wins_and_every_item_is_accounted_for() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def handler(item: int) -> None:
        gate.wait(5)
        seen.append(item)

    worker: LatestWinsWorker[int] = LatestWinsWorker(handler)
    worker.submit(1, 1)
    time.sleep(0.05)  # the worker picks 1 and blocks on the gate
    for stamp in range(2, 11):
        worker.submit(stamp, stamp)  # 2..9 are superseded by 10 while 1 is still running
    worker.submit(5, 5)  # older than what is pending: stale
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert seen == [1, 10]
    s = worker.stats
    assert s.submitted == 11 and s.processed == 2 and s.superseded == 8 and s.stale == 1
    assert s.processed + s.dropped == s.submitted


def test_handler_errors_do_not_stop_the_worker() -> None:
    errors: list[str] = []
    done: list[int] = []

    def handler(item: int) -> None:
        if item == 1:
            raise ValueError("bad frame")
        done.append(item)

    worker: LatestWinsWorker[int] = LatestWinsWorker(handler, on_error=lambda item, exc: errors.append(str(exc)))
    worker.submit(1, 1)
    assert worker.wait_idle(5)
    worker.submit(2, 2)
    assert worker.wait_idle(5)
    worker.stop()
    assert errors == ["bad frame"] and done == [2] and worker.stats.failed == 1


def test_submit_never_blocks_on_a_slow_handler() -> None:
    worker: LatestWinsWorker[int] = LatestWinsWorker(lambda item: time.sleep(0.5))
    start = time.perf_counter()
    for i in range(1, 200):
        worker.submit(i, i)
    assert time.perf_counter() - start < 0.25
    worker.stop(timeout=2)


def test_rate_meter_and_stage_timer() -> None:
    meter = RateMeter(window_s=10)
    for i in range(11):
        meter.tick(now=100.0 + i * 0.1)
    assert abs(meter.rate(now=101.0) - 10.0) < 1e-6
    assert meter.seconds_since_last(now=103.0) == 2.0
    assert meter.seconds_since_last(now=130.0) == 29.0  # still known after the window has emptied
    assert meter.rate(now=130.0) == 0.0
    timer = StageTimer()
    for ms in range(1, 101):
        timer.add("fuse", float(ms))
    summary = timer.summary()["fuse"]
    assert 49 <= summary["p50"] <= 52 and 94 <= summary["p95"] <= 97
