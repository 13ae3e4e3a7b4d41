"""Student latency on a CUDA GPU at 640x512: the node's torch runtime (FP16/FP32, with and without CUDA graphs).

    python bench/bench_student_gpu.py [--model-dir models/student] [--runs 500] [--size 640x512]

Times ``StudentFusion.fuse`` end to end on uint8 BGR frames (upload, the network, colour conversion on the
device, download), i.e. what the node pays per frame; ``torch.cuda.synchronize`` is implied by the download.
Numbers, not asserts; needs a CUDA device (run it on the GPU machine, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ivfusion.engines.select import RuntimeOptions
from ivfusion.fusion.preference import parse_preference
from ivfusion.fusion.student import DEFAULT_MODEL_DIR, StudentFusion
from ivfusion.runtime.stats import median_p95_ms


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--size", default="640x512", help="WxH")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible: run this on a GPU machine")
    w, h = (int(x) for x in args.size.split("x"))
    rng = np.random.default_rng(0)
    thermal, bgr = rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8)
    pref = parse_preference("detection")
    rows = {}
    for precision in ("fp16", "fp32"):
        for graphs in (False, True):
            fusion = StudentFusion(args.model_dir, options=RuntimeOptions(runtime="torch", precision=precision,
                                                                           cuda_graphs=graphs))
            median, p95 = median_p95_ms(lambda: fusion.fuse(thermal, bgr, pref), args.runs, 20)
            rows[f"torch cuda {precision}{' + CUDA graphs' if graphs else ''}"] = {"median_ms": median, "p95_ms": p95}
    print(f"| path ({torch.cuda.get_device_name()}, {args.size}, {args.runs} runs) | median ms | p95 ms |")
    print("|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "size": args.size, **rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
