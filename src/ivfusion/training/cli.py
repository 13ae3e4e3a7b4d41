"""``ivfusion train student|paldm|idpo|reward|distill --config CONFIG.yaml [--output-dir DIR] [--steps N]
[--no-resume]``.

``student``: the fusion network (docs/student.md); ``paldm`` / ``idpo`` / ``reward``: the diffusion teacher;
``distill``: the teacher's outputs into the student (docs/teacher.md).
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ivfusion train", description="Train a fusion model.")
    sub = p.add_subparsers(dest="what", required=True)
    for name, help_text in (("student", "the preference-conditioned student fusion network (config/train/student.yaml)"),
                            ("paldm", "the teacher: property-aligned latent diffusion (config/train/paldm.yaml)"),
                            ("idpo", "the teacher: IDPO fine-tuning PALDM -> PCLDM (config/train/idpo.yaml)"),
                            ("reward", "the teacher: detector-reward fine-tuning through the sampler "
                                       "(config/train/reward_f0.yaml)"),
                            ("distill", "the teacher's outputs into the student (config/train/distill.yaml)")):
        t = sub.add_parser(name, help=help_text)
        t.add_argument("--config", required=True, help="YAML training config")
        t.add_argument("--output-dir", help="override output_dir")
        t.add_argument("--steps", type=int, help="override train.steps")
        t.add_argument("--max-minutes", type=float, help="override train.max_minutes (stop and save at this wall time)")
        t.add_argument("--threads", type=int, help="override train.threads (CPU threads for torch)")
        t.add_argument("--seed", type=int, help="override train.seed (a replicate of the same recipe)")
        if name == "student":
            t.add_argument("--stop-at-step", type=int,
                           help="stop and save at this step, keeping the LR schedule of train.steps")
        if name == "idpo":
            t.add_argument("--prepare-only", action="store_true",
                           help="build the preference cache (candidates, refinements, verdicts, text embeddings) "
                                "and stop: the CPU half of a CPU/GPU split (docs/teacher.md)")
        t.add_argument("--no-resume", action="store_true", help="ignore checkpoints in output_dir")
        t.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.what in ("paldm", "idpo", "reward", "distill"):
        return _teacher(args)

    from ivfusion.training.trainer import load_config, train

    cfg = _override(load_config(args.config), args)
    final = train(cfg, resume=not args.no_resume, progress=not args.no_progress)
    print(f"saved {final}")
    return 0


def _teacher(args: argparse.Namespace) -> int:
    from ivfusion.teacher import distill, reward
    from ivfusion.teacher import train as teacher

    sections = {"paldm": teacher.PALDM_SECTIONS, "idpo": teacher.IDPO_SECTIONS, "reward": reward.REWARD_SECTIONS,
                "distill": distill.DISTILL_SECTIONS}
    cfg = _override(teacher.load_config(args.config, sections[args.what]), args)
    run = {"paldm": teacher.train_paldm, "idpo": teacher.train_idpo, "reward": reward.train_reward,
           "distill": distill.train_distill}[args.what]
    extra = {"prepare_only": True} if getattr(args, "prepare_only", False) else {}
    final = run(cfg, resume=not args.no_resume, progress=not args.no_progress, **extra)
    print(f"saved {final}")
    return 0


def _override(cfg: dict, args: argparse.Namespace) -> dict:
    """Command-line overrides of the YAML (output_dir and train.*), the same for every subcommand."""
    if args.output_dir:
        cfg["output_dir"] = args.output_dir
    for key in ("steps", "max_minutes", "threads", "stop_at_step", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            cfg["train"][key] = value
    return cfg

