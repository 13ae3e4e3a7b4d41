"""``ivfusion demo``: the node's main job end to end, in one process, on data the repo makes itself.

A driver node publishes thermal/RGB pairs (a procedural scene by default, a pairs folder or a bag on request)
over real DDS to the real ``ivfusion`` node and subscribes to its outputs; the demo prints throughput and
latency and writes a few fused and annotated frames plus every detection to an output folder.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tqdm import tqdm
from vision_msgs.msg import Detection2DArray

from ivfusion.detection.draw import draw_detections
from ivfusion.detection.from_msg import detections_from_msg
from ivfusion.imaging.encodings import decode_image
from ivfusion.ros import messages
from ivfusion.ros.node import TOPICS, IvfusionNode
from ivfusion.sync import RGB, THERMAL

DRAIN_S = 60.0  # the longest wait, after the last publish, for the node to finish the pairs it holds
QUIET_S = 2.0  # with the node idle, this long without any new input or output ends the wait early


@dataclass(frozen=True)
class DemoFrame:
    thermal: np.ndarray
    thermal_encoding: str
    rgb: np.ndarray  # in ``rgb_encoding``'s channel order
    name: str
    rgb_encoding: str = "rgb8"


def scene_frames(count: int, seed: int = 0) -> Iterator[DemoFrame]:
    from ivfusion.sim.scene import SceneConfig, SceneGenerator

    gen = SceneGenerator(SceneConfig(width=640, height=480, thermal_width=640, thermal_height=512,
                                     seed=seed, night=True, thermal_bits=16))
    for i in range(count):
        pair = gen.frame(i)
        yield DemoFrame(pair.thermal, "mono16", pair.rgb, f"scene_{i:04d}")


def pairs_frames(root: str, count: int) -> Iterator[DemoFrame]:
    from ivfusion.data import PairsFolder

    folder = PairsFolder(root)
    for i in range(min(count, len(folder))):
        sample = folder.load(i)
        yield DemoFrame(sample.thermal, "mono8", sample.rgb, sample.stem)


def bag_frames(path: str, count: int, thermal_topic: str, rgb_topic: str) -> Iterator[DemoFrame]:
    from ivfusion.bags import read_image_pairs

    for i, pair in enumerate(read_image_pairs(path, thermal_topic=thermal_topic, rgb_topic=rgb_topic)):
        if i >= count:
            return
        # Republished in the bag's own encoding: the node accepts every camera encoding.
        yield DemoFrame(pair.thermal, pair.thermal_encoding, pair.rgb, f"bag_{pair.rgb_stamp_ns}", pair.rgb_encoding)


class _Driver(Node):
    """Publishes the camera pair and records what the node sends back."""

    def __init__(self, frame_id: str = "rgb_camera_optical_frame") -> None:
        super().__init__("ivfusion_demo_driver")
        self.frame_id = frame_id
        self.pub_thermal = self.create_publisher(Image, TOPICS[0], qos_profile_sensor_data)
        self.pub_rgb = self.create_publisher(Image, TOPICS[1], qos_profile_sensor_data)
        self.sent: dict[int, float] = {}
        self.fused: dict[int, tuple[float, Image]] = {}
        self.detections: dict[int, Detection2DArray] = {}
        self._lock = threading.Lock()
        self.create_subscription(Image, "fused/image", self._on_fused, 10)
        self.create_subscription(Detection2DArray, "detections", self._on_detections, 10)

    def wait_matched(self, timeout: float = 30.0) -> bool:
        """Best-effort frames sent before discovery completes are lost, so wait for both directions."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pub_thermal.get_subscription_count() and self.pub_rgb.get_subscription_count() and all(
                    sub.get_publisher_count() for sub in self.subscriptions):
                return True
            time.sleep(0.02)
        return False

    def publish(self, frame: DemoFrame, stamp_ns: int) -> None:
        stamp = messages.ns_to_stamp(stamp_ns)
        thermal_header = Header(stamp=stamp, frame_id="thermal_camera_optical_frame")
        rgb_header = Header(stamp=stamp, frame_id=self.frame_id)
        with self._lock:
            self.sent[stamp_ns] = time.monotonic()
        self.pub_thermal.publish(messages.array_to_image(frame.thermal, frame.thermal_encoding, thermal_header))
        self.pub_rgb.publish(messages.array_to_image(frame.rgb, frame.rgb_encoding, rgb_header))

    def _on_fused(self, msg: Image) -> None:
        with self._lock:
            self.fused[messages.stamp_to_ns(msg.header.stamp)] = (time.monotonic(), msg)

    def _on_detections(self, msg: Detection2DArray) -> None:
        with self._lock:
            self.detections[messages.stamp_to_ns(msg.header.stamp)] = msg


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ivfusion demo", description=__doc__)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--pairs", help="pairs folder (ir/ + vi/), e.g. ../shared/datasets/msrs")
    src.add_argument("--bag", help="rosbag2 file or folder (MCAP or sqlite3)")
    parser.add_argument("--thermal-topic", default="/thermal/image_raw")
    parser.add_argument("--rgb-topic", default="/rgb/image_raw")
    parser.add_argument("--frames", type=int, default=60, help="pairs to publish")
    parser.add_argument("--rate", type=float, default=10.0, help="publish rate [Hz]")
    parser.add_argument("--preference", default="detection")
    parser.add_argument("--weights", default="", help="detector weights (default: the shared COCO YOLOv8n)")
    parser.add_argument("--params-file", help="node parameters YAML")
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--save", type=int, default=6, help="fused/annotated frames to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.pairs:
        frames, source = list(pairs_frames(args.pairs, args.frames)), f"pairs folder {args.pairs}"
    elif args.bag:
        frames = list(bag_frames(args.bag, args.frames, args.thermal_topic, args.rgb_topic))
        source = f"bag {args.bag}"
    else:
        frames, source = list(scene_frames(args.frames)), "procedural night scene (16-bit thermal 640x512, RGB 640x480)"
    if not frames:
        print(f"no frames from {source}")
        return 1

    rcl_args = ["ivfusion_demo", "--ros-args"] + (["--params-file", args.params_file] if args.params_file else [])
    rclpy.init(args=rcl_args)
    overrides = [Parameter("preference", value=args.preference), Parameter("publish_annotated", value=True)]
    if args.weights:
        overrides.append(Parameter("detector.weights", value=args.weights))
    node = IvfusionNode(parameter_overrides=overrides)
    driver = _Driver()
    # One executor thread is enough: the callbacks only pair stamps, the node's worker thread does the work. rclpy's
    # MultiThreadedExecutor (likely re-waking while a mutually exclusive group is busy, cf. ros2/rclpy#1452)
    # starved the worker of the GIL here: stalls of 0.3-3 s, up to 2/3 of the pairs lost or dropped
    # (docs/benchmarks.md).
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(driver)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 120
        while node._detector_state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        if not driver.wait_matched():
            print("warning: the node's topics did not match within 30 s; frames may be lost")
        print(f"source: {source}; detector: {node._detector_state}; preference: {args.preference!r}")
        period = 1.0 / args.rate
        base_ns = time.time_ns()
        start = time.monotonic()
        for i, frame in enumerate(tqdm(frames, desc="publishing", unit="pair")):
            driver.publish(frame, base_ns + int(i * period * 1e9))
            time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
        _drain(driver, node, len(frames))
        _report(args, frames, driver, node)
    finally:
        executor.shutdown()
        node.destroy_node()
        driver.destroy_node()
        rclpy.shutdown()
    return 0


def _accounted(driver: _Driver, node: IvfusionNode, published: int) -> int:
    """Pairs whose fate is known: fused outputs received, pairs the node dropped, pairs it never formed."""
    return len(driver.fused) + node._worker.stats.dropped + _unpaired(node, published)


def _unpaired(node: IvfusionNode, published: int) -> int:
    """Published pairs the node never formed: a frame lost on the (best-effort) wire, or a stamp it could not match."""
    return published - node._pairer.stats.paired


def _drain(driver: _Driver, node: IvfusionNode, published: int) -> None:
    """Wait for the node to finish what it holds, not a fixed time: a node stalled for seconds per frame still owes
    its outputs, while a frame lost on the wire never arrives, so an idle node with no news for QUIET_S ends it."""
    deadline = time.monotonic() + DRAIN_S
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline and _accounted(driver, node, published) < published:
        state = (len(driver.fused), node._worker.stats.processed, *node._pairer.stats.received)
        if state != last:
            last, quiet_since = state, time.monotonic()
        elif node._worker.wait_idle(0) and time.monotonic() - quiet_since > QUIET_S:
            return
        time.sleep(0.05)


def _report(args: argparse.Namespace, frames: list[DemoFrame], driver: _Driver, node: IvfusionNode) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamps = sorted(driver.sent)
    latencies = [(driver.fused[s][0] - driver.sent[s]) * 1e3 for s in stamps if s in driver.fused]
    n_fused, n_det = len(driver.fused), len(driver.detections)
    arrivals = sorted(t for t, _ in driver.fused.values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    throughput = (len(arrivals) - 1) / span if span > 0 else 0.0
    sends = sorted(driver.sent.values())
    send_span = sends[-1] - sends[0] if len(sends) > 1 else 0.0
    input_rate = (len(sends) - 1) / send_span if send_span > 0 else 0.0
    records = []
    saved = 0
    for i, s in enumerate(stamps):
        if s not in driver.fused:
            continue
        msg = driver.fused[s][1]
        fused = decode_image(msg.data, msg.width, msg.height, msg.step, msg.encoding)
        dets = detections_from_msg(driver.detections[s]) if s in driver.detections else []
        records.append({"frame": frames[i].name, "stamp_ns": s, "detections": [
            {"class": d.class_name, "score": round(d.score, 4), "xyxy": [round(v, 1) for v in (d.x1, d.y1, d.x2, d.y2)]}
            for d in dets]})
        if saved < args.save:
            cv2.imwrite(str(out / f"{frames[i].name}_fused.png"), fused)
            cv2.imwrite(str(out / f"{frames[i].name}_annotated.png"), draw_detections(fused, dets))
            saved += 1
    (out / "detections.json").write_text(json.dumps(records, indent=1))
    stages = node._timer.summary()
    summary = {
        "published_pairs": len(frames), "fused_received": n_fused, "detections_received": n_det,
        "dropped_by_node": node._worker.stats.dropped, "pairing_misses": node._pairer.stats.misses,
        "node_received": {"thermal": node._pairer.stats.received[THERMAL], "rgb": node._pairer.stats.received[RGB]},
        "unpaired": _unpaired(node, len(frames)),
        "throughput_hz": throughput, "input_rate_hz": input_rate,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "latency_ms_max": float(max(latencies)) if latencies else None,
        "stages_ms": stages, "objects_detected": sum(len(r["detections"]) for r in records),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\npublished {len(frames)} pairs at {input_rate:.1f} Hz (asked {args.rate:g}); received {n_fused} fused images and {n_det} "
          f"detection arrays ({summary['throughput_hz']:.1f} Hz); the node dropped {summary['dropped_by_node']} "
          f"(latest-frame-wins); {summary['unpaired']} pairs never formed (the node received "
          f"{summary['node_received']['thermal']} thermal / {summary['node_received']['rgb']} RGB frames, "
          f"{summary['pairing_misses']} pairing misses)")
    if latencies:
        print(f"publish -> fused/image latency: p50 {summary['latency_ms_p50']:.1f} ms, "
              f"p95 {summary['latency_ms_p95']:.1f} ms")
    for stage, pct in stages.items():
        print(f"  {stage:>10}: p50 {pct.get('p50', float('nan')):7.2f} ms   p95 {pct.get('p95', float('nan')):7.2f} ms")
    print(f"{summary['objects_detected']} detections; wrote {saved} fused + annotated frames, detections.json and "
          f"summary.json to {out}/")
