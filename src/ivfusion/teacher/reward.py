"""Reward fine-tuning of the teacher through its own sampler (DRaFT-1, Clark et al. 2023): ``ivfusion train reward``.

Why this exists next to IDPO. IDPO v3–v6 (docs/teacher.md) learned to *rank* detector-judged winners above
losers (held-out DPO accuracy up to 0.96) without its samples following them: the per-window targets (a search
per window, scored by the detector) agree with each other only at cosine 0.37 where two windows hold the same
object, so there is no rule to learn from them. A reward differentiated through the sampler needs no per-window
target: each step samples the policy as it will be used (same DDIM steps, preference conditioning, visible
chroma), lets the detector judge the result, and moves the weights along the gradient of that judgement, so
what is learned is whatever is common to many windows and noises.

The pieces:

* the sampler runs its first steps without gradients and only the last DDIM step with them (DRaFT-1: the
  x0-predicting last step sets most of the image, and one step keeps the memory and CPU time of a normal
  training step);
* the reward is the detector's own training loss (YOLOv8 box + class + DFL) of the differentiable, INT8-quantised
  copy of the shared detector (``ivfusion.training.detector_loss``; the copy that moved the student's mAP, where
  the float copy did not) against the window's pseudo-labels: no dataset labels, so MSRS stays a test;
* an anchor keeps the output a fusion: the mean absolute difference from what the frozen PALDM predicts from the
  same last-step latent (the ``fidelity`` of the detection search, which kept MI far higher at the same mAP gain).

``reward.objective: visual`` swaps the detector for what the full-reference fusion metrics reward (SSIM to both
sources, SCD, gradient transfer; :func:`visual_loss`), for the `visual` preference: the same sampler, anchor and
windows, no detector and no labels.

The policy is conditioned on the ``reward.preference`` preset's embedding (the student's text space), so the
result is a PCLDM whose ``detection`` preference is the tuned behaviour, sampled by the same evaluation code.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivfusion.errors import ConfigError
from ivfusion.teacher.data import Image, Instance, instance_view, to_tensor
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import STANDARD

REWARD_SECTIONS = ("output_dir", "init_from", "data", "reward", "train")


def preference_file(preset: str) -> str:
    """The file, in a run's output_dir (and a GPU bundle), that caches ``preset``'s embedding."""
    return f"preference_{preset}.safetensors"


OBJECTIVES = ("detection", "visual")


@dataclass(frozen=True)
class RewardConfig:
    steps: int = 5  # DDIM steps of the sampler being tuned: the MSRS evaluation's
    objective: str = "detection"  # detection: the detector copy's loss; visual: fusion quality against the sources
    detector: float = 1.0  # x the detector copy's loss on the sampled window
    anchor: float = 20.0  # x mean |output - PALDM's output from the same last-step latent| (luminance in [0, 1])
    preference: str = "detection"  # the preset whose embedding conditions the tuned behaviour
    quantize_activations: bool = True  # the INT8-like copy (docs/student.md, "v5 candidates")
    # the detector's OpenVINO IR, or its torch copy (torch_yolo.save_torch_copy); "" = the shared YOLOv8n
    weights: str = ""
    # visual objective, per window: ssim x ((1 - SSIM to thermal) + (1 - SSIM to visible)) + scd x (1 - SCD / 2)
    # + gradient x mean |Sobel(fused) - max(Sobel(thermal), Sobel(visible))| (the student's fusion-loss terms)
    ssim: float = 1.0
    scd: float = 1.0
    gradient: float = 5.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"reward.steps must be >= 1, got {self.steps}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"reward.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if min(self.ssim, self.scd, self.gradient) < 0:
            raise ConfigError(f"reward: ssim, scd and gradient must be >= 0, got {self.ssim}, {self.scd}, "
                              f"{self.gradient}")
        if self.detector <= 0 or self.anchor < 0:
            raise ConfigError(f"reward: detector must be > 0 and anchor >= 0, got {self.detector}, {self.anchor}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RewardConfig:
        unknown = set(d or {}) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"reward: unknown keys {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**(d or {}))


def window_targets(inst: Instance, patch: int, class_index: dict[str, int]) -> torch.Tensor:
    """(MAX_TARGETS, 5) ``[class, cx, cy, w, h]`` normalised to the window, padded with class -1: the detector
    loss's targets for a scene's objects (already cut to the window by ``find_scenes``)."""
    from ivfusion.training.data import MAX_TARGETS

    unknown = sorted(set(inst.classes) - set(class_index))
    if unknown:
        raise ConfigError(f"{inst.key}: classes {unknown} are not the detector's; it knows e.g. "
                          f"{', '.join(list(class_index)[:6])}")
    out = torch.full((MAX_TARGETS, 5), -1.0)
    for k, ((x1, y1, x2, y2), name) in enumerate(list(zip(inst.objects, inst.classes))[:MAX_TARGETS]):
        out[k] = torch.tensor([class_index[name], (x1 + x2) / 2 / patch, (y1 + y2) / 2 / patch,
                               (x2 - x1) / patch, (y2 - y1) / patch])
    return out


def window_tensors(images: list[Image], instances: list[Instance], patch: int, class_index: dict[str, int] | None
                   ) -> dict[str, torch.Tensor]:
    """All training windows stacked once: thermal and visible luminance (N,1,P,P), visible chroma (N,2,P,P),
    and with ``class_index`` the detector targets (N, MAX_TARGETS, 5)."""
    from ivfusion.teacher.refine import chroma

    out: dict[str, list[torch.Tensor]] = {"thermal": [], "vis_y": [], "chroma": [],
                                          **({"targets": []} if class_index is not None else {})}
    for inst in instances:
        view = instance_view(images, inst, patch)
        out["thermal"].append(to_tensor(view.ir))
        out["vis_y"].append(to_tensor(view.vi))
        out["chroma"].append(chroma(view.crcb)[0])
        if class_index is not None:
            out["targets"].append(window_targets(inst, patch, class_index))
    return {k: torch.stack(v) for k, v in out.items()}


def sample_with_last_step_grad(policy: torch.nn.Module, reference: PALDM, thermal: torch.Tensor,
                               vis_y: torch.Tensor, preference: torch.Tensor, steps: int,
                               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(the policy's DDIM sample with gradients through its last step, the frozen reference's output from that same
    last-step latent), both (B,1,H,W) luminance in [0, 1]. ``policy`` may be wrapped (accelerate); H, W must be
    multiples of ``reference.multiple``."""
    model = getattr(policy, "module", policy)
    b = thermal.shape[0]
    code = torch.full((b,), STANDARD.index, dtype=torch.long, device=thermal.device)
    z_ir, z_vi = model.encode_sources(thermal, vis_y)
    scheduler = model.make_scheduler()
    scheduler.set_timesteps(steps, device=thermal.device)
    z = torch.randn(z_ir.shape, generator=generator, dtype=z_ir.dtype).to(thermal.device)
    *early, last = scheduler.timesteps
    with torch.no_grad():
        for t in early:
            z = scheduler.step(policy(z, t.expand(b), z_ir, z_vi, code, preference), t, z).prev_sample
        ref = reference(z, last.expand(b), z_ir, z_vi, code, None)
        ref = reference.from_latent(scheduler.step(ref, last, z).prev_sample, z_ir, z_vi)
    pred = policy(z, last.expand(b), z_ir, z_vi, code, preference)
    return model.from_latent(scheduler.step(pred, last, z).prev_sample, z_ir, z_vi), ref


def visual_loss(fused: torch.Tensor, thermal: torch.Tensor, vis_y: torch.Tensor, cfg: RewardConfig
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The `visual` objective on (B,1,H,W) luminance: what the full-reference fusion metrics (SSIM, SCD, Qabf's
    gradient transfer) reward, differentiably; MI and VIF are left to the anchor."""
    from ivfusion.training.losses import gradient_loss, scd_loss, ssim

    parts = {"ssim_t": 1.0 - ssim(fused, thermal), "ssim_v": 1.0 - ssim(fused, vis_y),
             "scd": scd_loss(fused, thermal, vis_y), "grad": gradient_loss(fused, thermal, vis_y)}
    loss = cfg.ssim * (parts["ssim_t"] + parts["ssim_v"]) + cfg.scd * parts["scd"] + cfg.gradient * parts["grad"]
    return loss.mean(), {k: v.mean().detach() for k, v in parts.items()}


def reward_loss(policy: torch.nn.Module, reference: PALDM, batch: dict[str, torch.Tensor], preference: torch.Tensor,
                detector_loss, cfg: RewardConfig, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """One DRaFT-1 step's loss: the objective on the sample (the detector copy's loss on the coloured sample, or
    the visual loss) + anchor (see the module docstring). ``detector_loss`` is unused for `visual`."""
    from ivfusion.teacher.refine import colour

    b = batch["thermal"].shape[0]
    out, ref = sample_with_last_step_grad(policy, reference, batch["thermal"], batch["vis_y"],
                                          preference.expand(b, -1), cfg.steps, generator)
    if cfg.objective == "visual":
        objective, parts = visual_loss(out, batch["thermal"], batch["vis_y"], cfg)
        name = "visual"
    else:
        objective, parts = detector_loss(colour(out, batch["chroma"]), batch["targets"])
        objective, name = cfg.detector * objective, "det"
    change = (out - ref).abs().mean()
    loss = objective + cfg.anchor * change
    return loss, {name: objective.item(), "change_grey": 255.0 * change.item(),
                  **{k: v.sum().item() for k, v in parts.items()}}


def train_reward(cfg: dict[str, Any], *, resume: bool = True, progress: bool = True) -> Path:
    """Fine-tune a PALDM (``init_from``) into a PCLDM by the detector reward on the training windows of ``data``
    (config/train/reward_f0.yaml); returns the final ``save_pretrained`` folder."""
    from ivfusion.detection.torch_yolo import class_names
    from ivfusion.fusion.preference import PRESETS
    from ivfusion.paths import default_detector_weights
    from ivfusion.teacher.data import is_held_out
    from ivfusion.teacher.train import cached_text_embeddings, load_instances
    from ivfusion.training.detector_loss import DetectorLoss, DetectorLossConfig
    from ivfusion.training.loop import TrainLoop

    if not cfg.get("init_from"):
        raise ConfigError("reward config needs init_from: a trained PALDM folder")
    rcfg, dcfg, tcfg = RewardConfig.from_dict(cfg.get("reward")), cfg["data"], cfg["train"]
    if rcfg.preference not in PRESETS:
        raise ConfigError(f"reward.preference must be a preset ({', '.join(PRESETS)}), got {rcfg.preference!r}")
    reference = PALDM.from_pretrained(cfg["init_from"]).requires_grad_(False)
    policy = copy.deepcopy(reference).requires_grad_(True)
    loop = TrainLoop(cfg, policy, policy.parameters(), resume=resume, progress=progress, name="reward",
                     postfix=("det" if rcfg.objective == "detection" else "visual", "change_grey"))
    device = loop.accelerator.device
    reference.to(device)
    images, instances, patch = load_instances(dcfg)
    if patch % reference.multiple:
        raise ConfigError(f"data.patch {patch} must be a multiple of {reference.multiple}")
    held = dcfg.get("held_out", 0.2)
    train = [i for i in instances if i.objects and not is_held_out(i.key, held)]
    if not train:
        raise ConfigError("reward: no training window holds an object (all held out, or no detections)")
    class_index, detector = None, None  # the detection objective's targets and detector copy
    if rcfg.objective == "detection":
        weights = Path(rcfg.weights) if rcfg.weights else default_detector_weights()
        class_index = {n: i for i, n in class_names(weights).items()}
        detector = DetectorLoss(DetectorLossConfig(weight=rcfg.detector, weights=rcfg.weights,
                                                   quantize_activations=rcfg.quantize_activations), device)
        detector.model.requires_grad_(False)
    windows = {k: v.to(device) for k, v in window_tensors(images, train, patch, class_index).items()}
    # cached in the run's folder, so a machine without the sentence encoder trains from a bundle that holds it
    text = PRESETS[rcfg.preference]
    preference = cached_text_embeddings(loop.out / preference_file(rcfg.preference), [text],
                                        dcfg.get("text_encoder", "minilm"), reference.text_dim)
    preference = preference[text].float().view(1, -1).to(device)
    seed, batch_size = int(tcfg.get("seed", 0)), int(tcfg.get("batch_size", 4))

    def step_fn(step: int):
        rng = np.random.default_rng((seed, step))
        pick = torch.from_numpy(rng.choice(len(train), size=min(batch_size, len(train)), replace=False))
        batch = {k: v[pick.to(v.device)] for k, v in windows.items()}
        return reward_loss(loop.model, reference, batch, preference, detector, rcfg,
                           torch.Generator().manual_seed(seed * 1_000_003 + step))

    final = loop.run(step_fn)
    summary = {"windows_train": len(train), "windows_total": len(instances), "reward": asdict(rcfg),
               "objects_train": int(sum(len(i.objects) for i in train))}
    (loop.out / "reward_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return final
