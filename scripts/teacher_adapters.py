"""Build one teacher for several preferences from single-preference runs of one PALDM (``PreferenceAdapters``).

    python scripts/teacher_adapters.py --base outputs/train/paldm/final \\
        --adapter visual=outputs/train/idpo_v12v_f0/final --adapter detection=outputs/train/idpo_v13_f0/final@3 \\
        --out outputs/train/pcldm_adapters_f0
    # what models/teacher/pcldm ships: int8 deltas linked to the committed PALDM (models/teacher/README.md)
    python scripts/teacher_adapters.py --base outputs/train/paldm/final --adapter visual=... --adapter detection=... \\
        --int8 --link-base models/teacher/paldm --out models/teacher/pcldm

Each ``--adapter PRESET=RUN[@GUIDANCE]`` keeps that run's change from the base under the preset's embedding, at the
guidance it was measured at (default 1). The folder loads wherever a teacher folder is read
(``ivfusion.teacher.adapters.load_teacher``: ``teacher_report.py map --pcldm``, distillation's ``teacher:``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def parse_adapter(text: str) -> tuple[str, str, float]:
    """``PRESET=RUN[@GUIDANCE]`` -> (preset, run folder, guidance)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"--adapter {text!r}: want PRESET=RUN_FOLDER[@GUIDANCE]")
    folder, _, guidance = rest.partition("@")
    try:
        return name, folder, float(guidance) if guidance else 1.0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--adapter {text!r}: guidance {guidance!r} is not a number") from exc


def main() -> int:
    from ivfusion.fusion.preference import PRESETS
    from ivfusion.teacher.adapters import PreferenceAdapters
    from ivfusion.teacher.evaluate import preset_embeddings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="the PALDM every run was fine-tuned from")
    p.add_argument("--adapter", type=parse_adapter, action="append", required=True, metavar="PRESET=RUN[@G]")
    p.add_argument("--temperature", type=float, default=0.05, help="routing softmax temperature over cosines")
    p.add_argument("--float16", action="store_true", help="store base and deltas in float16 (half the size)")
    p.add_argument("--int8", action="store_true", help="store the deltas in int8 with a scale per row (a quarter)")
    p.add_argument("--link-base", type=Path, metavar="DIR",
                   help="do not copy the base: link to DIR, a folder holding the same PALDM (checked), "
                        "as models/teacher/pcldm links to models/teacher/paldm")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    unknown = [n for n, _, _ in args.adapter if n not in PRESETS]
    if unknown:
        raise SystemExit(f"--adapter: {unknown} are not presets ({sorted(PRESETS)})")
    runs = {n: (folder, g) for n, folder, g in args.adapter}
    model = PreferenceAdapters.from_runs(args.base, runs, preset_embeddings(sorted(runs)), args.temperature)
    model.save_pretrained(args.out, dtype=torch.float16 if args.float16 else None, base_dir=args.link_base,
                          int8=args.int8)
    print(f"wrote {args.out}: {', '.join(f'{s.name} (guidance {s.guidance:g})' for s in model.specs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
