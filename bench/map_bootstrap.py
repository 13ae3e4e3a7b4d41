"""Is method A's MSRS mAP@0.5 really above method B's, or is it 35-image noise? A paired bootstrap over images.

Runs ``ivfusion.evaluation.evaluate`` once (detections of every method on every pair), then resamples the images
with replacement N times and recomputes each method's mAP on the same resample, so the difference A - B is
paired (``ivfusion.evaluation.bootstrap``). Prints, per label set, the observed difference, its 90 % bootstrap
interval and how often A > B.

    .venv/bin/python bench/map_bootstrap.py --a student:detection --b student:visual [--b infrared ...]
"""

from __future__ import annotations

import argparse

from ivfusion.evaluation.bootstrap import paired_map_bootstrap
from ivfusion.evaluation.datasets import open_dataset
from ivfusion.evaluation.methods import parse_method
from ivfusion.evaluation.runner import evaluate


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
    for labels in args.labels.split(","):
        for d in paired_map_bootstrap(result, ds.folder, list(ds.stems), labels=labels, n=args.n, seed=args.seed):
            print(d.line())


if __name__ == "__main__":
    main()
