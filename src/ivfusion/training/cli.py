"""``ivfusion train student --config config/train/student.yaml [--output-dir DIR] [--steps N] [--stop-at-step N] [--no-resume]``."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ivfusion train", description="Train a fusion model.")
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("student", help="the preference-conditioned student fusion network")
    s.add_argument("--config", required=True, help="YAML training config (config/train/student.yaml)")
    s.add_argument("--output-dir", help="override output_dir")
    s.add_argument("--steps", type=int, help="override train.steps")
    s.add_argument("--max-minutes", type=float, help="override train.max_minutes (stop and save at this wall time)")
    s.add_argument("--stop-at-step", type=int, help="stop and save at this step, keeping the LR schedule of train.steps")
    s.add_argument("--no-resume", action="store_true", help="ignore checkpoints in output_dir")
    s.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    from ivfusion.training.trainer import load_config, train

    cfg = load_config(args.config)
    if args.output_dir:
        cfg["output_dir"] = args.output_dir
    if args.steps is not None:
        cfg["train"]["steps"] = args.steps
    if args.max_minutes is not None:
        cfg["train"]["max_minutes"] = args.max_minutes
    if args.stop_at_step is not None:
        cfg["train"]["stop_at_step"] = args.stop_at_step
    final = train(cfg, resume=not args.no_resume, progress=not args.no_progress)
    print(f"saved {final}")
    return 0
