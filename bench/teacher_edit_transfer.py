"""How much of the detection search's edit does an IDPO policy reproduce on windows it never trained on?

    .venv/bin/python bench/teacher_edit_transfer.py --config config/train/idpo_v6_f0.yaml \
        outputs/gpu/v6/idpo_v6_f0/final [more PCLDM folders trained on the same fold] [--max-windows 60]

IDPO learns from pairs (standard candidate, its detection refinement). Its held-out DPO accuracy has been high in
every run, yet MSRS mAP never rose. This bench asks the question between the two: on the config's held-out windows
with a detection pair, each policy samples the standard code with the `detection` preset and the *same noise* as
the cached candidate, and inside the object boxes it prints

* ``transfer``: the least-squares share of the refinement's change (refined - candidate) found in the policy's
  change (policy - candidate): 1 = the policy reproduces the edit, 0 = nothing of it;
* ``cos``: the cosine between the two changes; ``|policy|``/``|edit|``: their RMS sizes in grey levels;
* ``outside``: the RMS change outside the boxes (what the anchor holds at zero).

With ``--consistency`` it measures instead how much the search's edits agree with each other where two windows
of the same frame overlap (cosine of the two edits over the object pixels both windows hold): the part of the edit
that a policy could learn as a rule, rather than as a per-window accident.

Needs the config's preference cache (``ivfusion train idpo --config ... --prepare-only``).
"""

from __future__ import annotations

import argparse
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ivfusion.teacher.data import instance_mask, instance_patch
from ivfusion.teacher.evaluate import preset_embeddings, run_name, sample_codes
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import NUM_CODES, STANDARD
from ivfusion.teacher.train import IDPO_SECTIONS, load_config, prepare_preferences


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    """Cosine of two flat changes; 0 where either is all zero."""
    uu, vv = float(u @ u), float(v @ v)
    return float(u @ v) / np.sqrt(uu * vv) if uu and vv else 0.0


def edit_stats(policy: np.ndarray, cand: np.ndarray, refined: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Transfer, cosine and sizes of the policy's change vs the refinement's, inside ``mask`` (and outside)."""
    d_pol = policy.astype(np.float64) - cand
    d_ref = refined.astype(np.float64) - cand
    m = mask > 0
    a, b = d_pol[m], d_ref[m]
    ref_sq = float(b @ b)
    return {"transfer": float(a @ b) / ref_sq if ref_sq else float("nan"), "cos": cosine(a, b),
            "policy_rms": float(np.sqrt(np.mean(a ** 2))), "edit_rms": float(np.sqrt(np.mean(b ** 2))),
            "outside_rms": float(np.sqrt(np.mean(d_pol[~m] ** 2))) if (~m).any() else 0.0}


def _edit_in(prefs: dict, pair: dict, base: int, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    """A pair's edit (winner - standard candidate) and its object mask, cut to the frame region [x0:x1, y0:y1]."""
    inst, patch = prefs["instances"][pair["instance"]], prefs["patch"]
    c = prefs["candidates"][pair["instance"]]
    sl = (slice(y0 - inst.y0, y1 - inst.y0), slice(x0 - inst.x0, x1 - inst.x0))
    return (c[pair["winner"]].astype(np.float64) - c[base])[sl], instance_mask(inst, patch, "detection")[sl] > 0


def edit_consistency(prefs: dict, rows: list[dict], base: int) -> tuple[float, int]:
    """Mean cosine, over overlapping window pairs of one frame, of their edits on the object pixels both hold."""
    by_image: dict[int, list[dict]] = {}
    for p in rows:
        by_image.setdefault(prefs["instances"][p["instance"]].image, []).append(p)
    patch, cosines = prefs["patch"], []
    for p, q in (pq for group in by_image.values() for pq in combinations(group, 2)):
        a, b = prefs["instances"][p["instance"]], prefs["instances"][q["instance"]]
        region = (max(a.x0, b.x0), max(a.y0, b.y0), min(a.x0, b.x0) + patch, min(a.y0, b.y0) + patch)
        if region[2] <= region[0] or region[3] <= region[1]:
            continue
        (e, m), (f, n) = _edit_in(prefs, p, base, *region), _edit_in(prefs, q, base, *region)
        both = m & n
        u, v = e[both], f[both]
        if both.sum() >= 64 and u.any() and v.any():
            cosines.append(cosine(u, v))
    return (float(np.mean(cosines)) if cosines else float("nan")), len(cosines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="PCLDM folders trained with --config's fold held out")
    ap.add_argument("--consistency", action="store_true", help="agreement of the search's own edits (all pairs)")
    ap.add_argument("--config", type=Path, required=True, help="the IDPO config (its cache and held-out rule)")
    ap.add_argument("--max-windows", type=int, default=60, help="the first N held-out pairs (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(args.config, IDPO_SECTIONS)
    prefs = prepare_preferences(cfg, PALDM.from_pretrained(cfg["init_from"]), progress=False)
    codes = [int(c) for c in cfg["data"].get("candidate_codes") or range(NUM_CODES)]
    if STANDARD.index not in codes:
        raise SystemExit(f"{args.config}: data.candidate_codes {codes} has no standard code ({STANDARD.index})")
    code = STANDARD.index
    base = codes.index(code)  # the standard candidate's index in the stack
    if args.consistency:
        every = [p for p in prefs["pairs"] if p["oracle"] == "detection" and p["loser"] == base]
        cos, n = edit_consistency(prefs, every, base)
        print(f"edit consistency: mean cosine {cos:.3f} over {n} overlapping window pairs ({len(every)} pairs)")
    rows = [p for p in prefs["pairs"] if p["held_out"] and p["oracle"] == "detection" and p["loser"] == base]
    rows = rows[: args.max_windows or None]
    seed, steps, patch = int(cfg["train"].get("seed", 0)), int(cfg["data"].get("candidate_steps", 10)), prefs["patch"]
    pref = preset_embeddings(["detection"])["detection"]
    print(f"{len(rows)} held-out detection pairs of {args.config}")
    for model_dir in args.models:
        model, stats = PALDM.from_pretrained(model_dir), []
        for p in tqdm(rows, desc=run_name(model_dir), unit="window"):
            n, inst = p["instance"], prefs["instances"][p["instance"]]
            t, y = instance_patch(prefs["images"], inst, patch)
            sample = sample_codes(model, t, y, steps=steps, seed=seed * 100003 + n, preference=pref, codes=[code])[0]
            cands = prefs["candidates"][n]
            stats.append(edit_stats(sample, cands[base], cands[p["winner"]], instance_mask(inst, patch, "detection")))
        mean = {k: float(np.nanmean([s[k] for s in stats])) for k in stats[0]}
        print(f"{model_dir}: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
