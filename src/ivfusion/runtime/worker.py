"""A single-slot, latest-wins processing thread.

A perception node must never let inference back-pressure the subscription callbacks: when fusion plus
detection is slower than the cameras, the robot wants the *newest* pair processed, not a growing backlog.
So the slot holds one pending item; a newer submission replaces it (counted as ``superseded``), and an item
whose stamp is not newer than the last one processed is dropped as ``stale`` (pairs can complete out of
order). ``submit`` never blocks beyond a lock held for a few instructions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class WorkerStats:
    submitted: int = 0
    processed: int = 0
    superseded: int = 0
    stale: int = 0
    failed: int = 0

    @property
    def dropped(self) -> int:
        return self.superseded + self.stale


class LatestWinsWorker(Generic[T]):
    """Runs ``handler(item)`` on a daemon thread for the newest submitted item only.

    ``on_error`` receives exceptions the handler raises; the worker keeps running, so one bad frame cannot
    stop the node.
    """

    def __init__(
        self,
        handler: Callable[[T], None],
        *,
        on_error: Callable[[T, BaseException], None] | None = None,
        name: str = "ivfusion-worker",
    ) -> None:
        self._handler = handler
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: tuple[int, T] | None = None
        self._last_stamp: int | None = None
        self._busy = False
        self._stopping = False
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, stamp_ns: int, item: T) -> None:
        with self._cond:
            self.stats.submitted += 1
            if self._last_stamp is not None and stamp_ns <= self._last_stamp:
                self.stats.stale += 1
                return
            if self._pending is not None:
                if self._pending[0] >= stamp_ns:
                    self.stats.stale += 1
                    return
                self.stats.superseded += 1
            self._pending = (stamp_ns, item)
            self._cond.notify()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running (tests, demo shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                assert self._pending is not None
                stamp, item = self._pending
                self._pending = None
                self._busy = True
                self._last_stamp = stamp
            try:
                self._handler(item)
                ok = True
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one frame
                ok = False
                if self._on_error is not None:
                    self._on_error(item, exc)
            with self._cond:
                self._busy = False
                if ok:
                    self.stats.processed += 1
                else:
                    self.stats.failed += 1
                self._cond.notify_all()
