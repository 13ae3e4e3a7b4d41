"""How much the preference moves the student's output: mean absolute difference from ``visual`` (grey levels).

    .venv/bin/python bench/preference_control.py [--dataset msrs] [--split all]

Prints one Markdown row per dataset; the numbers back the "Preference control" table in docs/student.md.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from ivfusion.evaluation.datasets import open_dataset
from ivfusion.fusion.preference import parse_preference
from ivfusion.fusion.student import StudentFusion

PREFERENCES = ("detection", "balanced", "low_light", "fog", "make the pedestrians stand out at night")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", action="append", help="default: msrs and roadscene")
    parser.add_argument("--split", default="val", help="pinned split where one exists (RoadScene); 'all' otherwise")
    args = parser.parse_args()
    backend = StudentFusion()
    reference = parse_preference("visual")
    print("| dataset | " + " | ".join(PREFERENCES) + " |\n|---|" + "---|" * len(PREFERENCES))
    for name in args.dataset or ["msrs", "roadscene"]:
        dataset = open_dataset(name, split=args.split)
        diffs: dict[str, list[float]] = {p: [] for p in PREFERENCES}
        for stem in tqdm(dataset.stems, desc=name, leave=False):
            sample = dataset.folder.load(stem)
            base = backend.fuse(sample.thermal, sample.bgr, reference).astype(np.float64)
            for p in PREFERENCES:
                out = backend.fuse(sample.thermal, sample.bgr, parse_preference(p)).astype(np.float64)
                diffs[p].append(float(np.abs(out - base).mean()))
        print(f"| {name} ({dataset.split}) | " + " | ".join(f"{np.mean(diffs[p]):.1f}" for p in PREFERENCES) + " |")


if __name__ == "__main__":
    main()
