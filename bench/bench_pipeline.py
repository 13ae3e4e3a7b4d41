"""Per-stage latency of the ROS-free pipeline (convert, AGC, register, fuse, detect) on this machine.

    .venv/bin/python bench/bench_pipeline.py [--frames 100] [--no-detector]

Prints p50/p95 per stage for 640x512 (Boson-class thermal, mono16) + 640x480 RGB and for 640x480 pairs.
Numbers, not asserts: copy them into docs/benchmarks.md with the command line.
"""

from __future__ import annotations

import argparse
import os
import platform

from tqdm import tqdm

from ivfusion.detection import Detector, DetectorConfig
from ivfusion.fusion.factory import create_backend
from ivfusion.pipeline import FusionPipeline, RawImage
from ivfusion.registration.homography import Registration
from ivfusion.runtime.stats import StageTimer
from ivfusion.sim.scene import SceneConfig, SceneGenerator

CASES = {
    "thermal 640x512 mono16 -> RGB 640x480": SceneConfig(width=640, height=480, thermal_width=640, thermal_height=512,
                                                         thermal_bits=16, night=True),
    "thermal 640x480 mono8 + RGB 640x480": SceneConfig(width=640, height=480, thermal_bits=8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--no-detector", action="store_true")
    parser.add_argument("--preference", default="detection")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    detector = None if args.no_detector else Detector(DetectorConfig())
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"detector: {detector.source if detector else 'off'}; preference: {args.preference}")
    for name, scene in CASES.items():
        gen = SceneGenerator(scene)
        t_enc = "mono16" if scene.thermal_bits == 16 else "mono8"
        frames = [gen.frame(i) for i in range(min(args.frames, 20))]
        raws = [(RawImage.from_array(f.thermal, t_enc), RawImage.from_array(f.rgb, "rgb8")) for f in frames]
        pipe = FusionPipeline(create_backend("classical"), Registration.from_params([]),
                              detector.detect if detector else None, preference=args.preference)
        for t, r in raws[:3]:
            pipe.process(t, r)  # warm-up
        timer = StageTimer(size=args.frames)
        for i in tqdm(range(args.frames), desc=name, leave=False):
            timer.add_all(pipe.process(*raws[i % len(raws)]).timings_ms)
        print(f"\n## {name} ({args.frames} frames)\n\n| stage | p50 ms | p95 ms |\n|---|---|---|")
        for stage, pct in timer.summary().items():
            print(f"| {stage} | {pct['p50']:.2f} | {pct['p95']:.2f} |")


if __name__ == "__main__":
    main()
