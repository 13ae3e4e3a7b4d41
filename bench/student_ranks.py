"""Mean rank over the nine fusion metrics from ``ivfusion eval`` summaries (the issue's "done when" rule).

    .venv/bin/python bench/student_ranks.py outputs/eval_student/msrs/summary.csv [...]

For each student row ("ours"), the contenders are that row plus every baseline and peer (copies of one source
are sanity anchors, not contenders). Each metric ranks the contenders (1 = best, higher is better for all nine,
ties share the average rank); a method's mean rank is the average of its nine ranks. Also checks SCD >= 1.5.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from scipy.stats import rankdata

from ivfusion.metrics.fusion import METRICS


def ranks(rows: list[dict]) -> dict[str, float]:
    values = np.array([[float(r[m]) for m in METRICS] for r in rows])
    per_metric = rankdata(-values, method="average", axis=0)  # 1 = best, ties share the average rank
    return {r["method"]: float(mean) for r, mean in zip(rows, per_metric.mean(axis=1))}


def main(paths: list[str]) -> None:
    for path in paths:
        rows = list(csv.DictReader(open(path)))
        others = [r for r in rows if r["kind"] in ("baseline", "peer")]
        ours = [r for r in rows if r["kind"] == "ours"]
        print(f"\n{path}\n")
        print("| student preset | its mean rank | best other (mean rank) | better than all? | SCD |")
        print("|---|---|---|---|---|")
        for r in ours:
            rk = ranks(others + [r])
            best_other = min((v, k) for k, v in rk.items() if k != r["method"])
            ok = rk[r["method"]] < best_other[0]
            print(f"| {r['method']} | {rk[r['method']]:.2f} | {best_other[1]} ({best_other[0]:.2f}) | "
                  f"{'yes' if ok else 'no'} | {float(r['SCD']):.3f} |")
        full = ranks(others + ours)
        print("\nAll together (every contender and every student preset in one ranking):\n")
        print("| method | mean rank |\n|---|---|")
        for k, v in sorted(full.items(), key=lambda kv: kv[1]):
            print(f"| {k} | {v:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
