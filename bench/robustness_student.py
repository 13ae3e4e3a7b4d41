"""Fusion metrics on synthetically degraded inputs, scored against the CLEAN sources: student vs classical.

    .venv/bin/python bench/robustness_student.py [--dataset msrs] [--model-dir models/student] [--limit N]

Each pair gets each degradation of ``ivfusion.training.degradations`` (seeded per pair, so runs repeat);
the published peers cannot be re-run here (only their outputs on clean inputs are shared), so the comparison
is with the classical baseline. Also reports how often the student's ``auto`` head flags the applied
degradation (probability > 0.5).
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import cv2
import numpy as np

from ivfusion.evaluation.datasets import open_dataset
from ivfusion.fusion.classical import LaplacianPyramidFusion
from ivfusion.fusion.preference import parse_preference
from ivfusion.fusion.student import DEFAULT_MODEL_DIR, StudentFusion
from ivfusion.metrics.fusion import METRICS, fusion_metrics
from ivfusion.models.student import DEGRADATIONS
from ivfusion.training.degradations import apply


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="msrs")
    p.add_argument("--split", default="all")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--preference", default="balanced")
    p.add_argument("--limit", type=int)
    args = p.parse_args()
    ds = open_dataset(args.dataset, split=args.split, limit=args.limit)
    pref = parse_preference(args.preference)
    student = StudentFusion(args.model_dir, runtime="torch")
    methods = {"classical": LaplacianPyramidFusion(), "student": student}
    inputs = ("clean",) + DEGRADATIONS
    sums = {(deg, m): np.zeros(len(METRICS)) for deg in inputs for m in methods}
    flagged = dict.fromkeys(DEGRADATIONS, 0)
    embedding = student.embedding(pref)
    for stem in ds.stems:  # each pair is read and converted once, then degraded every way
        s = ds.folder.load(stem)
        clean_bgr = s.bgr
        for deg in inputs:
            rng = np.random.default_rng(zlib.crc32(f"{deg}/{stem}".encode()))
            t, rgb = (s.thermal, s.rgb) if deg == "clean" else apply(deg, s.thermal, s.rgb, rng)
            vis_bgr = clean_bgr if deg == "clean" else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            for name, backend in methods.items():
                if backend is student:  # one network pass gives the fused frame and the auto head's estimate
                    fused, probs = student.fuse_and_estimate(t, vis_bgr, embedding)
                    if deg != "clean":
                        flagged[deg] += int(probs[DEGRADATIONS.index(deg)] > 0.5)
                else:
                    fused = backend.fuse(t, vis_bgr, pref)
                vals = fusion_metrics(s.thermal, clean_bgr, fused)
                sums[deg, name] += [vals[k] for k in METRICS]
    n = len(ds.stems)
    rows = [(deg, name, sums[deg, name] / n, f"{flagged[deg]}/{n}" if name == "student" and deg != "clean" else "")
            for deg in inputs for name in methods]
    print(f"\n{args.dataset} ({len(ds.stems)} pairs), preference {pref.text}; metrics vs the clean sources\n")
    print("| input | method | " + " | ".join(METRICS) + " | auto head flags it |")
    print("|---|---|" + "---|" * len(METRICS) + "---|")
    for deg, name, vals, fl in rows:
        print(f"| {deg} | {name} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {fl} |")


if __name__ == "__main__":
    main()
