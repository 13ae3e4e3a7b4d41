"""Distillation: the teacher's (PCLDM's) fused luminance per preference becomes a target for the student.

1. ``cache_teacher_outputs`` -- fixed random crops of the training pairs; for each crop and each preset, one
   DDIM sample of the teacher conditioned on the standard property code and the preset's 384-d embedding (the
   *same* embedding the student receives: ``models/student/presets.safetensors``). Stored once as uint8 in a
   safetensors file; sampling is the expensive part, training then reads the cache.
2. ``train_distill`` -- fine-tunes the shipped student: L1 between the student's fused luminance and the
   teacher's, plus the student's own fusion losses (``ivfusion.training.losses.fusion_loss`` with each
   preset's weights) as a regulariser that keeps colour and the unsupervised properties, so the student
   cannot simply copy the teacher's artefacts. The result is a normal student folder (``save_pretrained``);
   shipping it as default is a separate, measured decision (docs/teacher.md).

Residual mode (``reference:`` = the teacher before IDPO, i.e. the PALDM): the target is the *starting student's*
own output plus ``gain`` x (PCLDM - PALDM) on the same crop, preset and noise. Why: the CPU-sized teacher is a
worse fuser than the student (docs/teacher.md), so copying it loses the student's quality; what IDPO adds is the
*change* preference optimisation made to the teacher, and that change is what this transfers -- the same way
DPO itself is anchored to a frozen reference.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ivfusion.errors import ConfigError
from ivfusion.teacher.data import Image, fingerprint, load_keyed, save_keyed, to_tensor
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import STANDARD

log = logging.getLogger(__name__)

DISTILL_SECTIONS = ("output_dir", "teacher", "reference", "student_init", "data", "presets", "train", "loss")


@torch.no_grad()
def cache_teacher_outputs(teacher_dir: str | Path, images: list[Image], embeddings: dict[str, torch.Tensor], *,
                          patch: int, crops_per_image: int, steps: int, seed: int, out_file: Path,
                          progress: bool = True, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Outputs per preset on fixed crops of the teacher saved at ``teacher_dir``; written to (and reused from)
    ``out_file`` (safetensors). The teacher is only loaded when the cache has to be made."""

    names = sorted(embeddings)
    key = fingerprint(Path(teacher_dir), presets=names, embeddings=[embeddings[n].float() for n in names],
                      patch=patch, crops_per_image=crops_per_image, steps=steps, seed=seed,
                      images=[(img.key, img.thermal.shape) for img in images])
    cached = load_keyed(out_file, key)
    if cached is not None:
        return cached
    if out_file.exists():
        log.info("distillation: %s was made with other settings or another teacher; rebuilding it", out_file)
    teacher = PALDM.from_pretrained(teacher_dir).to(device)
    rng = np.random.default_rng(seed)
    pref = torch.stack([embeddings[n].view(-1) for n in names]).to(device)
    th, rgb, ys = [], [], []
    for i, img in enumerate(tqdm(images, desc="teacher outputs (cached)", unit="pair", disable=not progress)):
        h, w = img.thermal.shape
        if min(h, w) < patch:
            continue
        for _ in range(crops_per_image):
            y0, x0 = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
            t = img.thermal[y0:y0 + patch, x0:x0 + patch]
            v = img.vis_y[y0:y0 + patch, x0:x0 + patch]
            tt = to_tensor(t).to(device).unsqueeze(0).expand(len(names), -1, -1, -1)
            vv = to_tensor(v).to(device).unsqueeze(0).expand(len(names), -1, -1, -1)
            out = teacher.sample(tt, vv, STANDARD.index, pref, steps=steps, shared_noise=True,
                                 generator=torch.Generator().manual_seed(seed * 7919 + len(th)))
            th.append(torch.from_numpy(np.ascontiguousarray(t)).view(1, patch, patch))
            rgb.append(torch.from_numpy(np.ascontiguousarray(img.rgb[y0:y0 + patch, x0:x0 + patch])).permute(2, 0, 1))
            ys.append((out * 255 + 0.5).clamp(0, 255).byte().cpu())
    if not th:
        raise ConfigError(f"distillation: no image is at least {patch} px on each side")
    cache = {"thermal": torch.stack(th), "rgb": torch.stack(rgb), "teacher": torch.stack(ys)}
    save_keyed(cache, out_file, key, presets=",".join(names))
    return cache


def train_distill(cfg: dict[str, Any], *, resume: bool = True, progress: bool = True) -> Path:
    """Fine-tune the student on cached teacher outputs (config/train/distill.yaml); returns ``final/``."""
    from ivfusion.models.color import luma
    from ivfusion.models.student import StudentFusionNet
    from ivfusion.teacher.data import load_images
    from ivfusion.training.loop import TrainLoop
    from ivfusion.training.losses import PresetLoss, fusion_loss

    tcfg, dcfg, lcfg = cfg["train"], cfg["data"], cfg.get("loss") or {}
    seed = int(tcfg.get("seed", 0))
    student = StudentFusionNet.from_pretrained(cfg["student_init"])
    names = sorted(cfg["presets"])
    missing = set(names) - set(student.preset_embeddings)
    if missing:
        raise ConfigError(f"distillation presets without a cached student embedding: {sorted(missing)}")
    embeddings = {n: student.preset_embeddings[n].float() for n in names}
    weights = torch.stack([PresetLoss(**(cfg["presets"][n] or {})).as_tensor() for n in names])
    images, _ = load_images(dcfg["sources"], int(dcfg.get("max_side", 800)))

    def outputs_of(model_dir: str, file: str) -> dict[str, torch.Tensor]:
        return cache_teacher_outputs(model_dir, images, embeddings,
                                     patch=int(dcfg.get("patch", 128)),
                                     crops_per_image=int(dcfg.get("crops_per_image", 2)),
                                     steps=int(dcfg.get("steps", 8)), seed=seed,
                                     out_file=Path(cfg["output_dir"]) / file, progress=progress, device=device)

    # residual mode's base is the *starting* student: copied before the loop can resume a later checkpoint into it
    start = copy.deepcopy(student).eval().requires_grad_(False) if cfg.get("reference") else None
    loop = TrainLoop(cfg, student, student.parameters(), resume=resume, progress=progress, name="distill")
    device = loop.accelerator.device
    cache = outputs_of(cfg["teacher"], "teacher_cache.safetensors")
    base = ref_y = None
    gain = float(lcfg.get("residual_gain", 1.0))
    if cfg.get("reference"):  # residual mode: same crops, noise and presets through the teacher before IDPO
        ref = outputs_of(cfg["reference"], "reference_cache.safetensors")
        if not torch.equal(ref["thermal"], cache["thermal"]):
            raise ConfigError("distillation: teacher and reference caches hold different crops; delete both caches")
        ref_y, base = ref["teacher"], start.to(device)
    table, weights = torch.stack([embeddings[n] for n in names]).to(device), weights.to(device)
    n, batch_size = cache["thermal"].shape[0], int(tcfg.get("batch_size", 8))
    w_kd, w_reg = float(lcfg.get("distill", 1.0)), float(lcfg.get("fusion", 0.2))

    def step_fn(step: int):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, n, (batch_size,), generator=g)
        k = torch.randint(0, len(names), (batch_size,), generator=g)
        t = cache["thermal"][idx].float().div(255)
        rgb = cache["rgb"][idx].float().div(255)
        y_t = cache["teacher"][idx, k].float()
        y_t = y_t.div(255) if ref_y is None else y_t.sub(ref_y[idx, k].float()).div(255) * gain
        if torch.rand((), generator=g) < 0.5:
            t, rgb, y_t = t.flip(-1), rgb.flip(-1), y_t.flip(-1)
        t, rgb, y_t, k = t.to(device), rgb.to(device), y_t.to(device), k.to(device)
        pref = table[k]
        if base is not None:  # the starting student's output, moved by what IDPO changed in the teacher
            with torch.no_grad():
                y_t = (base(t, rgb, pref).y + y_t).clamp(0, 1)
        o = loop.model(t, rgb, pref)
        l_kd = F.l1_loss(o.y, y_t)
        l_reg, _ = fusion_loss(o.y, o.rgb, t, luma(rgb), rgb, weights[k], None)
        return w_kd * l_kd + w_reg * l_reg, {"kd": l_kd.item(), "fusion": l_reg.item()}

    return loop.run(step_fn)
