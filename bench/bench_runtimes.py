"""Per-stage latency per available runtime, the node's overhead over the raw model calls, and 30 Hz throughput.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_runtimes.py [--frames 60] [--sustain-s 10] [--no-detector]

For each input case (640x512 and 640x480 fused frames, 16-bit thermal through AGC) and each runtime
``select_runtime`` finds on this machine (plus the classical fallback), runs the ROS-free pipeline the node
runs and prints p50/p95 of convert, agc, register, fuse, detect and publish (the bgr8 Image + Detection2DArray
messages built and serialised as rclpy does before handing them to DDS; transport not included).
"raw model calls" are the student network alone on ready float tensors plus the detector's predict call;
"overhead" is total + publish minus those. The sustained run feeds pairs at 30 Hz for ``--sustain-s`` seconds
into the node's own latest-wins worker and counts processed vs dropped frames. Numbers, not asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from ivfusion.engines.select import RuntimeOptions, runtime_candidates
from ivfusion.fusion.classical import LaplacianPyramidFusion
from ivfusion.fusion.preference import parse_preference
from ivfusion.fusion.student import DEFAULT_MODEL_DIR, ONNX_NAME, StudentFusion
from ivfusion.pipeline import FusionPipeline, RawImage
from ivfusion.registration.homography import Registration
from ivfusion.runtime.stats import StageTimer, time_calls_ms
from ivfusion.runtime.worker import LatestWinsWorker
from ivfusion.sim.scene import SceneConfig, SceneGenerator

CASES = {
    "640x512": SceneConfig(width=640, height=512, thermal_width=640, thermal_height=512, thermal_bits=16, night=True),
    "640x480": SceneConfig(width=640, height=480, thermal_width=640, thermal_height=512, thermal_bits=16, night=True),
}


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _publisher():
    """Build + serialise the two output messages, as the node's publish stage does before DDS takes over.
    Without rclpy (e.g. a GPU machine without ROS) publishing is skipped and its column reads ~0."""
    try:
        from rclpy.serialization import serialize_message
    except ImportError:
        print("rclpy not importable: the publish stage is not measured (its column is ~0)")
        return lambda result: None
    from std_msgs.msg import Header

    from ivfusion.ros import messages

    header = Header(frame_id="rgb")

    def publish(result) -> None:
        serialize_message(messages.array_to_image(result.fused, "bgr8", header))
        serialize_message(messages.detections_to_msg(result.detections, header))

    return publish


def _backends(threads: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for choice in runtime_candidates("auto", onnx_path=DEFAULT_MODEL_DIR / ONNX_NAME):
        b = StudentFusion(options=RuntimeOptions(runtime=choice.name, threads=threads))
        if b.describe() == choice.label:
            out[f"student/{choice.label}"] = b
    out["classical"] = LaplacianPyramidFusion()
    return out


def _raw_net_ms(backend, h: int, w: int, runs: int) -> float:
    rng = np.random.default_rng(0)
    t, v = rng.random((1, 1, h, w), dtype=np.float32), rng.random((1, 3, h, w), dtype=np.float32)
    e = backend.embedding(parse_preference("detection"))
    times = time_calls_ms(lambda: backend._runner.run(t, v, e), runs, warmup=3)
    return _pct(times)[0]


def _sustained(pipe: FusionPipeline, raws, seconds: float, hz: float = 30.0) -> tuple[int, int, int]:
    publish = _publisher()
    worker: LatestWinsWorker = LatestWinsWorker(lambda pair: publish(pipe.process(*pair)))
    period, start = 1.0 / hz, time.perf_counter()
    n = int(seconds * hz)
    for i in range(n):
        delay = start + i * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        worker.submit(i * int(period * 1e9), raws[i % len(raws)])
    deadline = time.perf_counter() + 5
    while worker.stats.processed + worker.stats.dropped + worker.stats.failed < n and time.perf_counter() < deadline:
        time.sleep(0.01)
    worker.stop()
    s = worker.stats
    return n, s.processed, s.dropped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--sustain-s", type=float, default=10.0, help="seconds at 30 Hz per runtime (0: skip)")
    p.add_argument("--threads", type=int, default=1, help="student intra-op threads (the node uses 1)")
    p.add_argument("--no-detector", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    detector = None
    if not args.no_detector:
        from ivfusion.detection import Detector, DetectorConfig

        detector = Detector(DetectorConfig())
    publish = _publisher()
    backends = _backends(args.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}; detector: {detector.source if detector else 'off'}; "
          f"runtimes: {', '.join(backends)}")
    for case, scene in CASES.items():
        gen = SceneGenerator(scene)
        frames = [gen.frame(i) for i in range(10)]
        raws = [(RawImage.from_array(f.thermal, "mono16"), RawImage.from_array(f.rgb, "rgb8")) for f in frames]
        h, w = scene.height, scene.width
        print(f"\n## fused {case} (thermal 640x512 mono16, RGB {w}x{h} rgb8), {args.frames} frames\n")
        print("| fusion | convert | agc | register | fuse | detect | publish | total+publish | raw model calls | overhead |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        sustained = {}
        for name, backend in backends.items():
            pipe = FusionPipeline(backend, Registration.from_params([]), detector.detect if detector else None,
                                  preference="detection")
            for pair in raws[:3]:
                pipe.process(*pair)
            timer = StageTimer(size=args.frames)
            for i in range(args.frames):
                result = pipe.process(*raws[i % len(raws)])
                t0 = time.perf_counter()
                publish(result)
                timings = dict(result.timings_ms, publish=(time.perf_counter() - t0) * 1e3)
                timings["total+publish"] = timings["total"] + timings["publish"]
                timer.add_all(timings)
            s = timer.summary()
            net = _raw_net_ms(backend, h, w, 20) if hasattr(backend, "_runner") else 0.0
            det = s["detect"]["p50"] if detector else 0.0
            raw = net + det
            cells = " | ".join(f"{s[k]['p50']:.2f} / {s[k]['p95']:.2f}" for k in
                               ("convert", "agc", "register", "fuse", "detect", "publish", "total+publish"))
            print(f"| {name} | {cells} | {raw:.2f} (net {net:.2f}) | {s['total+publish']['p50'] - raw:.2f} |")
            if args.sustain_s > 0 and case == "640x512":
                sustained[name] = _sustained(pipe, raws, args.sustain_s)
        for name, (n, done, dropped) in sustained.items():
            print(f"\n30 Hz for {args.sustain_s:.0f} s, {name}: {n} pairs in, {done} processed "
                  f"({done / args.sustain_s:.1f} Hz), {dropped} dropped (latest-wins)")


if __name__ == "__main__":
    main()
