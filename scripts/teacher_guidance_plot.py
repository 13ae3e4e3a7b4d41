"""Plot what classifier-free guidance buys and costs: mAP@0.5 gain over PALDM and its MI / VIF price, per run.

    python scripts/teacher_guidance_plot.py docs/img/teacher_guidance.png outputs/teacher/msrs_map_<tag>.json ...

Reads ``teacher_report.py map`` results (``bootstrap_vs_first`` and ``metrics_vs_first``); each row of a
``--preference`` (default ``detection``) becomes one point at its guidance (1 where the name gives none), one line
per run, with its 90 % paired interval. Files over other noise seeds are drawn as they are: the legend names the
seeds, since a point's interval is only comparable with points of the same seeds.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path


def points(files: list[Path], preference: str) -> dict[str, list[dict]]:
    """run -> [{guidance, seeds, map: (diff, low, high), MI, VIF}] from every file's rows for ``preference``."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for f in files:
        d = json.loads(f.read_text())
        seeds = ",".join(str(s) for s in d.get("seeds", [0]))
        metrics = {(r["a"], r["metric"]): r["diff"] for r in d.get("metrics_vs_first", [])}
        for r in d.get("bootstrap_vs_first", []):
            if r["labels"] != "fused" or f"/{preference}" not in r["a"]:
                continue
            run = re.search(r"PCLDM (\S+)/", r["a"])
            guidance = re.search(r"guidance ([\d.]+)", r["a"])
            runs[run.group(1) if run else r["a"]].append({
                "guidance": float(guidance.group(1)) if guidance else 1.0, "seeds": seeds,
                "map": (r["diff"], r["low"], r["high"]),
                "MI": metrics.get((r["a"], "MI")), "VIF": metrics.get((r["a"], "VIF"))})
    return runs


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--preference", default="detection")
    args = p.parse_args()
    runs = points(args.files, args.preference)
    if not runs:
        raise SystemExit(f"no `{args.preference}` rows in {[str(f) for f in args.files]}")
    fig, (ax_map, ax_mi, ax_vif) = plt.subplots(1, 3, figsize=(13, 3.8))
    lines = [(run, seeds) for run, pts in sorted(runs.items()) for seeds in sorted({q["seeds"] for q in pts})]
    for k, (run, seeds) in enumerate(lines):
        sel = sorted((q for q in runs[run] if q["seeds"] == seeds), key=lambda q: q["guidance"])
        x = [q["guidance"] + 0.05 * (k - (len(lines) - 1) / 2) for q in sel]  # side by side, not on top
        mean = [q["map"][0] for q in sel]
        err = [[q["map"][0] - q["map"][1] for q in sel], [q["map"][2] - q["map"][0] for q in sel]]
        label = f"{run} (seeds {seeds})"
        line = ax_map.errorbar(x, mean, yerr=err, marker="o", capsize=3, label=label)
        for ax, metric in ((ax_mi, "MI"), (ax_vif, "VIF")):
            ax.plot(x, [q[metric] for q in sel], marker="o", color=line[0].get_color(), label=label)
    ax_map.axhline(0, color="grey", lw=0.8)
    ax_map.set(xlabel="guidance", ylabel="mAP@0.5 (fused labels) − PALDM", title="gain, 90 % paired interval")
    ax_mi.set(xlabel="guidance", ylabel="MI − PALDM", title="price: mutual information")
    ax_vif.set(xlabel="guidance", ylabel="VIF − PALDM", title="price: VIF")
    ax_map.legend(fontsize=7)
    fig.suptitle(f"MSRS, 35 frames, cross-fitted: `{args.preference}` under classifier-free guidance")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
