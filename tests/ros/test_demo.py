"""README command 1's job: the demo runs the real node over DDS and writes fused frames and detections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivfusion.bags import BagWriteFrame, write_image_bag
from ivfusion.sim.scene import SceneConfig, SceneGenerator

pytestmark = [pytest.mark.ros, pytest.mark.detector, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _demo(args: list[str], out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "ivfusion.cli", "demo", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_demo_on_the_builtin_scene(tmp_path: Path, detector_weights: str) -> None:
    summary = _demo(["--frames", "12", "--rate", "10", "--save", "2", "--weights", detector_weights], tmp_path)
    # Every pair is accounted for: received as output, dropped by the node, or never formed (a frame lost on the
    # best-effort wire or unmatched); so every pair the node processed reached the subscriber.
    assert summary["fused_received"] + summary["dropped_by_node"] + summary["unpaired"] == 12
    # How many survive latest-frame-wins is a throughput question for bench/, not a timed assert.
    assert summary["fused_received"] >= 2 and summary["detections_received"] == summary["fused_received"]
    assert len(list(tmp_path.glob("*_fused.png"))) == 2 and len(list(tmp_path.glob("*_annotated.png"))) == 2
    records = json.loads((tmp_path / "detections.json").read_text())
    assert len(records) == summary["fused_received"]
    if not detector_weights.endswith(".yaml"):  # the real COCO detector sees the procedural people
        assert any(d["class"] == "person" for r in records for d in r["detections"])


def test_demo_on_a_bag(tmp_path: Path, detector_weights: str) -> None:
    gen = SceneGenerator(SceneConfig(width=320, height=240, thermal_bits=16, night=True))
    frames = []
    for i in range(6):
        p, t = gen.frame(i), 1_700_000_000_000_000_000 + i * 100_000_000
        frames.append(BagWriteFrame(p.thermal, "mono16", p.rgb[..., ::-1].copy(), "bgr8", t, t + 3_000_000))
    write_image_bag(tmp_path / "rec", frames)
    summary = _demo(["--bag", str(tmp_path / "rec"), "--frames", "6", "--weights", detector_weights], tmp_path / "out")
    assert summary["published_pairs"] == 6 and summary["fused_received"] >= 1
    assert summary["fused_received"] + summary["dropped_by_node"] + summary["unpaired"] == 6
