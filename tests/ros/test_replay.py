"""``ivfusion bag replay``: a from-pairs bag through the real node process, outputs recorded, report written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.bags.frompairs import FromPairsOptions, from_pairs

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
FRAMES = 20


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory, shared_root: Path) -> Path:
    """20 frames of MSRS when the shared data is there, else of a small synthetic pairs folder; 16-bit
    640x512 thermal so the node's AGC and registration are on the path."""
    tmp = tmp_path_factory.mktemp("replay_bag")
    pairs = shared_root / "datasets" / "msrs"
    if not (pairs / "ir").is_dir():
        pairs = tmp / "pairs"
        (pairs / "ir").mkdir(parents=True)
        (pairs / "vi").mkdir()
        rng = np.random.default_rng(0)
        for i in range(5):
            cv2.imwrite(str(pairs / "ir" / f"f{i}.png"), rng.integers(0, 256, (240, 320), dtype=np.uint8))
            cv2.imwrite(str(pairs / "vi" / f"f{i}.png"), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    path = tmp / "bag"
    from_pairs(pairs, path, FromPairsOptions(frames=FRAMES, rate=10.0, mono16=True, thermal_size=(640, 512)))
    return path


def _replay(bag: Path, out: Path, weights: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("ROS_DOMAIN_ID", None)  # the replay picks a private domain of its own
    proc = subprocess.run([sys.executable, "-m", "ivfusion.cli", "bag", "replay", str(bag), "--out", str(out),
                           "--weights", weights, "--quiet", "--timeout", "20", *args],
                          capture_output=True, text=True, timeout=150, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + (
        (out / "node.log").read_text()[-2000:] if (out / "node.log").exists() else "")
    return json.loads((out / "report.json").read_text())


def _recorded(out: Path) -> dict[str, dict[int, object]]:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    topics: dict[str, dict[int, object]] = {}
    with AnyReader([out / "outputs"], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            topics.setdefault(conn.topic, {})[stamp] = msg
    return topics


def _input_rgb_stamps(bag: Path) -> set[int]:
    return {int(k) for k in json.loads((bag / "ivfusion_frames.json").read_text())["frames"]}


@pytest.mark.parametrize("speed", ["0", "2"])
def test_replay_records_outputs_and_reports(bag: Path, tmp_path: Path, detector_weights: str, speed: str) -> None:
    out = tmp_path / f"speed{speed}"
    report = _replay(bag, out, detector_weights, "--speed", speed)
    flush = json.loads((out / "replay.json").read_text())["flush_stamp_ns"]

    assert (out / "outputs" / "outputs.mcap").is_file() and (out / "outputs" / "metadata.yaml").is_file()
    recorded = _recorded(out)
    fused = {s: m for s, m in recorded["/fused/image"].items() if s != flush}
    detections = {s: m for s, m in recorded["/detections"].items() if s != flush}
    assert recorded["/diagnostics"]
    inputs = _input_rgb_stamps(bag)
    # Outputs carry the RGB frame's header: every stamp is an input stamp, frame id and size preserved.
    assert set(fused) <= inputs and set(detections) == set(fused)
    first = next(iter(fused.values()))
    assert first.header.frame_id == "rgb_optical_frame" and first.encoding == "bgr8"
    if speed == "0":  # flow control: nothing is superseded, every pair comes out
        assert set(fused) == inputs
    else:  # how many survive latest-frame-wins at 2x is a benchmark number; the accounting below is exact
        assert len(fused) >= 1

    acc = report["accounting"]
    assert acc["ok"], acc
    assert acc["frames_sent"] == {"thermal": FRAMES, "rgb": FRAMES}
    assert acc["fused_received"] + acc["dropped"] + acc["pairing_misses"] == FRAMES
    assert acc["fused_received"] == len(fused)
    lat = report["latency_ms"]["end_to_end"]
    assert lat["n"] == len(fused) and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert "detect" in report["stages_ms"] and report["node"]["exit_code"] == 0
    assert report["fusion_metrics"]["available"] and report["fusion_metrics"]["frames"] == len(fused)
    assert set(report["fusion_metrics"]["mean"]) >= {"EN", "SD", "MI", "VIF", "Qabf", "SSIM"}
    if json.loads((bag / "ivfusion_frames.json").read_text())["dataset_root"].endswith("msrs"):
        scores = report["detection_scores"]  # MSRS has labels: mAP on the fused set and the ir+vi union
        assert scores["available"], scores
        for which in ("fused", "union"):
            assert scores["label_sets"][which]["n_images"] == len(fused)
            assert 0.0 <= scores["label_sets"][which]["map50"] <= 1.0
    md = (out / "report.md").read_text()
    assert "Accounting" in md and "p99" in md
    assert list(out.glob("*.png")) and (out / "latency.png").is_file() and (out / "grid.png").is_file()
    assert (out / "node.log").read_text()
