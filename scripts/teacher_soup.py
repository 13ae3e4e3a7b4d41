"""Combine the weights of teacher runs fine-tuned from the same PALDM: a soup, or an extrapolation.

    python scripts/teacher_soup.py outputs/gpu/reward_g/reward_g_f0_s{1,2,3}/final --out outputs/gpu/reward_g/soup_f0
    python scripts/teacher_soup.py outputs/train/paldm/final outputs/train/idpo_v10b_f0/final --weights -1 2 \
        --out outputs/train/expo2_v10b_f0

Why: replicates of one recipe differ by more than the MSRS bootstrap interval (docs/teacher.md); runs that start
from one model and move little stay in one basin, so their mean keeps what the seeds share. Weights (1 - a, a) on
(reference, tuned) extrapolate the fine-tuning step a times (ivfusion.teacher.merge).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ivfusion.teacher.merge import combine


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", type=Path, nargs="+", help="save_pretrained folders of one architecture")
    p.add_argument("--weights", type=float, nargs="+", help="one per model, summing to 1 (default: the mean)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    combine(args.models, args.weights).save_pretrained(args.out)
    weights = args.weights or [1 / len(args.models)] * len(args.models)
    print(f"{args.out}: " + " + ".join(f"{w:g} x {m}" for w, m in zip(weights, args.models)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
