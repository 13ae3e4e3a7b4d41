"""Teacher data: random luminance patches of the shared pairs (PALDM) and object-instance patches (IDPO).

Sources resolve exactly as the student's (``ivfusion.training.data.resolve_source``: shared names under
``ivfusion.paths.shared_root()``, RoadScene's pinned ``train`` split only). Images are kept in memory as uint8
(thermal, visible luminance, visible RGB) after downscaling the longest side to ``max_side``.

Instances (IDPO) are objects: ground-truth boxes where the dataset has labels (MSRS: the union of its
infrared and visible label sets), otherwise the shared detector's boxes on the infrared and on the visible
image (the student's cache, ``outputs/cache/student_detections.json``, computed if missing). Each instance is a
``patch`` x ``patch`` window centred on the box (clamped to the image) with the box as its mask.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ivfusion.errors import ConfigError
from ivfusion.training.data import SourceSpec, _resize_max, detector_boxes, resolve_source


@dataclass(frozen=True)
class Image:
    key: str  # "<dataset>/<stem>"
    thermal: np.ndarray  # (H, W) uint8
    vis_y: np.ndarray  # (H, W) uint8, BT.601 luminance of the visible image
    rgb: np.ndarray  # (H, W, 3) uint8
    scale: float  # resize factor applied to the original image


@dataclass(frozen=True)
class Instance:
    key: str  # "<dataset>/<stem>#<i>"
    image: int  # index into the image list
    x0: int  # patch origin (pixels of the resized image)
    y0: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 inside the patch (pixels)


def load_images(sources: list[dict | str], max_side: int = 800) -> tuple[list[Image], list]:
    """In-memory images of the configured sources, and the resolved sources (for labels / box caches)."""
    resolved = [resolve_source(SourceSpec(**s) if isinstance(s, dict) else SourceSpec(str(s))) for s in sources]
    images: list[Image] = []
    for src in resolved:
        for stem in src.stems:
            s = src.folder.load(stem)
            h, w = s.thermal.shape
            scale = min(1.0, max_side / max(h, w))
            t, rgb = _resize_max(s.thermal, max_side), _resize_max(s.rgb, max_side)
            y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            images.append(Image(f"{src.label}/{stem}", t, y, rgb, scale))
    if not images:
        raise ConfigError("teacher data: no pairs found in " + ", ".join(s.spec.name for s in resolved))
    return images, resolved


def _pad_to(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    pad = ((0, max(0, size - h)), (0, max(0, size - w))) + ((0, 0),) * (img.ndim - 2)
    return np.pad(img, pad, mode="reflect" if h > 1 and w > 1 else "edge")


def to_tensor(gray: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(gray)).float().div(255.0).unsqueeze(0)


class RandomPatches(Dataset):
    """One random ``patch`` crop (plus a random horizontal flip) per image per epoch; seeded by (seed, epoch, i)."""

    def __init__(self, images: list[Image], patch: int, seed: int = 0) -> None:
        self.images, self.patch, self.seed, self.epoch = images, patch, seed, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        img = self.images[index]
        t, y = _pad_to(img.thermal, self.patch), _pad_to(img.vis_y, self.patch)
        h, w = t.shape
        y0, x0 = int(rng.integers(0, h - self.patch + 1)), int(rng.integers(0, w - self.patch + 1))
        t, y = t[y0:y0 + self.patch, x0:x0 + self.patch], y[y0:y0 + self.patch, x0:x0 + self.patch]
        if rng.random() < 0.5:
            t, y = t[:, ::-1], y[:, ::-1]
        return {"thermal": to_tensor(t), "vis_y": to_tensor(y)}


def find_instances(images: list[Image], resolved: list, patch: int, *, cache_dir: Path, min_side: int = 8,
                   max_per_image: int = 4) -> list[Instance]:
    """Object instances (see the module docstring), at most ``max_per_image`` largest per image."""
    by_key = {f"{src.label}/{stem}": (src, stem) for src in resolved for stem in src.stems}
    unlabelled = [src for src in resolved if not src.folder.has_labels("union")]
    det = detector_boxes(unlabelled, cache_dir / "student_detections.json") if unlabelled else {}
    out: list[Instance] = []
    for i, img in enumerate(images):
        src, stem = by_key[img.key]
        h, w = img.thermal.shape
        if src.folder.has_labels("union"):
            boxes = [(g.x1 * img.scale, g.y1 * img.scale, g.x2 * img.scale, g.y2 * img.scale)
                     for g in (src.folder.labels(stem, "union") or [])]
        else:
            boxes = [(x1 * w, y1 * h, x2 * w, y2 * h) for x1, y1, x2, y2 in det.get(img.key, [])]
        sides = [(b[2] - b[0], b[3] - b[1]) for b in boxes]
        boxes = [b for b, s in zip(boxes, sides) if min(s) >= min_side and max(s) <= patch]
        boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        for j, (x1, y1, x2, y2) in enumerate(boxes[:max_per_image]):
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            x0 = int(np.clip(round(cx - patch / 2), 0, max(0, w - patch)))
            y0 = int(np.clip(round(cy - patch / 2), 0, max(0, h - patch)))
            box = (int(max(0, x1 - x0)), int(max(0, y1 - y0)),
                   int(min(patch, np.ceil(x2 - x0))), int(min(patch, np.ceil(y2 - y0))))
            if box[2] - box[0] >= min_side and box[3] - box[1] >= min_side:
                out.append(Instance(f"{img.key}#{j}", i, x0, y0, box))
    return out


def instance_patch(images: list[Image], inst: Instance, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(thermal, visible luminance) uint8 ``patch`` x ``patch`` windows of an instance."""
    img = images[inst.image]
    t, y = _pad_to(img.thermal, patch), _pad_to(img.vis_y, patch)
    return (t[inst.y0:inst.y0 + patch, inst.x0:inst.x0 + patch].copy(),
            y[inst.y0:inst.y0 + patch, inst.x0:inst.x0 + patch].copy())


def box_mask(box: tuple[int, int, int, int], patch: int) -> np.ndarray:
    m = np.zeros((patch, patch), np.float32)
    m[box[1]:box[3], box[0]:box[2]] = 1.0
    return m


def is_held_out(key: str, fraction: float) -> bool:
    """Held-out by image (never an instance of a training image): a stable hash of ``<dataset>/<stem>``."""
    image_key = key.split("#", 1)[0]
    return (zlib.crc32(image_key.encode()) % 1000) < fraction * 1000
