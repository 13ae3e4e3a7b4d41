"""IDPO: Diffusion-DPO (Wallace et al. 2023) restricted to an instance mask, against a frozen reference.

For a preference pair (winner latents x_w, loser x_l) of one instance, the policy and the frozen reference
see the same noise and timestep. With e(m, x) = the model's masked mean squared error (in its prediction
space: epsilon, x0 or v) inside the instance box,

    inside = -beta / 2 * ((e(pol, x_w) - e(pol, x_l)) - (e(ref, x_w) - e(ref, x_l)))
    loss   = -log sigmoid(inside)

``inside`` is the implicit reward margin (how much more the policy than the reference prefers the winner);
DPO accuracy is the fraction of pairs with ``inside > 0``. DPO can raise that margin by pushing the loser away
while the winner's error grows too, so samples drift somewhere neither candidate is (measured: IDPO v2/v3 sharpened
their outputs); ``winner_error`` lets the caller add the winner's own denoising error (an SFT / RPO-style term,
``train.sft_weight``) that keeps the policy on the winners. Restricting the errors to the mask is what makes it
*instance* DPO: the oracle judged that region, so only that region is pushed (DPOFusion's IDPO).

Also here: candidate generation (one PALDM sample per property code per instance) and turning oracle verdicts
into cached preference pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ivfusion.errors import ConfigError
from ivfusion.teacher.data import Image, Instance, instance_patch, instance_view
from ivfusion.teacher.oracles import Oracle
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import NUM_CODES, STANDARD


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over the masked latent pixels (all channels): (B,C,h,w) x3 -> (B,)."""
    if mask.shape[1] != 1:
        raise ConfigError(f"IDPO mask must be (B,1,h,w), got {tuple(mask.shape)}")
    se = (pred - target).pow(2).mean(dim=1, keepdim=True) * mask
    return se.sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1.0)


@dataclass(frozen=True)
class DPOStats:
    loss: torch.Tensor  # scalar
    margin: torch.Tensor  # (B,) implicit reward margin ("inside")
    accuracy: float  # fraction of margins > 0
    winner_error: torch.Tensor | None = None  # (B,) policy's masked error on the winners, with grad (SFT term)
    anchor: torch.Tensor | None = None  # scalar, with grad: policy vs reference prediction outside the mask


def dpo_loss(policy_w: torch.Tensor, policy_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor,
             beta: float) -> DPOStats:
    """Diffusion-DPO on per-sample errors (B,) of policy and reference on winners and losers."""
    inside = -0.5 * beta * ((policy_w - policy_l) - (ref_w - ref_l))
    return DPOStats(-F.logsigmoid(inside).mean(), inside.detach(), float((inside > 0).float().mean()))


def latent_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """(B,1,H,W) pixel box mask -> (B,1,H/f,W/f): a latent pixel counts if any of its pixels is in the box."""
    return (F.max_pool2d(mask, factor) > 0).float() if factor > 1 else mask


def idpo_step(policy: PALDM, reference: PALDM, batch: dict[str, torch.Tensor], beta: float,
              generator: torch.Generator | None = None, preference_dropout: float = 0.0) -> DPOStats:
    """One IDPO loss evaluation. ``batch``: thermal, vis_y, winner, loser (B,1,P,P) in [0,1], mask, preference.

    ``preference_dropout``: the share of pairs whose preference is replaced by the zero embedding (for policy and
    reference alike), so the zero embedding learns what all preferences share and ``PALDM.guided`` can steer
    away from it. Drawn after the noise, so 0 is the earlier step, number for number.

    ``policy`` may be wrapped (DDP): its forward is called through the wrapper, attributes read from the module.
    """
    net, policy = policy, getattr(policy, "module", policy)
    z_ir, z_vi = policy.encode_sources(batch["thermal"], batch["vis_y"])
    with torch.no_grad():
        z_w, z_l = policy.to_latent(batch["winner"], z_ir, z_vi), policy.to_latent(batch["loser"], z_ir, z_vi)
    b = z_w.shape[0]
    noise, t = policy.training_noise(z_w, generator)
    sched = policy.scheduler
    x = torch.cat([sched.add_noise(z_w, noise, t), sched.add_noise(z_l, noise, t)])  # same noise and t for w and l
    tt, zi, zv = torch.cat([t, t]), torch.cat([z_ir, z_ir]), torch.cat([z_vi, z_vi])
    code = torch.full((2 * b,), STANDARD.index, dtype=torch.long, device=z_w.device)
    pref = batch["preference"]
    if preference_dropout > 0:
        keep = torch.rand(b, generator=generator) >= preference_dropout
        pref = pref * keep.to(pref).view(-1, 1)
    pref = torch.cat([pref, pref])
    target = torch.cat([policy.target_for(z_w, noise, t), policy.target_for(z_l, noise, t)])
    mask = latent_mask(torch.cat([batch["mask"], batch["mask"]]), policy.codec.factor)
    pred = net(x, tt, zi, zv, code, pref)
    err = masked_mse(pred, target, mask)
    with torch.no_grad():
        ref_pred = reference(x, tt, zi, zv, code, pref)
        ref_err = masked_mse(ref_pred, target, mask)
    stats = dpo_loss(err[:b], err[b:], ref_err[:b], ref_err[b:], beta)
    # where no oracle judged (outside the mask), the policy should predict what the reference does: every IDPO
    # run so far left a preference-independent mark (darker, grainier samples; docs/teacher.md, IDPO v5)
    anchor = masked_mse(pred, ref_pred, 1.0 - mask).mean()
    return replace(stats, winner_error=err[:b], anchor=anchor)


@torch.no_grad()
def generate_candidates(model: PALDM, images: list[Image], instances: Sequence[Instance], patch: int, *,
                        steps: int, seed: int, codes: Sequence[int] | None = None,
                        preference: torch.Tensor | None = None, progress: bool = True,
                        desc: str = "PALDM candidates") -> np.ndarray:
    """(N, K, P, P) uint8: one DDIM sample per property code (all nine, or ``codes``: candidate k is code
    ``codes[k]``) per instance, the same noise for all codes (and for any model sampled with the same seed),
    conditioned on ``preference`` if given."""
    from ivfusion.teacher.evaluate import sample_codes

    out = np.zeros((len(instances), NUM_CODES if codes is None else len(codes), patch, patch), np.uint8)
    for n, inst in enumerate(tqdm(instances, desc=desc, unit="instance", disable=not progress)):
        out[n] = sample_codes(model, *instance_patch(images, inst, patch), steps=steps, seed=seed * 100003 + n,
                              preference=preference, codes=codes)
    return out


def winner_image(candidates: np.ndarray, pair: dict) -> np.ndarray:
    """(P, P) uint8 winner of ``pair``: a candidate, with the boxes of ``pair["paste"]`` (if any) taken from
    other candidates -- the per-object detection verdict (``oracles.DetectionOracle(per_object=True)``)."""
    img = candidates[pair["winner"]]
    if pair.get("paste"):
        img = img.copy()
        for x1, y1, x2, y2, k in pair["paste"]:
            img[y1:y2, x1:x2] = candidates[k][y1:y2, x1:x2]
    return img


def preference_pairs(oracles: Sequence[Oracle], images: list[Image], instances: Sequence[Instance],
                     candidates: np.ndarray, patch: int, progress: bool = True) -> list[dict]:
    """``[{"instance": n, "oracle": name, "winner": i, "loser": j, "text": preference text}, ...]``."""
    pairs, views = [], [instance_view(images, inst, patch) for inst in instances]
    for oracle in oracles:
        for n, view in enumerate(tqdm(views, desc=f"oracle {oracle.name}", unit="instance", disable=not progress)):
            verdict = oracle.prefer(view, candidates[n], n)
            if verdict is not None:
                pairs.append({"instance": n, "oracle": oracle.name, "winner": verdict[0], "loser": verdict[1],
                              "text": oracle.preference_text(n), **({"paste": verdict[2]} if len(verdict) > 2 else {})})
    return pairs
