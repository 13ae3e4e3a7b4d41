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
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ivfusion.errors import ConfigError
from ivfusion.teacher.adapters import load_teacher
from ivfusion.teacher.data import Image, fingerprint, load_keyed, save_keyed, to_tensor
from ivfusion.teacher.properties import STANDARD

log = logging.getLogger(__name__)

DISTILL_SECTIONS = ("output_dir", "teacher", "reference", "student_init", "data", "presets", "train", "loss")
# loss.detector keys that belong to the student's own training loop (its second pass and anchor); distillation's
# regulariser is loss.fusion and its anchor the residual target, so these are refused rather than ignored
STUDENT_ONLY_DETECTOR_KEYS = ("fusion", "anchor", "mixed_fusion")


@torch.no_grad()
def cache_teacher_outputs(teacher_dir: str | Path, images: list[Image], embeddings: dict[str, torch.Tensor], *,
                          patch: int, crops_per_image: int, steps: int, seed: int, out_file: Path,
                          progress: bool = True, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Outputs per preset on fixed crops of the teacher saved at ``teacher_dir`` (a PALDM / PCLDM folder, or a
    ``PreferenceAdapters`` one: each preset then samples with its own weights); written to (and reused from)
    ``out_file`` (safetensors). The teacher is only loaded when the cache has to be made."""

    names = sorted(embeddings)
    key = fingerprint(Path(teacher_dir), presets=names, embeddings=[embeddings[n].float() for n in names],
                      patch=patch, crops_per_image=crops_per_image, steps=steps, seed=seed,
                      images=[(img.key, img.thermal.shape) for img in images], layout="origin")
    cached = load_keyed(out_file, key)
    if cached is not None:
        return cached
    if out_file.exists():
        log.info("distillation: %s was made with other settings or another teacher; rebuilding it", out_file)
    teacher = load_teacher(teacher_dir).to(device)
    rng = np.random.default_rng(seed)
    pref = torch.stack([embeddings[n].view(-1) for n in names]).to(device)
    th, rgb, ys, origin = [], [], [], []
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
            origin.append(torch.tensor([i, y0, x0], dtype=torch.int32))
    if not th:
        raise ConfigError(f"distillation: no image is at least {patch} px on each side")
    cache = {"thermal": torch.stack(th), "rgb": torch.stack(rgb), "teacher": torch.stack(ys),
             "origin": torch.stack(origin)}  # [image index, y0, x0] of each crop: where its pseudo-labels come from
    save_keyed(cache, out_file, key, presets=",".join(names))
    return cache


def crop_pseudo_labels(images: list[Image], resolved: list, origin: torch.Tensor, patch: int, target_score: float,
                       cache_file: Path) -> torch.Tensor:
    """(N, MAX_TARGETS, 5) detector targets for the cached crops: the shared detector's boxes on both bands of
    each crop's image (the student's pseudo-label cache, so no dataset label is read), cut to the crop."""
    from ivfusion.training.data import crop_targets, detector_labels, pixel_pseudo_labels

    labels = detector_labels(resolved, cache_file)
    per_image: dict[int, np.ndarray] = {}
    rows = []
    for i, y0, x0 in origin.tolist():
        if i not in per_image:
            h, w = images[i].thermal.shape
            per_image[i] = pixel_pseudo_labels(labels.get(images[i].key, []), target_score, w, h)
        rows.append(crop_targets(per_image[i], x0, y0, patch, False, patch))
    return torch.stack(rows)


def mirror_targets(targets: torch.Tensor) -> torch.Tensor:
    """``[class, cx, cy, w, h]`` rows of a horizontally mirrored crop; padding rows (class -1) stay as they are."""
    out = targets.clone()
    out[..., 1] = torch.where(targets[..., 0] >= 0, 1 - targets[..., 1], targets[..., 1])
    return out


def targets_mask(targets: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, size, size) 1 inside the pseudo-labels' boxes: the object mask the student's fusion loss weights
    (``box_weight``), as in its own training, so the regulariser is the loss that made the preset."""
    mask = torch.zeros(targets.shape[0], 1, size, size)
    for b, rows in enumerate(targets):
        for _, cx, cy, w, h in rows[rows[:, 0] >= 0].tolist():
            x1, y1 = int((cx - w / 2) * size), int((cy - h / 2) * size)
            x2, y2 = int(math.ceil((cx + w / 2) * size)), int(math.ceil((cy + h / 2) * size))
            mask[b, 0, max(y1, 0):y2, max(x1, 0):x2] = 1.0
    return mask


def residual_gains(value: float | dict[str, float], names: list[str], *, residual: bool) -> dict[str, float]:
    """``loss.residual_gain`` per distilled preset. A number applies to every preset; a mapping names the presets
    the teacher's change is taught to, and the others (gain 0) keep their starting output as the target, so a
    teacher tuned for one preference can be distilled into that preset while the rest are held where they are."""
    if not isinstance(value, dict):
        return {n: float(value) for n in names}
    if not residual:
        raise ConfigError("loss.residual_gain per preset needs residual mode (reference:); without it the target "
                          "is the teacher's own output for every preset")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ConfigError(f"loss.residual_gain names presets that are not distilled: {unknown} (presets: {names})")
    gains = {n: float(value.get(n, 0.0)) for n in names}
    if not any(gains.values()):
        raise ConfigError("loss.residual_gain is 0 for every preset: nothing would be learnt from the teacher")
    return gains


def teacher_target(teacher: torch.Tensor, reference: torch.Tensor | None, idx: torch.Tensor, column: torch.Tensor,
                   gain: torch.Tensor) -> torch.Tensor:
    """The distillation target of crops ``idx`` in [0, 1]: the teacher's sample (copy mode), or its change over
    the reference times the preset's gain (residual mode; zero where ``column`` is -1, an untaught preset)."""
    taught = column >= 0
    col = column.clamp(min=0)
    y = teacher[idx, col].float()
    if reference is None:
        return y.div(255)
    change = y.sub(reference[idx, col].float()).div(255)
    return change * (gain * taught).view(-1, *([1] * (change.dim() - 1)))


def _detector_regulariser(lcfg: dict[str, Any], names: list[str], device: torch.device):
    """The detector-aware loss the student was trained with (``loss.detector``), or None when its weight is 0."""
    from ivfusion.training.detector_loss import DetectorLoss, DetectorLossConfig

    dcfg = dict(lcfg.get("detector") or {})
    student_only = sorted(set(dcfg) & set(STUDENT_ONLY_DETECTOR_KEYS))
    if student_only:
        raise ConfigError(f"loss.detector.{student_only[0]} is a student-training knob; in distillation the "
                          "regulariser is loss.fusion and the anchor is the residual target")
    config = DetectorLossConfig(**dcfg)
    if config.weight <= 0:
        return None
    if config.preset not in names:
        raise ConfigError(f"loss.detector.preset {config.preset!r} is not one of the distilled presets {names}")
    return DetectorLoss(config, device)


def train_distill(cfg: dict[str, Any], *, resume: bool = True, progress: bool = True) -> Path:
    """Fine-tune the student on cached teacher outputs (config/train/distill.yaml); returns ``final/``.

    ``loss.detector`` (as in the student's config, e.g. v5e's) adds the detector's own loss on the named preset's
    output against the crop's pseudo-labels: the signal that made that preset, kept while the teacher's change is
    learned (docs/teacher.md, "Distillation v4")."""
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
    images, resolved = load_images(dcfg["sources"], int(dcfg.get("max_side", 800)))
    patch = int(dcfg.get("patch", 128))

    raw_gain = lcfg.get("residual_gain", 1.0)
    gains = residual_gains(raw_gain, names, residual=bool(cfg.get("reference")))
    # presets whose teacher samples are cached: those a per-preset gain names (a single number: every preset)
    taught = [n for n in names if gains[n] != 0] if isinstance(raw_gain, dict) else names

    def outputs_of(model_dir: str, file: str) -> dict[str, torch.Tensor]:
        return cache_teacher_outputs(model_dir, images, {n: embeddings[n] for n in taught}, patch=patch,
                                     crops_per_image=int(dcfg.get("crops_per_image", 2)),
                                     steps=int(dcfg.get("steps", 8)), seed=seed,
                                     out_file=Path(cfg["output_dir"]) / file, progress=progress, device=device)

    # residual mode's base is the *starting* student: copied before the loop can resume a later checkpoint into it
    start = copy.deepcopy(student).eval().requires_grad_(False) if cfg.get("reference") else None
    loop = TrainLoop(cfg, student, student.parameters(), resume=resume, progress=progress, name="distill")
    device = loop.accelerator.device
    det_loss = _detector_regulariser(lcfg, names, device)
    cache = outputs_of(cfg["teacher"], "teacher_cache.safetensors")
    base = ref_y = None
    # preset index -> its column in the caches (-1: not taught, the residual target is the starting student)
    column = torch.tensor([taught.index(n) if n in taught else -1 for n in names])
    gain = torch.tensor([gains[n] for n in names])
    if cfg.get("reference"):  # residual mode: same crops, noise and presets through the teacher before IDPO
        ref = outputs_of(cfg["reference"], "reference_cache.safetensors")
        if not torch.equal(ref["thermal"], cache["thermal"]):
            raise ConfigError("distillation: teacher and reference caches hold different crops; delete both caches")
        ref_y, base = ref["teacher"], start.to(device)
    targets = det_index = None
    if det_loss is not None:
        targets = crop_pseudo_labels(images, resolved, cache["origin"], patch, det_loss.config.target_score,
                                     Path(dcfg.get("cache_dir", "outputs/cache")) / "student_detections.json")
        det_index = names.index(det_loss.config.preset)
    table, weights = torch.stack([embeddings[n] for n in names]).to(device), weights.to(device)
    n, batch_size = cache["thermal"].shape[0], int(tcfg.get("batch_size", 8))
    w_kd, w_reg = float(lcfg.get("distill", 1.0)), float(lcfg.get("fusion", 0.2))

    def step_fn(step: int):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, n, (batch_size,), generator=g)
        k = torch.randint(0, len(names), (batch_size,), generator=g)
        t = cache["thermal"][idx].float().div(255)
        rgb = cache["rgb"][idx].float().div(255)
        y_t = teacher_target(cache["teacher"], ref_y, idx, column[k], gain[k])
        flip = bool(torch.rand((), generator=g) < 0.5)
        if flip:
            t, rgb, y_t = t.flip(-1), rgb.flip(-1), y_t.flip(-1)
        t, rgb, y_t, k = t.to(device), rgb.to(device), y_t.to(device), k.to(device)
        pref = table[k]
        if base is not None:  # the starting student's output, moved by what IDPO changed in the teacher
            with torch.no_grad():
                y_t = (base(t, rgb, pref).y + y_t).clamp(0, 1)
        o = loop.model(t, rgb, pref)
        l_kd = F.l1_loss(o.y, y_t)
        tgt = box = None
        if targets is not None:  # the crop's pseudo-labels: the detector's targets and the fusion loss's object mask
            tgt = mirror_targets(targets[idx]) if flip else targets[idx]
            box = targets_mask(tgt, t.shape[-1]).to(device)
        l_reg, _ = fusion_loss(o.y, o.rgb, t, luma(rgb), rgb, weights[k], box)
        total, logged = w_kd * l_kd + w_reg * l_reg, {"kd": l_kd.item(), "fusion": l_reg.item()}
        if det_loss is not None and bool((k == det_index).any()):
            sel = k == det_index
            l_det, parts = det_loss(o.rgb[sel], tgt[sel.cpu()].to(device))
            total = total + det_loss.config.weight * l_det
            logged.update({"det": l_det.item(), **{k_: v.item() for k_, v in parts.items()}})
        return total, logged

    return loop.run(step_fn)
