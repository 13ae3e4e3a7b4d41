"""How much the teacher's 9 property-code candidates could give the detector on IDPO's own scenes, and what the
oracles said about them (docs/teacher.md, "IDPO v3"): numbers, not asserts.

    .venv/bin/python bench/teacher_candidate_headroom.py [--config config/train/idpo_v3o.yaml] \
        [--pairs outputs/train/idpo_v3/preferences/pairs.json outputs/train/idpo_v3h/preferences/pairs.json]

Reads the cached candidates and verdicts of ``--config`` (``ivfusion train idpo`` writes them). Prints, for the
held-out and the training scenes, the detection oracle's per-code mean score, the best of the 9 per scene, and
per object the standard code against the best code; then the verdict counts of each oracle, also for other
runs' ``--pairs`` files (same scenes and candidates, other oracles).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import torch

from ivfusion.teacher.data import instance_view, is_held_out
from ivfusion.teacher.oracles import DetectionOracle
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import STANDARD
from ivfusion.teacher.train import IDPO_SECTIONS, load_config, prepare_preferences


def _verdicts(source: str, pairs: list[dict]) -> None:
    print(source)
    for name in sorted({q["oracle"] for q in pairs}):
        rows = [q for q in pairs if q["oracle"] == name]
        pasted = sum(len(q.get("paste", [])) for q in rows)
        print(f"  {name}: {len(rows)} pairs; winners {collections.Counter(q['winner'] for q in rows).most_common()}; "
              f"losers {collections.Counter(q['loser'] for q in rows).most_common()}"
              + (f"; {pasted} pasted objects" if pasted else ""))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/train/idpo_v3o.yaml")
    p.add_argument("--pairs", nargs="*", type=Path, default=[], help="more pairs.json files to count verdicts of")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config, IDPO_SECTIONS)
    prefs = prepare_preferences(cfg, PALDM.from_pretrained(cfg["init_from"]), progress=False)
    oracle = DetectionOracle(iou=float((cfg.get("oracles") or {}).get("detection", {}).get("iou", 0.5)))
    held = float(cfg["data"].get("held_out", 0.25))
    tables: dict[str, list[np.ndarray]] = {"held-out": [], "train": []}
    for n, inst in enumerate(prefs["instances"]):
        if inst.objects:
            table = oracle.object_scores(prefs["candidates"][n], instance_view(prefs["images"], inst, prefs["patch"]))
            tables["held-out" if is_held_out(inst.key, held) else "train"].append(table)
    for split, rows in tables.items():
        per_scene = np.array([t.mean(axis=1) for t in rows])  # (scenes, 9)
        per_object = np.concatenate(rows, axis=1)  # (9, objects)
        print(f"{split}: {len(rows)} scenes, {per_object.shape[1]} objects")
        print("  per-code mean scene score:", per_scene.mean(axis=0).round(3).tolist())
        print(f"  best code per scene: {per_scene.max(axis=1).mean():.3f}")
        print(f"  per object: standard {per_object[STANDARD.index].mean():.3f}, best code {per_object.max(axis=0).mean():.3f}")
    _verdicts(args.config, prefs["pairs"])
    for path in args.pairs:
        _verdicts(str(path), json.loads(path.read_text())["pairs"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
