"""``ivfusion export student [--model-dir models/student] [--out FILE]``: ONNX export, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ivfusion export", description="Export a trained model for deployment.")
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("student", help="the student fusion network -> ONNX (opset 17)")
    s.add_argument("--model-dir", default=None, help="save_pretrained folder (default: models/student)")
    s.add_argument("--out", help="output .onnx (default: <model-dir>/student.onnx, which the backend then uses)")
    s.add_argument("--tolerance", type=float, default=1e-4, help="max abs error vs PyTorch accepted")
    args = p.parse_args(argv)

    from ivfusion.export.onnx import OPSET, check_against_torch, torch_to_onnx
    from ivfusion.fusion.student import DEFAULT_MODEL_DIR, ONNX_NAME
    from ivfusion.models.student import StudentFusionNet

    model_dir = Path(args.model_dir) if args.model_dir else DEFAULT_MODEL_DIR
    model = StudentFusionNet.from_pretrained(model_dir)
    out = torch_to_onnx(model, Path(args.out) if args.out else model_dir / ONNX_NAME)
    err = check_against_torch(model, out)
    print(f"wrote {out} (opset {OPSET}, onnx.checker ok); max abs error vs PyTorch: {err:.3g}")
    if err > args.tolerance:
        print(f"error: max abs error {err:.3g} exceeds {args.tolerance:g}")
        return 1
    return 0
