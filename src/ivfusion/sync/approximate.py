"""Pair thermal and RGB frames by timestamp, like message_filters' ApproximateTimeSynchronizer.

message_filters is not on PyPI, and the node must not depend on a ROS install for its core logic, so the
pairing policy lives here, ROS-free, with integer-nanosecond stamps (no float rounding at 1e18 ns).

Policy (the Python message_filters one, with nearest-first matching):
- each stream keeps at most ``queue_size`` unmatched frames; when a queue overflows, its oldest frame is
  evicted and counted as a pairing miss;
- an arriving frame is matched to the *nearest* frame of the other stream whose stamp lies within ``slop``;
  the two are removed and emitted as a pair;
- a frame with the exact stamp of one already queued on its stream replaces it (a republished frame);
- frames older than ``max_age`` behind the newest stamp seen are expired as misses, so a stream that stops
  cannot pin stale frames in memory forever; an arriving frame that old is dropped as late, and a run of
  them is taken as the clock jumping backwards (a looping bag, a restarted driver) and resets the pairer.
Out-of-order arrival is tolerated: pairs may be emitted out of stamp order, and the consumer (the
latest-wins worker) decides what is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ivfusion.errors import ConfigError

T = TypeVar("T")

THERMAL = 0
RGB = 1


@dataclass(frozen=True)
class SyncConfig:
    queue_size: int = 10
    slop_ns: int = 50_000_000  # 50 ms: half a frame at 10 Hz; thermal cores often run at 9 Hz or 30/60 Hz.
    max_age_ns: int = 2_000_000_000

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"sync.queue_size must be >= 1, got {self.queue_size}")
        if self.slop_ns < 0:
            raise ConfigError(f"sync.slop must be >= 0, got {self.slop_ns} ns")
        if self.max_age_ns <= self.slop_ns:
            raise ConfigError("sync max age must exceed the slop, or nothing could ever pair")


@dataclass(frozen=True)
class Pair(Generic[T]):
    thermal: T
    rgb: T
    thermal_stamp_ns: int
    rgb_stamp_ns: int

    @property
    def skew_ns(self) -> int:
        return self.rgb_stamp_ns - self.thermal_stamp_ns


@dataclass
class SyncStats:
    received: list[int] = field(default_factory=lambda: [0, 0])
    paired: int = 0
    evicted: list[int] = field(default_factory=lambda: [0, 0])  # queue overflow or expired: never paired
    replaced: list[int] = field(default_factory=lambda: [0, 0])  # same stamp arrived again

    @property
    def misses(self) -> int:
        return sum(self.evicted)


class ApproximateTimePairer(Generic[T]):
    """Two-stream approximate-time pairing; not thread-safe (the node calls it from one callback group)."""

    JUMP_RUN = 3  # consecutive too-old frames that mean "the clock went backwards", not "one late frame"

    def __init__(self, config: SyncConfig | None = None) -> None:
        self.config = config or SyncConfig()
        self._queues: tuple[dict[int, T], dict[int, T]] = ({}, {})
        self._newest_ns: int | None = None
        self._late_run = 0
        self.stats = SyncStats()

    def add(self, stream: int, stamp_ns: int, item: T) -> Pair[T] | None:
        """Queue one frame; return the pair it completes, if any."""
        if stream not in (THERMAL, RGB):
            raise ValueError(f"stream must be THERMAL (0) or RGB (1), got {stream}")
        self.stats.received[stream] += 1
        if self._newest_ns is not None and stamp_ns < self._newest_ns - self.config.max_age_ns:
            self._late_run += 1
            if self._late_run < self.JUMP_RUN:
                self.stats.evicted[stream] += 1
                return None
            self.reset()
        self._late_run = 0
        self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
        self._expire()

        other = self._queues[1 - stream]
        match = self._nearest(other, stamp_ns)
        if match is not None:
            other_item = other.pop(match)
            self.stats.paired += 1
            if stream == THERMAL:
                return Pair(item, other_item, stamp_ns, match)
            return Pair(other_item, item, match, stamp_ns)

        queue = self._queues[stream]
        if stamp_ns in queue:
            self.stats.replaced[stream] += 1
        queue[stamp_ns] = item
        while len(queue) > self.config.queue_size:
            del queue[min(queue)]
            self.stats.evicted[stream] += 1
        return None

    def pending(self, stream: int) -> int:
        return len(self._queues[stream])

    def reset(self) -> None:
        """Forget queued frames (e.g. after a clock jump backwards when a bag loops)."""
        for s, q in enumerate(self._queues):
            self.stats.evicted[s] += len(q)
            q.clear()
        self._newest_ns = None
        self._late_run = 0

    def _nearest(self, queue: dict[int, T], stamp_ns: int) -> int | None:
        best: int | None = None
        best_delta = self.config.slop_ns + 1
        for s in queue:
            delta = abs(s - stamp_ns)
            if delta < best_delta or (delta == best_delta and best is not None and s < best):
                best, best_delta = s, delta
        return best

    def _expire(self) -> None:
        assert self._newest_ns is not None
        horizon = self._newest_ns - self.config.max_age_ns
        for s, q in enumerate(self._queues):
            for stamp in [t for t in q if t < horizon]:
                del q[stamp]
                self.stats.evicted[s] += 1
