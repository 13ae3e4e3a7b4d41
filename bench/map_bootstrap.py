"""Is method A's MSRS mAP@0.5 really above method B's, or is it 35-image noise? A paired bootstrap over images.

Runs ``ivfusion.evaluation.evaluate`` once (detections of every method on every pair), then resamples the images
with replacement N times and recomputes each method's mAP on the same resample, so the difference A - B is
paired. Prints, per label set, the observed difference, its 90 % bootstrap interval and how often A > B.

    .venv/bin/python bench/map_bootstrap.py --a student:detection --b student:visual [--b infrared ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from ivfusion.evaluation.datasets import open_dataset
from ivfusion.evaluation.methods import parse_method
from ivfusion.evaluation.runner import EVAL_CLASSES, evaluate
from ivfusion.metrics.detection import DATASET_TO_COCO, evaluate_detections, map_predictions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="method spec, e.g. student:detection or student:detection@DIR")
    ap.add_argument("--b", action="append", required=True, help="method(s) to compare against (repeatable)")
    ap.add_argument("--dataset", default="msrs")
    ap.add_argument("--labels", default="fused,union")
    ap.add_argument("--n", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ds = open_dataset(args.dataset, split="all")
    methods = [parse_method(args.a)] + [parse_method(b) for b in args.b]
    result = evaluate(ds, methods, metrics=False)
    stems = list(ds.stems)
    rng = np.random.default_rng(args.seed)
    draws = [rng.integers(0, len(stems), len(stems)) for _ in range(args.n)]
    preds = [{s: map_predictions(r.detections.get(s, []), DATASET_TO_COCO) for s in stems} for r in result.methods]
    for labels in args.labels.split(","):
        gt = {s: ds.folder.labels(s, labels) or [] for s in stems}

        def map50s(idx: np.ndarray) -> list[float]:
            """mAP@0.5 of every method on the images ``idx``; resampled images get unique keys so a twice-drawn
            image counts twice, and the keys and ground truth are built once per draw for all methods."""
            keys = [f"{stems[i]}#{k}" for k, i in enumerate(idx)]
            truth = {key: gt[stems[i]] for key, i in zip(keys, idx)}
            return [evaluate_detections({key: p[stems[i]] for key, i in zip(keys, idx)}, truth, EVAL_CLASSES).map50
                    for p in preds]

        observed = map50s(np.arange(len(stems)))
        boot = np.array([map50s(idx) for idx in tqdm(draws, desc=labels)])
        for j, b in enumerate(args.b, start=1):
            d = boot[:, 0] - boot[:, j]
            lo, hi = np.percentile(d, [5, 95])
            print(f"labels={labels:<5} {args.a} {observed[0]:.3f} vs {b} {observed[j]:.3f}: diff {observed[0] - observed[j]:+.3f}"
                  f"  90% CI [{lo:+.3f}, {hi:+.3f}]  P(A > B) = {(d > 0).mean():.2f}")


if __name__ == "__main__":
    main()
