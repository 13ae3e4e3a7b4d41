"""Build an IDPO run's proposal cache from single-proposal runs' caches instead of sampling the proposals again.

    python scripts/teacher_join_proposals.py config/train/idpo_v13_f0.yaml \
        outputs/train/idpo_v10_f0/preferences outputs/train/idpo_v12v_f0/preferences

Why: each proposal is sampled on its own with the candidates' noise (``train._with_proposals``), so a run with the
proposals [A, B] holds exactly A's samples followed by B's. A run that had only A, and one that had only B, on the
same PALDM candidates already made them (12 CPU minutes per proposal and fold). Each source is checked: its cache
key must be the one a single-proposal run of that entry would have written for the target's candidates, so a
source made from other weights, windows or noise is refused rather than joined. A source given as ``-`` is sampled
here (as a single-proposal run would, on ``--threads`` threads), so a run that changes one proposal samples only that one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ivfusion.errors import ConfigError
from ivfusion.teacher.data import load_keyed, save_keyed
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.train import (
    IDPO_SECTIONS,
    PROPOSALS_FILE,
    candidate_noise,
    candidates_key,
    checked_proposals,
    load_config,
    load_instances,
    proposals_key,
    sample_proposals,
)

SAMPLE = "-"  # a source that is sampled here instead of read


def join(config: Path, sources: list[Path], progress: bool = True) -> Path:
    cfg = load_config(config, IDPO_SECTIONS)
    proposals = checked_proposals(cfg["data"].get("proposals") or [])
    if len(proposals) != len(sources):
        raise ConfigError(f"{config}: {len(proposals)} data.proposals but {len(sources)} source folders; give one "
                          "folder per proposal, in the config's order")
    images, instances, patch = load_instances(cfg["data"])
    cand_key = candidates_key(cfg, instances, patch)
    cache, parts = Path(cfg["output_dir"]) / "preferences", []
    cache.mkdir(parents=True, exist_ok=True)
    seed, steps = candidate_noise(cfg)
    text_dim = PALDM.from_pretrained(cfg["init_from"]).text_dim if SAMPLE in map(str, sources) else 0
    for p, src in zip(proposals, sources):
        if str(src) == SAMPLE:
            parts.append(torch.from_numpy(sample_proposals([p], cfg["data"], images, instances, patch, cache,
                                                           seed=seed, steps=steps, device=torch.device("cpu"),
                                                           text_dim=text_dim, progress=progress)))
            continue
        cached = load_keyed(src / PROPOSALS_FILE, proposals_key([p], cand_key))
        if cached is None:
            raise ConfigError(f"{src / PROPOSALS_FILE}: not the samples of {p} on {config}'s candidates (key "
                              "differs or file missing)")
        parts.append(cached["proposals"])
    out = cache / PROPOSALS_FILE
    save_keyed({"proposals": torch.cat(parts, dim=1)}, out, proposals_key(proposals, cand_key))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path, help="the IDPO config whose data.proposals lists several models")
    p.add_argument("sources", type=Path, nargs="+", help="one preferences folder per proposal, in the config's order; "
                   f"{SAMPLE!r} samples that proposal here")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for a sampled source (default 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(join(args.config, args.sources))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
