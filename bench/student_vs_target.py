"""How far the student's output is from the intensity target it was trained towards, per MSRS image (grey levels).

    .venv/bin/python bench/detection_targets.py        # renders outputs/targets/<variant>/ first
    .venv/bin/python bench/student_vs_target.py --model outputs/train/student_s4/final --preference detection

Why: the `detection` target helps the detector (bench/detection_targets.py) while the student trained on it does
not; this says whether the student misses the target by much or the detector is sensitive to small differences.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from ivfusion.evaluation.datasets import open_dataset
from ivfusion.models.student import StudentFusionNet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/student")
    ap.add_argument("--preference", default="detection")
    ap.add_argument("--targets", type=Path, default=Path("outputs/targets"))
    ap.add_argument("--variant", default="detection", help="target folder under --targets")
    args = ap.parse_args()
    model = StudentFusionNet.from_pretrained(args.model).eval()
    emb = model.preset_embeddings[args.preference][None]
    ds = open_dataset("msrs", split="all")
    abs_diff, signed = [], []
    for stem in ds.stems:
        s = ds.folder.load(stem)
        t = torch.from_numpy(s.thermal).float().div(255)[None, None]
        v = torch.from_numpy(s.rgb).float().div(255).permute(2, 0, 1)[None]
        with torch.no_grad():
            y = model(t, v, emb).y[0, 0].numpy() * 255
        target = cv2.imread(str(args.targets / args.variant / f"{stem}.png"))
        if target is None:
            raise SystemExit(f"missing target {args.targets / args.variant / stem}.png: run bench/detection_targets.py")
        ty = cv2.cvtColor(target, cv2.COLOR_BGR2YCrCb)[..., 0].astype(np.float64)
        abs_diff.append(float(np.abs(y - ty).mean()))
        signed.append(float((y - ty).mean()))
    print(f"{args.model} [{args.preference}] vs target/{args.variant} on MSRS ({len(abs_diff)} pairs): "
          f"mean |student - target| {np.mean(abs_diff):.1f} grey levels (median {np.median(abs_diff):.1f}, "
          f"max {np.max(abs_diff):.1f}), mean signed {np.mean(signed):+.1f}")


if __name__ == "__main__":
    main()
