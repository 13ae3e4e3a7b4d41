"""Student latency at 640x512 on this machine: PyTorch and ONNX Runtime, median of many runs, and GMACs.

    .venv/bin/python bench/bench_student.py [--model-dir models/student] [--runs 100] [--size 640x512] [--threads 2]

Times one backend call on preprocessed float tensors (``net``) and the full ``FusionBackend.fuse`` on uint8
BGR frames including colour conversion (``fuse``); prints a Markdown table and writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from ivfusion.export.onnx import OnnxStudent, torch_to_onnx
from ivfusion.fusion.preference import parse_preference
from ivfusion.fusion.student import DEFAULT_MODEL_DIR, ONNX_NAME, StudentFusion
from ivfusion.models.macs import count_macs
from ivfusion.models.student import StudentFusionNet
from ivfusion.runtime.stats import median_p95_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--size", default="640x512", help="WxH")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    w, h = map(int, args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    model = StudentFusionNet.from_pretrained(args.model_dir)
    rng = np.random.default_rng(0)
    t = torch.from_numpy(rng.random((1, 1, h, w), dtype=np.float32))
    v = torch.from_numpy(rng.random((1, 3, h, w), dtype=np.float32))
    e = model.preset("balanced")
    macs = count_macs(model, t, v, e)
    try:
        import thop  # the ultralytics-thop package, as a cross-check

        thop_macs, _ = thop.profile(model, inputs=(t, v, e), verbose=False)
    except Exception as exc:  # noqa: BLE001 - optional cross-check only
        thop_macs = float("nan")
        print(f"(thop cross-check unavailable: {exc})")
    onnx_path = args.model_dir / ONNX_NAME
    tmp = None
    if not onnx_path.exists():
        tmp = tempfile.TemporaryDirectory()
        onnx_path = torch_to_onnx(model, Path(tmp.name) / ONNX_NAME)
    ort = OnnxStudent(onnx_path, threads=args.threads)
    tn, vn, en = t.numpy(), v.numpy(), e.numpy()
    rows = {}
    with torch.inference_mode():
        rows["PyTorch net"] = median_p95_ms(lambda: model(t, v, e), args.runs)
    rows["ONNX Runtime net"] = median_p95_ms(lambda: ort.run(tn, vn, en), args.runs)
    thermal = rng.integers(0, 256, (h, w), dtype=np.uint8)
    visible = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pref = parse_preference("balanced")
    for runtime, label in (("torch", "PyTorch fuse()"), ("onnxruntime", "ONNX Runtime fuse()")):
        if runtime == "onnxruntime" and not (args.model_dir / ONNX_NAME).exists():
            continue
        backend = StudentFusion(args.model_dir, runtime=runtime, threads=args.threads)
        rows[label] = median_p95_ms(lambda: backend.fuse(thermal, visible, pref), args.runs)
    from ivfusion.fusion.classical import LaplacianPyramidFusion

    classical = LaplacianPyramidFusion()
    rows["classical fuse() (reference)"] = median_p95_ms(lambda: classical.fuse(thermal, visible, pref), args.runs)
    print(f"\nstudent {args.model_dir} at {w}x{h}, {args.threads} threads, {args.runs} runs; "
          f"{macs / 1e9:.3f} GMAC (hooks over Conv2d/Linear), thop: {thop_macs / 1e9:.3f} GMAC, "
          f"{sum(p.numel() for p in model.parameters()) / 1e3:.1f} k parameters\n")
    print("| path | median ms | p95 ms |\n|---|---|---|")
    for k, (med, p95) in rows.items():
        print(f"| {k} | {med:.1f} | {p95:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"size": [w, h], "threads": args.threads, "runs": args.runs, "gmac": macs / 1e9,
                                         "thop_gmac": thop_macs / 1e9, "ms": {k: {"median": m, "p95": q} for k, (m, q) in rows.items()}},
                                        indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
