"""``ivfusion export student|detector``: ONNX (and TensorRT engines where TensorRT imports), each checked.

    ivfusion export student [--model-dir D] [--out-dir O] [--static WxH] [--presets all|none|a,b] [--engine ...]
    ivfusion export detector --weights yolov8n.yaml|X.pt [--imgsz 640] [--dynamic] [--format onnx|engine]

Every ONNX file passes ``onnx.checker`` and is run in ONNX Runtime against PyTorch; the max abs error is
printed and must stay under ``--tolerance``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivfusion.errors import EngineError, IvfusionError


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> (H, W), the order the tensors use."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x512, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivfusion export", description="Export trained models for deployment.")
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("student", help="the student fusion network -> ONNX (opset 17) [+ TensorRT engine]")
    s.add_argument("--model-dir", default=None, help="save_pretrained folder (default: models/student)")
    s.add_argument("--out", help="the general .onnx (default: <out-dir>/student.onnx, which the backend uses)")
    s.add_argument("--out-dir", help="folder for every file (default: the model dir)")
    shape = s.add_mutually_exclusive_group()
    shape.add_argument("--dynamic", action="store_true", help="dynamic N/H/W (default)")
    shape.add_argument("--static", type=_size, metavar="WxH", help="fixed batch 1 and this size instead")
    s.add_argument("--presets", default="none",
                   help="also write per-preset files with the embedding folded in: all, none, or a comma list")
    s.add_argument("--tolerance", type=float, default=1e-4, help="max abs error vs PyTorch accepted")
    s.add_argument("--engine", action="store_true", help="also build the TensorRT engine into the cache")
    s.add_argument("--precision", default="fp16", choices=("fp16", "fp32", "int8"))
    s.add_argument("--calibration", help="pairs folder (ir/, vi/) for INT8 calibration")
    s.add_argument("--engine-cache", help="engine cache folder (default ~/.cache/ivfusion/engines)")
    d = sub.add_parser("detector", help="an Ultralytics PyTorch detector -> ONNX or TensorRT .engine")
    d.add_argument("--weights", required=True, help=".pt checkpoint or .yaml config (e.g. yolov8n.yaml)")
    d.add_argument("--format", default="onnx", choices=("onnx", "engine"))
    d.add_argument("--imgsz", type=int, default=640)
    d.add_argument("--dynamic", action="store_true", help="dynamic batch/height/width (ONNX)")
    d.add_argument("--fp32", action="store_true", help="engine in FP32 instead of FP16")
    d.add_argument("--out-dir", default="outputs/export", help="folder for the .onnx")
    d.add_argument("--engine-cache", help="engine cache folder (default ~/.cache/ivfusion/engines)")
    d.add_argument("--trust-pickled-weights", action="store_true", help=".pt files are pickles: opt in explicitly")
    d.add_argument("--tolerance", type=float, default=1e-3, help="max relative error vs PyTorch accepted")
    return p


def export_student(args: argparse.Namespace) -> int:
    from ivfusion.export.onnx import OPSET, check_against_torch, torch_to_onnx
    from ivfusion.fusion.student import DEFAULT_MODEL_DIR, ONNX_NAME
    from ivfusion.models.student import StudentFusionNet

    if args.engine:
        from ivfusion.engines.select import tensorrt_unavailable_reason

        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise EngineError(f"--engine needs TensorRT: {reason} (the ONNX export works without it)")
    model_dir = Path(args.model_dir) if args.model_dir else DEFAULT_MODEL_DIR
    out_dir = Path(args.out_dir) if args.out_dir else model_dir
    model = StudentFusionNet.from_pretrained(model_dir)
    presets = {"none": [], "all": sorted(model.preset_embeddings)}.get(args.presets, None)
    if presets is None:
        presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    static = args.static
    tag = f"_{static[1]}x{static[0]}" if static else ""
    jobs: list[tuple[Path, str | None]] = [(Path(args.out) if args.out else out_dir / (ONNX_NAME if not static else
                                            f"student{tag}.onnx"), None)]
    jobs += [(out_dir / f"student{tag}_{name}.onnx", name) for name in presets]
    worst_ok = True
    for path, preset in jobs:
        kw = {"static": True, "sample_size": static} if static else {}
        out = torch_to_onnx(model, path, preset=preset, **kw)
        err = check_against_torch(model, out)
        shape = f"static {static[1]}x{static[0]}" if static else "dynamic N/H/W"
        print(f"wrote {out} (opset {OPSET}, {shape}, preference {'= ' + preset if preset else 'input'}, "
              f"onnx.checker ok); max abs error vs PyTorch: {err:.3g}")
        if err > args.tolerance:
            print(f"error: {out}: max abs error {err:.3g} exceeds {args.tolerance:g}", file=sys.stderr)
            worst_ok = False
    if args.engine:
        from ivfusion.export.engine import onnx_to_engine

        emb = model.preset("detection").numpy() if "detection" in model.preset_embeddings else None
        entry, built = onnx_to_engine(jobs[0][0], precision=args.precision, cache_dir=args.engine_cache,
                                      calibration_dir=args.calibration, embedding=emb,
                                      size=static or (512, 640))
        print(f"TensorRT {args.precision} engine {'built in %.1f s' % entry.build_s if built else 'cache hit'}: "
              f"{entry.path}")
    return 0 if worst_ok else 1


def export_detector(args: argparse.Namespace) -> int:
    from ivfusion.export.detector import DETECTOR_OPSET, cached_detector_engine, check_detector_onnx, export_detector_onnx

    if args.format == "engine":
        path, built, build_s = cached_detector_engine(args.weights, imgsz=args.imgsz, half=not args.fp32,
                                                      cache_dir=args.engine_cache,
                                                      trust_pickled=args.trust_pickled_weights)
        print(f"TensorRT detector engine {'built in %.1f s' % build_s if built else 'cache hit'}: {path} "
              "(set detector.weights to it)")
        return 0
    out, model = export_detector_onnx(args.weights, args.out_dir, imgsz=args.imgsz, dynamic=args.dynamic,
                               trust_pickled=args.trust_pickled_weights)
    err, rel = check_detector_onnx(model, out, imgsz=args.imgsz)
    print(f"wrote {out} (opset {DETECTOR_OPSET}, {'dynamic' if args.dynamic else 'static'} {args.imgsz}, onnx.checker ok); "
          f"raw head output vs PyTorch: max abs error {err:.3g} ({rel:.2g} of the output range)")
    if rel > args.tolerance:
        print(f"error: relative error {rel:.3g} exceeds {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return export_student(args) if args.what == "student" else export_detector(args)
    except IvfusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
