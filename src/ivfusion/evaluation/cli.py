"""``ivfusion eval``: methods × datasets → tables on stdout, a report folder per dataset, optionally docs/results.md."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from ivfusion.evaluation.datasets import SHARED_DATASETS, open_dataset
from ivfusion.evaluation.methods import available_peers, parse_method
from ivfusion.evaluation.report import markdown, write_report
from ivfusion.evaluation.runner import evaluate

DEFAULT_METHODS = ("infrared", "visible", "classical:detection", "classical:visual", "classical:balanced",
                   "student:detection", "student:visual", "student:balanced")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ivfusion eval", description=__doc__)
    p.add_argument("--dataset", action="append", help=f"shared name ({', '.join(SHARED_DATASETS)}) or a pairs folder; "
                                                      "repeatable; default: all shared datasets")
    p.add_argument("--methods", help="comma list: classical[:pref], student[:pref[@DIR]], teacher[:pref[@DIR]] "
                                     "(the diffusion teacher: seconds per frame), peer:NAME, folder:PATH[=NAME], "
                                     "infrared, visible; "
                                     f"default: {','.join(DEFAULT_METHODS)} + every peer of the dataset")
    p.add_argument("--no-peers", action="store_true", help="do not add the dataset's peers to the default methods")
    p.add_argument("--split", default="val", help="pinned split where one exists (config/splits); 'all' for every pair")
    p.add_argument("--limit", type=int, help="first N pairs only")
    p.add_argument("--out", default="outputs/eval", help="report folder (one sub-folder per dataset)")
    p.add_argument("--no-metrics", action="store_true")
    p.add_argument("--no-detection", action="store_true")
    p.add_argument("--verify", action="store_true", help="recompute every metric with the independent implementation")
    p.add_argument("--results-md", help="write all tables to this Markdown file (docs/results.md)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sections = []
    for spec in args.dataset or list(SHARED_DATASETS):
        dataset = open_dataset(spec, split=args.split, limit=args.limit)
        if args.methods:
            specs = args.methods.split(",")
        else:
            specs = list(DEFAULT_METHODS) + ([] if args.no_peers else [f"peer:{n}" for n in available_peers(dataset.peers_dir)])
        methods = [parse_method(s, peers_dir=dataset.peers_dir) for s in specs]
        result = evaluate(dataset, methods, metrics=not args.no_metrics, detection=not args.no_detection,
                          verify_reference=args.verify)
        page = write_report(result, Path(args.out) / dataset.name)
        text = markdown(result)
        print("\n" + text + f"\nreport: {page}", flush=True)
        sections.append(text)
        if result.reference_check and max(result.reference_check.values()) > 1e-3:
            print("error: metrics disagree with the independent implementation", file=sys.stderr)
            return 1
    if args.results_md:
        command = "ivfusion eval " + " ".join(argv if argv is not None else sys.argv[2:])
        header = (f"# Results\n\nGenerated {date.today().isoformat()} by `{command.strip()}` (see `make results`).\n"
                  "Metrics follow the definitions documented in `src/ivfusion/metrics/fusion.py`; MI is in bits.\n"
                  "Peers are the published methods' own outputs from `../shared/peers` (see its MANIFEST).\n"
                  "The diffusion teacher (PALDM vs PCLDM per preference, held-out DPO accuracy, distillation, "
                  "teacher vs student speed) is measured in `docs/teacher.md`; the student's training in "
                  "`docs/student.md`.\n\n")
        Path(args.results_md).write_text(header + "\n".join(sections))
        print(f"wrote {args.results_md}")
    return 0
