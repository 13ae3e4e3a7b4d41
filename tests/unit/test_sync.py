from __future__ import annotations

import random

import pytest

from ivfusion.errors import ConfigError
from ivfusion.sync import RGB, THERMAL, ApproximateTimePairer, SyncConfig

MS = 1_000_000


def _run(events: list[tuple[int, int]], config: SyncConfig) -> tuple[list[tuple[int, int]], ApproximateTimePairer]:
    pairer: ApproximateTimePairer[int] = ApproximateTimePairer(config)
    pairs = []
    for stream, stamp in events:
        pair = pairer.add(stream, stamp, stamp)
        if pair is not None:
            pairs.append((pair.thermal_stamp_ns, pair.rgb_stamp_ns))
    return pairs, pairer


def test_pairs_every_frame_under_jitter() -> None:
    rng = random.Random(0)
    events = []
    for i in range(200):
        base = i * 100 * MS
        events.append((THERMAL, base + rng.randint(-15, 15) * MS))
        events.append((RGB, base + rng.randint(-15, 15) * MS))
    pairs, pairer = _run(events, SyncConfig(slop_ns=40 * MS))
    assert len(pairs) == 200
    assert all(abs(t - r) <= 40 * MS for t, r in pairs)
    assert [round(r / (100 * MS)) for _, r in pairs] == list(range(200))
    assert pairer.stats.misses == 0


def test_drops_leave_partner_unpaired_and_counted() -> None:
    events = []
    for i in range(100):
        if i % 10 != 3:
            events.append((THERMAL, i * 100 * MS))
        if i % 7 != 5:
            events.append((RGB, i * 100 * MS + 5 * MS))
    pairs, pairer = _run(events, SyncConfig(queue_size=3, slop_ns=20 * MS))
    expected = [i for i in range(100) if i % 10 != 3 and i % 7 != 5]
    assert [t // (100 * MS) for t, _ in pairs] == expected
    # Every frame that did not pair is still queued or was counted as a miss.
    unpaired = sum(pairer.stats.received) - 2 * len(pairs)
    assert unpaired == pairer.stats.misses + pairer.pending(THERMAL) + pairer.pending(RGB)
    assert pairer.pending(THERMAL) <= 3 and pairer.pending(RGB) <= 3


def test_out_of_order_arrival_still_pairs_nearest() -> None:
    stamps = [i * 100 * MS for i in range(50)]
    rng = random.Random(1)
    thermal = [(THERMAL, s) for s in stamps]
    rgb = [(RGB, s + 2 * MS) for s in stamps]
    # Swap neighbours on the RGB stream and interleave with a lag, as a loaded network does.
    for i in range(0, 48, 2):
        rgb[i], rgb[i + 1] = rgb[i + 1], rgb[i]
    events = []
    for t, r in zip(thermal, rgb):
        events += [t, r] if rng.random() < 0.5 else [r, t]
    pairs, _ = _run(events, SyncConfig(queue_size=5, slop_ns=30 * MS))
    assert sorted(pairs) == [(s, s + 2 * MS) for s in stamps]


def test_nearest_candidate_wins_within_slop() -> None:
    pairer: ApproximateTimePairer[str] = ApproximateTimePairer(SyncConfig(slop_ns=50 * MS))
    assert pairer.add(RGB, 100 * MS, "far") is None
    assert pairer.add(RGB, 130 * MS, "near") is None
    pair = pairer.add(THERMAL, 135 * MS, "t")
    assert pair is not None and pair.rgb == "near" and pair.skew_ns == -5 * MS


def test_nothing_pairs_beyond_slop() -> None:
    pairs, pairer = _run([(THERMAL, 0), (RGB, 51 * MS)], SyncConfig(slop_ns=50 * MS))
    assert pairs == [] and pairer.pending(THERMAL) == 1 and pairer.pending(RGB) == 1


def test_stopped_stream_does_not_pin_memory() -> None:
    events = [(THERMAL, i * 100 * MS) for i in range(100)]  # RGB camera is dead
    pairs, pairer = _run(events, SyncConfig(queue_size=1000, slop_ns=10 * MS, max_age_ns=1000 * MS))
    assert pairs == []
    assert pairer.pending(THERMAL) <= 11
    assert pairer.stats.misses == 100 - pairer.pending(THERMAL)


def test_clock_jump_backwards_resets() -> None:
    config = SyncConfig(slop_ns=10 * MS, max_age_ns=500 * MS)
    events = [(s, i * 100 * MS) for i in range(20) for s in (THERMAL, RGB)]
    events += [(s, i * 100 * MS) for i in range(20) for s in (THERMAL, RGB)]  # the bag loops
    pairs, _ = _run(events, config)
    assert len(pairs) >= 38  # a few frames are spent detecting the jump, then pairing resumes


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="queue_size"):
        SyncConfig(queue_size=0)
    with pytest.raises(ConfigError, match="slop"):
        SyncConfig(slop_ns=-1)
