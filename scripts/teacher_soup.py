"""Average the weights of teacher runs fine-tuned from the same PALDM (a "model soup", Wortsman et al. 2022).

    python scripts/teacher_soup.py outputs/gpu/reward_g/reward_g_f0_s{1,2,3}/final --out outputs/gpu/reward_g/soup_f0

Why: replicates of the reward recipe differ by more than the MSRS bootstrap interval (docs/teacher.md); runs that
start from one model and move little stay in one basin, so their average keeps what the seeds share and cancels
what is each seed's own noise, at the cost of one evaluation instead of one per seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ivfusion.errors import ConfigError
from ivfusion.teacher.paldm import PALDM


def soup(folders: list[Path]) -> PALDM:
    """The first model with every floating-point weight replaced by the mean over ``folders``."""
    if len(folders) < 2:
        raise ConfigError("a soup needs at least two models")
    models = [PALDM.from_pretrained(f) for f in folders]
    configs = {str(dict(m.config)) for m in models}
    if len(configs) > 1:
        raise ConfigError(f"{[str(f) for f in folders]}: the models' configs differ; a soup averages one architecture")
    states = [m.state_dict() for m in models]
    mean = {k: (torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v)
            for k, v in states[0].items()}
    models[0].load_state_dict(mean)
    return models[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", type=Path, nargs="+", help="save_pretrained folders of one architecture")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    soup(args.models).save_pretrained(args.out)
    print(f"{args.out}: mean of {len(args.models)} models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
