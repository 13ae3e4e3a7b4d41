"""Rates and latency summaries for diagnostics, demo output and benchmarks."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np


class RateMeter:
    """Events per second over a sliding window of monotonic times; thread-safe."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._last: float | None = None  # kept apart from the window: "silent for 30 s" must outlive it
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.count += 1
            self._last = now
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = now - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def seconds_since_last(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            return None if self._last is None else now - self._last

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()


def time_calls_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Wall time of ``runs`` calls of ``fn`` in milliseconds, after ``warmup`` untimed calls (benchmarks)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def median_p95_ms(fn: Callable[[], object], runs: int, warmup: int = 5) -> tuple[float, float]:
    """(median, p95) of :func:`time_calls_ms` (benchmarks; p95 = the sample at rank 0.95 (n - 1))."""
    import statistics

    times = sorted(time_calls_ms(fn, runs, warmup))
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


class LatencyWindow:
    """The last ``size`` samples (milliseconds) of one stage, summarised as percentiles."""

    def __init__(self, size: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(ms)

    def percentiles(self, qs: tuple[float, ...] = (50.0, 95.0)) -> dict[str, float]:
        with self._lock:
            if not self._samples:
                return {}
            values = np.percentile(np.fromiter(self._samples, float), qs)
        return {f"p{q:g}": float(v) for q, v in zip(qs, values)}


class StageTimer:
    """Per-stage latency windows keyed by stage name (convert, agc, register, fuse, detect, publish, total)."""

    def __init__(self, size: int = 200) -> None:
        self._size = size
        self._stages: dict[str, LatencyWindow] = {}

    def add(self, stage: str, ms: float) -> None:
        window = self._stages.get(stage)
        if window is None:
            window = self._stages.setdefault(stage, LatencyWindow(self._size))
        window.add(ms)

    def add_all(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.add(stage, ms)

    def summary(self, qs: tuple[float, ...] = (50.0, 95.0, 99.0)) -> dict[str, dict[str, float]]:
        return {stage: w.percentiles(qs) for stage, w in list(self._stages.items())}
