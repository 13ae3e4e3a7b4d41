"""``ivfusion fuse --ir DIR --vi DIR --out DIR [--preference P] [--backend B]``: fuse a folder of pairs.

Files are paired by stem (``ir/x.png`` with ``vi/x.jpg``); each fused frame is written as ``<out>/<stem>.png``
at the visible image's size (a thermal image of another size is resized onto it: the pairs are assumed
registered). Backends: the student on a runtime of ``ivfusion.engines.select`` (``auto`` picks the fastest that
works here; ``tensorrt``, ``onnxruntime``, ``torch`` ask for one) or ``classical``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from ivfusion.data import pairs
from ivfusion.engines.select import RUNTIMES
from ivfusion.errors import IvfusionError
from ivfusion.fusion.preference import parse_preference

CHOICES = (*RUNTIMES, "classical")


def _index(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise IvfusionError(f"fuse: {folder} is not a folder")
    return pairs._index(folder)  # the stem -> image file index PairsFolder builds for ir/ and vi/


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ivfusion fuse", description=__doc__.split("\n\n")[0])
    p.add_argument("--ir", required=True, type=Path, help="folder of thermal images")
    p.add_argument("--vi", required=True, type=Path, help="folder of visible images (colour or gray)")
    p.add_argument("--out", required=True, type=Path, help="output folder for <stem>.png")
    p.add_argument("--preference", default="balanced", help="preset (detection, visual, balanced, low_light, fog) or free text")
    p.add_argument("--backend", default="auto", choices=CHOICES)
    p.add_argument("--model-dir", type=Path, help="student folder (default models/student)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        pref = parse_preference(args.preference)
        ir, vi = _index(args.ir), _index(args.vi)
        stems = sorted(set(ir) & set(vi))
        if not stems:
            raise IvfusionError(f"fuse: no file stem is present in both {args.ir} and {args.vi}")
        if args.backend == "classical":
            from ivfusion.fusion.classical import LaplacianPyramidFusion

            backend = LaplacianPyramidFusion()
        else:
            from ivfusion.fusion.student import DEFAULT_MODEL_DIR, StudentFusion

            backend = StudentFusion(args.model_dir or DEFAULT_MODEL_DIR, runtime=args.backend)
        args.out.mkdir(parents=True, exist_ok=True)
        for stem in tqdm(stems, desc=f"fuse ({backend.name}, {pref.text})", unit="pair", disable=args.no_progress):
            thermal = cv2.imread(str(ir[stem]), cv2.IMREAD_GRAYSCALE)
            visible = cv2.imread(str(vi[stem]), cv2.IMREAD_COLOR)
            if thermal is None or visible is None:
                raise IvfusionError(f"fuse: cannot read pair {stem!r} ({ir[stem]}, {vi[stem]})")
            h, w = visible.shape[:2]
            if thermal.shape != (h, w):
                thermal = cv2.resize(thermal, (w, h), interpolation=cv2.INTER_LINEAR)
            out = args.out / f"{stem}.png"
            if not cv2.imwrite(str(out), backend.fuse(thermal, visible, pref)):
                raise IvfusionError(f"fuse: cannot write {out}")
        skipped = len(set(ir) ^ set(vi))
        print(f"fused {len(stems)} pairs into {args.out}" + (f" ({skipped} unpaired files skipped)" if skipped else ""))
    except IvfusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
