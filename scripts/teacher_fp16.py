"""Copy a teacher training run's checkpoints (and ``final/``) as float16 model folders, half the size.

    python scripts/teacher_fp16.py outputs/train/idpo_v3r OUT_DIR

Used to bring GPU-machine runs back under its 16 MB-per-file transfer limit (docs/teacher.md, "IDPO v3");
``PALDM.from_pretrained`` loads the float16 weights into float32 parameters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ivfusion.teacher.paldm import PALDM


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a training output_dir (checkpoints/step_* and final/)")
    p.add_argument("out", type=Path)
    args = p.parse_args()
    dirs = sorted((args.run / "checkpoints").glob("step_*")) + [d for d in [args.run / "final"] if d.is_dir()]
    if not dirs:
        raise SystemExit(f"no checkpoints or final/ under {args.run}")
    for d in dirs:
        PALDM.from_pretrained(d).save_pretrained(args.out / d.name, dtype=torch.float16)
        print(f"{d} -> {args.out / d.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
