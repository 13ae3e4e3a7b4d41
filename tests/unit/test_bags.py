from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivfusion.bags import BagWriteFrame, read_image_pairs, write_image_bag
from ivfusion.errors import IvfusionError
from ivfusion.sim.scene import SceneConfig, SceneGenerator

MS = 1_000_000


def _frames(n: int, jitter_ms: int = 0) -> list[BagWriteFrame]:
    gen = SceneGenerator(SceneConfig(width=96, height=64, thermal_width=80, thermal_height=64, thermal_bits=16))
    base = 1_700_000_000 * 1_000_000_000
    out = []
    for i in range(n):
        p = gen.frame(i)
        t = base + i * 100 * MS
        out.append(BagWriteFrame(p.thermal, "mono16", p.rgb, "rgb8", t, t + ((-1) ** i) * jitter_ms * MS))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_roundtrip_pixels_stamps_and_frame_ids(tmp_path: Path, storage: str) -> None:
    frames = _frames(6, jitter_ms=7)
    assert write_image_bag(tmp_path / "bag", frames, storage=storage, rgb_frame_id="cam_rgb") == 6
    pairs = list(read_image_pairs(tmp_path / "bag"))
    assert len(pairs) == 6
    for f, p in zip(frames, pairs):
        assert np.array_equal(p.thermal, f.thermal) and p.thermal.dtype == np.uint16
        assert np.array_equal(p.rgb, f.rgb) and p.rgb_encoding == "rgb8"
        assert (p.thermal_stamp_ns, p.rgb_stamp_ns) == (f.thermal_stamp_ns, f.rgb_stamp_ns)
        assert p.rgb_frame_id == "cam_rgb"


def test_missing_topic_and_overwrite_are_explicit_errors(tmp_path: Path) -> None:
    write_image_bag(tmp_path / "bag", _frames(2))
    with pytest.raises(IvfusionError, match="already exists"):
        write_image_bag(tmp_path / "bag", _frames(2))
    with pytest.raises(IvfusionError, match="/lwir"):
        list(read_image_pairs(tmp_path / "bag", thermal_topic="/lwir"))
