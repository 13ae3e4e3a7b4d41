"""``ivfusion bag from-pairs``: rates, clock offset, jitter, drops, mono16, thermal resize, storage, sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.bags import read_image_pairs
from ivfusion.bags.cli import main as bag_main
from ivfusion.bags.frompairs import DEFAULT_START_NS, FromPairsOptions, from_pairs, parse_size, schedule
from ivfusion.bags.sidecar import SIDECAR_NAME, read_sidecar
from ivfusion.bags.types import cdr_stamp_ns, cdr_with_stamp
from ivfusion.errors import ConfigError
from ivfusion.sync import RGB, THERMAL

MS = 1_000_000
T, R = "/thermal/image_raw", "/rgb/image_raw"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 32x24 pairs; pixel (0, 0) of each image encodes its index so content can be traced."""
    root = tmp_path_factory.mktemp("pairs")
    (root / "ir").mkdir()
    (root / "vi").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        ir = rng.integers(0, 256, (24, 32), dtype=np.uint8)
        vi = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        ir[0, 0] = vi[0, 0, 0] = 10 * i
        cv2.imwrite(str(root / "ir" / f"s{i}.png"), ir)
        cv2.imwrite(str(root / "vi" / f"s{i}.png"), vi)
    return root


def _messages(bag: Path) -> dict[str, list[dict]]:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out: dict[str, list[dict]] = {T: [], R: []}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        for conn, log_ns, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            out[conn.topic].append({
                "stamp": msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, "log": log_ns,
                "encoding": msg.encoding, "frame_id": msg.header.frame_id, "size": (msg.width, msg.height),
                "data": np.asarray(msg.data).copy(), "step": msg.step})
    return out


def _make(pairs: Path, tmp_path: Path, name: str = "bag", **kwargs) -> tuple[Path, dict[str, list[dict]]]:
    bag = tmp_path / name
    from_pairs(pairs, bag, FromPairsOptions(**kwargs))
    return bag, _messages(bag)


def test_defaults_one_pass_rgb8_mono8_stamps_log_times_and_sidecar(pairs: Path, tmp_path: Path) -> None:
    bag, msgs = _make(pairs, tmp_path)
    assert len(msgs[T]) == len(msgs[R]) == 4
    for i, (t, r) in enumerate(zip(msgs[T], msgs[R])):
        assert t["stamp"] == r["stamp"] == DEFAULT_START_NS + i * 100 * MS
        assert 1 * MS <= r["log"] - r["stamp"] <= 3 * MS and 1 * MS <= t["log"] - t["stamp"] <= 3 * MS
        assert (t["encoding"], r["encoding"]) == ("mono8", "rgb8")
        assert (t["frame_id"], r["frame_id"]) == ("thermal_optical_frame", "rgb_optical_frame")
        assert t["size"] == r["size"] == (32, 24) and r["step"] == 32 * 3
        assert t["data"][0] == 10 * i  # thermal pixel (0, 0)
        assert r["data"][2] == 10 * i  # rgb8: blue (BGR channel 0 on disk) is the third byte
    sidecar = read_sidecar(bag)
    assert sidecar is not None and sidecar.dataset_root == str(pairs.resolve())
    assert [sidecar.frames[r["stamp"]].stem for r in msgs[R]] == ["s0", "s1", "s2", "s3"]
    assert sidecar.frames[msgs[R][0]["stamp"]].root == str(pairs.resolve())
    doc = json.loads((bag / SIDECAR_NAME).read_text())
    assert doc["format"] == "ivfusion_frames" and doc["rgb_topic"] == R and len(doc["thermal_frames"]) == 4
    # The pair reader of the core (and so `ivfusion demo --bag`) reads these bags too.
    read = list(read_image_pairs(bag))
    assert len(read) == 4 and read[0].rgb_frame_id == "rgb_optical_frame"


def test_frames_loop_the_folder(pairs: Path, tmp_path: Path) -> None:
    bag, msgs = _make(pairs, tmp_path, frames=10, rate=20.0)
    assert len(msgs[R]) == len(msgs[T]) == 10
    assert np.diff([m["stamp"] for m in msgs[R]]).tolist() == [50 * MS] * 9
    stems = [read_sidecar(bag).frames[m["stamp"]].stem for m in msgs[R]]
    assert stems == [f"s{i % 4}" for i in range(10)]


def test_thermal_rate_and_clock_offset(pairs: Path, tmp_path: Path) -> None:
    _, msgs = _make(pairs, tmp_path, frames=6, rate=10.0, thermal_rate=30.0, clock_offset_ms=7.0)
    assert len(msgs[R]) == 6 and len(msgs[T]) == 18  # the same 0.6 s of scene at 30 Hz
    t_stamps = np.array([m["stamp"] for m in msgs[T]])
    expected = DEFAULT_START_NS + 7 * MS + np.round(np.arange(18) * 1e9 / 30).astype(np.int64)
    assert np.abs(t_stamps - expected).max() <= 1
    # Thermal frame j shows the scene nearest in time: source round(j / 3).
    assert [int(m["data"][0]) for m in msgs[T]] == [10 * (min(5, round(j / 3)) % 4) for j in range(18)]
    # The same offset with equal rates: every thermal stamp is 7 ms after its RGB twin.
    _, msgs = _make(pairs, tmp_path, "b2", frames=5, clock_offset_ms=-7.0)
    assert [t["stamp"] - r["stamp"] for t, r in zip(msgs[T], msgs[R])] == [-7 * MS] * 5


def test_jitter_is_gaussian_per_stream_and_seeded() -> None:
    opts = FromPairsOptions(jitter_ms=4.0, seed=5)
    msgs = schedule(opts, 2000)
    for stream in (THERMAL, RGB):
        err = np.array([m.stamp_ns - (DEFAULT_START_NS + m.index * 100 * MS) for m in msgs if m.stream == stream]) / MS
        assert abs(err.mean()) < 0.4 and 3.6 < err.std() < 4.4
    t_err = [m.stamp_ns for m in msgs if m.stream == THERMAL]
    r_err = [m.stamp_ns for m in msgs if m.stream == RGB]
    assert t_err != r_err  # independent per stream
    assert schedule(opts, 2000) == msgs  # reproducible
    assert schedule(FromPairsOptions(jitter_ms=4.0, seed=6), 2000) != msgs
    logs = [m.log_time_ns for m in msgs]
    assert logs == sorted(logs)  # written in log-time order
    assert all(1 * MS <= m.log_time_ns - m.stamp_ns <= 3 * MS for m in msgs)


def test_drops_are_seeded_and_independent_per_stream(pairs: Path, tmp_path: Path) -> None:
    msgs = schedule(FromPairsOptions(drop=0.2, seed=1), 2000)
    kept = {s: {m.index for m in msgs if m.stream == s} for s in (THERMAL, RGB)}
    for s in (THERMAL, RGB):
        assert 0.17 < 1 - len(kept[s]) / 2000 < 0.23
    assert kept[THERMAL] != kept[RGB]
    assert schedule(FromPairsOptions(drop=0.2, seed=1), 2000) == msgs
    # Dropping does not move the survivors' stamps (their jitter draws do not depend on drops).
    jittered = schedule(FromPairsOptions(drop=0.2, jitter_ms=2.0, seed=1), 50)
    full = {(m.stream, m.index): m.stamp_ns for m in schedule(FromPairsOptions(jitter_ms=2.0, seed=1), 50)}
    assert all(full[(m.stream, m.index)] == m.stamp_ns for m in jittered)
    # In a bag: dropped RGB frames have no sidecar entry, the rest do.
    bag, written = _make(pairs, tmp_path, frames=40, drop=0.3, seed=2)
    assert len(written[R]) < 40 and len(written[T]) < 40
    assert set(read_sidecar(bag).frames) == {m["stamp"] for m in written[R]}


def test_mono16_counts_and_thermal_resize(pairs: Path, tmp_path: Path) -> None:
    _, msgs = _make(pairs, tmp_path, frames=4, mono16=True, thermal_size=(40, 30), seed=3)
    src = cv2.resize(cv2.imread(str(pairs / "ir" / "s1.png"), cv2.IMREAD_GRAYSCALE), (40, 30),
                     interpolation=cv2.INTER_LINEAR)
    t = msgs[T][1]
    assert t["encoding"] == "mono16" and t["size"] == (40, 30) and t["step"] == 80
    counts = t["data"].view("<u2").reshape(30, 40).astype(int)
    noise = counts - (7000 + 8 * src.astype(int))
    assert noise.min() >= -2 and noise.max() <= 2 and noise.std() > 0.5
    assert msgs[R][1]["size"] == (32, 24)  # RGB untouched


def test_sqlite3_storage_custom_topics_and_frame_ids(pairs: Path, tmp_path: Path) -> None:
    bag = tmp_path / "sq"
    from_pairs(pairs, bag, FromPairsOptions(storage="sqlite3", thermal_topic="/lwir/image", rgb_topic="/cam/image",
                                            thermal_frame_id="lwir", rgb_frame_id="cam"))
    assert "storage_identifier: sqlite3" in (bag / "metadata.yaml").read_text()
    assert list(bag.glob("*.db3"))
    pairs_read = list(read_image_pairs(bag, thermal_topic="/lwir/image", rgb_topic="/cam/image"))
    assert len(pairs_read) == 4 and pairs_read[0].rgb_frame_id == "cam"
    sidecar = read_sidecar(bag)
    assert (sidecar.thermal_topic, sidecar.rgb_topic) == ("/lwir/image", "/cam/image")


def test_cli(pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / "cli"
    assert bag_main(["from-pairs", str(pairs), str(bag), "--frames", "6", "--rate", "5", "--thermal-rate", "10",
                     "--jitter-ms", "1", "--drop", "0.1", "--seed", "4", "--mono16", "--thermal-size", "64x48",
                     "--quiet"]) == 0
    assert "RGB messages" in capsys.readouterr().out
    msgs = _messages(bag)
    assert msgs[T][0]["encoding"] == "mono16" and msgs[T][0]["size"] == (64, 48)
    assert read_sidecar(bag).options["thermal_rate"] == 10.0
    assert bag_main(["from-pairs", str(pairs), str(bag)]) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [{"rate": 0.0}, {"thermal_rate": -1.0}, {"drop": 1.0}, {"jitter_ms": -1.0},
                                    {"frames": 0}, {"storage": "rosbag1"}])
def test_bad_options_are_explicit(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        FromPairsOptions(**kwargs)


def test_parse_size() -> None:
    assert parse_size("640x512") == (640, 512)
    for bad in ("640", "0x5", "axb"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_bag_without_sidecar_reads_as_none(tmp_path: Path) -> None:
    assert read_sidecar(tmp_path) is None


def test_cdr_stamp_patch_roundtrip(pairs: Path, tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    bag, _ = _make(pairs, tmp_path, frames=1)
    store = get_typestore(Stores.ROS2_JAZZY)
    with AnyReader([bag], default_typestore=store) as reader:
        conn, _, raw = next(iter(reader.messages()))
        assert cdr_stamp_ns(raw) == DEFAULT_START_NS
        patched = cdr_with_stamp(raw, 1_800_000_000_123_456_789)
        msg = store.deserialize_cdr(patched, conn.msgtype)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_800_000_000, 123_456_789)
        assert msg.header.frame_id == "thermal_optical_frame" and cdr_stamp_ns(patched) == 1_800_000_000_123_456_789


def test_msrs_to_300_frames(shared_root: Path, tmp_path: Path) -> None:
    msrs = shared_root / "datasets" / "msrs"
    if not (msrs / "ir").is_dir():
        pytest.skip("no shared MSRS dataset")
    bag = tmp_path / "msrs"
    sidecar = from_pairs(msrs, bag, FromPairsOptions(frames=300))
    assert len(sidecar.frames) == len(sidecar.thermal_frames) == 300
    stems = [sidecar.frames[s].stem for s in sorted(sidecar.frames)]
    assert stems[:35] == stems[35:70] and len(set(stems)) == 35
    assert "message_count: 600" in (bag / "metadata.yaml").read_text()


def test_replay_refuses_a_missing_bag_before_starting_anything(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bag_main(["replay", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_node_settings_follow_the_params_files(tmp_path: Path) -> None:
    from ivfusion.bags.replay import node_settings

    base = tmp_path / "a.yaml"
    base.write_text("/**:\n  ros__parameters:\n    sync: {slop: 0.02, queue_size: 4}\n    qos: {reliability: reliable}\n")
    override = tmp_path / "b.yaml"
    override.write_text("ivfusion:\n  ros__parameters:\n    sync: {slop: 0.03}\n    diagnostics_period: 0.5\n")
    s = node_settings([base, override])
    assert (s.sync.slop_ns, s.sync.queue_size, s.sync.max_age_ns) == (30_000_000, 4, 2_000_000_000)
    assert s.reliable_inputs and s.diagnostics_period_s == 0.5
    assert node_settings([]).sync.slop_ns == 50_000_000 and not node_settings([]).reliable_inputs
