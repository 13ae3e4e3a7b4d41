"""Reward-refined candidates: what a preference wants, made explicit in the candidate pool IDPO ranks.

Why: the nine property codes differ globally (more thermal, more detail), and measured on held-out scenes and on
MSRS none of them is a better fixed choice for the detector than the standard code; the gain was only in
choosing per frame, which ~100 training scenes could not teach (docs/teacher.md, IDPO v3). So each scene also
gets candidates that are the standard candidate *improved for one preference* by that preference's judge:

* ``detection`` -- the oracle's own score (the real shared OpenVINO detector: mean matched confidence of the
  scene's pseudo-labelled objects, in colour). Not a gradient through the PyTorch copy of the detector: on these
  scenes that copy's loss fell by up to 40 % while the real detector's confidence hardly moved (measured: 6
  scenes, docs/teacher.md), i.e. per-scene gradient steps find what only the copy rewards. Instead a small
  cross-entropy search over three smooth maps on a coarse grid -- local thermal mix, local contrast gain,
  brightness offset, each bounded by ``tanh`` -- the levers a fusion has (how much thermal, how much contrast,
  where), and too few parameters for pixel-level adversarial patterns.
* ``visual`` -- the student's fusion losses (:func:`ivfusion.training.losses.fusion_loss`, weighted per
  ``loss``, e.g. SSIM to both sources, SCD, gradients) with a bounded per-pixel change.

The refined image is still only a candidate: the oracles (the real detector, the real fusion metrics) decide
whether it beats the standard candidate, and IDPO learns only from those verdicts. For ``detection`` the search
optimised the oracle's score on that very scene, so its verdicts are mostly "refined wins"; whether that
generalises is measured where no search ran (held-out scenes, MSRS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ivfusion.errors import ConfigError
from ivfusion.models.color import ycbcr_to_rgb
from ivfusion.teacher.data import Image, Instance, View, instance_patch, instance_view, to_tensor
from ivfusion.teacher.evaluate import to_uint8
from ivfusion.teacher.properties import STANDARD
from ivfusion.training.losses import PresetLoss, fusion_loss

OBJECTIVES = ("detection", "visual")


@dataclass(frozen=True)
class RefineConfig:
    objective: str  # "detection" | "visual"
    steps: int = 30  # visual: Adam steps
    lr: float = 0.05  # visual
    cell: int = 64  # detection: side (px) of one cell of the control grid
    iterations: int = 4  # detection: cross-entropy search rounds ...
    population: int = 16  # ... of this many edits each ...
    elite: int = 4  # ... refitted to the best this many
    sigma: float = 1.0  # detection: initial spread of the maps (before tanh)
    iou: float = 0.5  # detection: the oracle's box match
    fidelity: float = 0.0  # detection: score minus this x the mean absolute change (luminance in [0, 1])
    max_mix: float = 0.5  # detection: largest local thermal mix either way
    max_gain: float = 1.0  # detection: largest local contrast gain either way
    max_offset: float = 0.1  # detection: largest brightness offset either way
    max_delta: float = 0.15  # visual: largest per-pixel change
    loss: dict[str, float] = field(default_factory=dict)  # visual: PresetLoss knobs
    base: int = STANDARD.index  # the candidate that is refined

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"refine: objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.steps < 1 or self.lr <= 0 or self.cell < 4:
            raise ConfigError(f"refine: need steps >= 1, lr > 0 and cell >= 4, got {self.steps}, {self.lr}, {self.cell}")
        unknown = set(self.loss) - set(PresetLoss.names())
        if unknown:
            raise ConfigError(f"refine.loss: unknown knobs {sorted(unknown)}; known: {PresetLoss.names()}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RefineConfig:
        return cls(**d)


def chroma(crcb: np.ndarray) -> torch.Tensor:
    """(1,2,P,P) visible chroma (Cr, Cb) centred on 0, from a view's uint8 (P,P,2) YCrCb chroma."""
    return torch.from_numpy(np.ascontiguousarray(crcb)).float().div(255.0).sub(0.5).permute(2, 0, 1).unsqueeze(0)


def colour(y: torch.Tensor, crcb: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """(B,3,P,P) RGB of luminance ``y`` (B,1,P,P) with the visible chroma (a view's uint8 array, or (B,2,P,P) from
    :func:`chroma`; grey without): what the detector is shown in evaluation."""
    if crcb is None:
        return y.expand(-1, 3, -1, -1)
    c = crcb if isinstance(crcb, torch.Tensor) else chroma(crcb)
    return ycbcr_to_rgb(y, c[:, 1:2], c[:, 0:1]).clamp(0.0, 1.0)


def _blur(x: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    radius = int(3 * sigma)
    ax = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1))


def local_edit(y: torch.Tensor, t: torch.Tensor, maps: torch.Tensor, cfg: RefineConfig) -> torch.Tensor:
    """``y`` (1,1,P,P) changed by three coarse maps (1,3,g,g) (unbounded; ``tanh`` bounds them): local thermal mix,
    local contrast gain around a 4-px-sigma blur, brightness offset."""
    up = F.interpolate(torch.tanh(maps), size=y.shape[-2:], mode="bilinear", align_corners=False)
    mix, gain, offset = up[:, 0:1] * cfg.max_mix, up[:, 1:2] * cfg.max_gain, up[:, 2:3] * cfg.max_offset
    mixed = y + mix * (t - y)
    base = _blur(mixed)
    return (base + (1.0 + gain) * (mixed - base) + offset).clamp(0.0, 1.0)


class Refiner:
    """Refines one candidate per instance for one objective (holds its judge, built once)."""

    def __init__(self, cfg: RefineConfig, detection_oracle=None) -> None:
        self.cfg = cfg
        if cfg.objective == "detection" and detection_oracle is None:
            from ivfusion.teacher.oracles import DetectionOracle

            detection_oracle = DetectionOracle(iou=cfg.iou)
        self.oracle = detection_oracle
        self.weights = PresetLoss(**cfg.loss).as_tensor().unsqueeze(0)

    def __call__(self, cand: np.ndarray, view: View, seed: int = 0) -> np.ndarray:
        """(P, P) uint8 refined ``cand``; unchanged where there is nothing to refine for (no objects)."""
        return self.refine(cand, view, seed)[0]

    def refine(self, cand: np.ndarray, view: View, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """(refined ``cand``, for ``detection`` the (3, g, g) maps that made it from ``cand``: all zeros when the
        search kept it, so :func:`apply_maps` redoes the refinement exactly from a few numbers)."""
        if self.cfg.objective == "detection":
            if not view.objects:
                g = grid_size(cand.shape[0], self.cfg)
                return cand, np.zeros((3, g, g), np.float32)
            return self._search(cand, view, seed)
        return self._descend(cand, view), None

    def _search(self, cand: np.ndarray, view: View, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Cross-entropy search over the coarse maps, scored by the real detector (the oracle's own score).
        The unchanged candidate is also in the first population (all-zero maps), so the search starts from it."""
        cfg, rng = self.cfg, np.random.default_rng(seed)
        y, t = to_tensor(cand).unsqueeze(0), to_tensor(view.ir).unsqueeze(0)
        g = grid_size(cand.shape[0], cfg)
        mean, std = np.zeros((3, g, g)), np.full((3, g, g), cfg.sigma)
        best, best_score = cand, float(self._score(cand[None], cand, view)[0])  # ties keep the unchanged candidate
        best_maps = np.zeros((3, g, g), np.float32)
        for it in range(cfg.iterations):
            pop = mean + std * rng.standard_normal((cfg.population, 3, g, g))
            if it == 0:
                pop[0] = 0.0
            with torch.no_grad():
                imgs = np.stack([to_uint8(local_edit(y, t, torch.from_numpy(p).float().unsqueeze(0), cfg)[0])
                                 for p in pop])
            scores = self._score(imgs, cand, view)
            top = np.argsort(scores)[::-1][:cfg.elite]
            if scores[top[0]] > best_score:
                best, best_score, best_maps = imgs[top[0]], float(scores[top[0]]), pop[top[0]].astype(np.float32)
            mean, std = pop[top].mean(axis=0), pop[top].std(axis=0) + 0.05
        return best, best_maps

    def _score(self, imgs: np.ndarray, cand: np.ndarray, view: View) -> np.ndarray:
        """The oracle's score, less ``fidelity`` x the mean absolute change: detections are not bought with
        arbitrary departures from the sources (IDPO v4: the unconstrained search cost MSRS MI 3.44 -> 1.56)."""
        scores = self.oracle.scores(imgs, view)
        if self.cfg.fidelity:
            change = np.abs(imgs.astype(np.float32) - cand.astype(np.float32)).mean(axis=(1, 2)) / 255.0
            scores = scores - self.cfg.fidelity * change
        return scores

    def _descend(self, cand: np.ndarray, view: View) -> np.ndarray:
        """Adam on the fusion losses over a bounded per-pixel change."""
        cfg = self.cfg
        y, t, v = (to_tensor(a).unsqueeze(0) for a in (cand, view.ir, view.vi))
        params = torch.zeros_like(y, requires_grad=True)
        vis_rgb = colour(v, view.crcb)

        def edit() -> torch.Tensor:
            return (y + cfg.max_delta * torch.tanh(params)).clamp(0.0, 1.0)

        opt = torch.optim.Adam([params], lr=cfg.lr)
        for _ in range(cfg.steps):
            opt.zero_grad()
            out = edit()
            fusion_loss(out, colour(out, view.crcb), t, v, vis_rgb, self.weights)[0].backward()
            opt.step()
        with torch.no_grad():
            return to_uint8(edit()[0])


def grid_size(patch: int, cfg: RefineConfig) -> int:
    """Side of the detection search's control grid for a ``patch`` window."""
    return max(1, patch // cfg.cell)


def refine_candidates(images: list[Image], instances: Sequence[Instance], candidates: np.ndarray, patch: int,
                      configs: Sequence[RefineConfig], progress: bool = True
                      ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(N, len(configs), P, P) uint8: per instance, each config's refinement of its base candidate; and per
    ``detection`` config r, its maps (N, 3, g, g) (:func:`apply_maps` rebuilds the images from them)."""
    out, maps = np.zeros((len(instances), len(configs), patch, patch), np.uint8), {}
    views = [instance_view(images, inst, patch) for inst in instances]  # once, for every config
    for r, cfg in enumerate(configs):
        _check_base(cfg, candidates.shape[1])
        refiner = Refiner(cfg)
        for n, view in enumerate(tqdm(views, desc=f"refine {cfg.objective}", unit="instance", disable=not progress)):
            out[n, r], m = refiner.refine(candidates[n, cfg.base], view, seed=n)
            if m is not None:
                maps.setdefault(r, np.zeros((len(instances), *m.shape), np.float32))[n] = m
    return out, maps


def apply_maps(images: list[Image], instances: Sequence[Instance], candidates: np.ndarray, patch: int,
               cfg: RefineConfig, maps: np.ndarray) -> np.ndarray:
    """(N, P, P) uint8: the detection refinement of each instance's base candidate redone from its maps.

    Why: the search needs the detector, the training machine may not have it. A cache of maps (a few numbers per
    window) travels where the refined images would not, and applied to that machine's own candidates (GPU samples
    differ from CPU ones by a grey level or two) it gives winner and loser from the same sample."""
    if cfg.objective != "detection":
        raise ConfigError(f"refine: only detection refinements can be rebuilt from maps, not {cfg.objective!r}")
    _check_base(cfg, candidates.shape[1])
    out = np.zeros((len(instances), patch, patch), np.uint8)
    for n, inst in enumerate(instances):
        t, _ = instance_patch(images, inst, patch)
        y = to_tensor(candidates[n, cfg.base]).unsqueeze(0)
        with torch.no_grad():
            out[n] = to_uint8(local_edit(y, to_tensor(t).unsqueeze(0), torch.from_numpy(maps[n]).unsqueeze(0), cfg)[0])
    return out


def _check_base(cfg: RefineConfig, num_candidates: int) -> None:
    if not 0 <= cfg.base < num_candidates:
        raise ConfigError(f"refine: base candidate {cfg.base}, but only {num_candidates} candidates per instance "
                          "(with data.candidate_codes, base indexes that list)")
