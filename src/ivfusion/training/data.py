"""Training pairs in memory: registered crops, flips, input degradations, a sampled preference per sample.

Sources are ``PairsFolder`` datasets (shared names resolve under ``ivfusion.paths.shared_root()``; ``roadscene``
uses only its pinned ``train`` split so its ``val`` split stays unseen). Every sample carries the CLEAN crop
(loss targets), the degraded crop (network input), the degradation labels, a detector-box mask, a preference
embedding and that preference's loss weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ivfusion.data.pairs import PairsFolder
from ivfusion.errors import ConfigError
from ivfusion.evaluation.datasets import load_split, open_dataset
from ivfusion.training.degradations import DegradationConfig, degrade_pair
from ivfusion.training.losses import PresetLoss

BOX_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


@dataclass(frozen=True)
class SourceSpec:
    name: str  # shared dataset name or a pairs-folder path
    split: str = "all"  # pinned split name, or "all"


class ResolvedSource(NamedTuple):
    spec: SourceSpec
    label: str  # dataset name: the key prefix of the box cache
    folder: PairsFolder
    stems: list[str]


def resolve_source(spec: SourceSpec) -> ResolvedSource:
    """The folder and stems of ``spec``, resolved as ``ivfusion eval`` resolves names; resolve once, pass around."""
    ds = open_dataset(spec.name, split="all")
    stems = list(ds.stems)
    if spec.split != "all":  # unlike eval, a missing split file is an error here, and folder order is kept
        pinned = load_split(ds.name, spec.split)
        if pinned is None:
            raise ConfigError(f"training data {spec.name}: no pinned split file for split {spec.split!r}")
        keep = set(pinned)
        stems = [s for s in stems if s in keep]
    return ResolvedSource(spec, ds.name, ds.folder, stems)


def _resize_max(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return img
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def detector_labels(sources: list[ResolvedSource], cache_file: Path) -> dict[str, list[list[float]]]:
    """``{"<dataset>/<stem>": [[x1, y1, x2, y2, coco_class, score], ...]}`` (corners normalised): the shared
    detector run on the thermal and on the visible image (thermal's first), computed once and cached as JSON.

    These are the pseudo-labels of the detector-aware loss and the object masks of the fusion loss; an older
    cache of bare boxes is recomputed rather than trusted.
    """
    cache: dict[str, list[list[float]]] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    cache = {k: v for k, v in cache.items() if all(len(b) == 6 for b in v)}
    todo = [(src.label, src.folder, s) for src in sources for s in src.stems if f"{src.label}/{s}" not in cache]
    if todo:
        from ivfusion.detection import Detector, DetectorConfig

        detector = Detector(DetectorConfig(classes=BOX_CLASSES))
        for label, folder, stem in tqdm(todo, desc="detector boxes (cached)", unit="pair"):
            sample = folder.load(stem)
            h, w = sample.thermal.shape
            boxes = []
            for bgr in (cv2.cvtColor(sample.thermal, cv2.COLOR_GRAY2BGR), sample.bgr):
                boxes += [[d.x1 / w, d.y1 / h, d.x2 / w, d.y2 / h, d.class_index, d.score] for d in detector.detect(bgr)]
            cache[f"{label}/{stem}"] = boxes
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    return cache


def detector_boxes(sources: list[ResolvedSource], cache_file: Path) -> dict[str, list[list[float]]]:
    """``{"<dataset>/<stem>": [[x1, y1, x2, y2] normalised, ...]}``: the boxes of :func:`detector_labels`."""
    return {k: [b[:4] for b in v] for k, v in detector_labels(sources, cache_file).items()}


def merge_pseudo_labels(labels: list[list[float]], min_score: float, iou: float = 0.5) -> np.ndarray:
    """(N, 5) ``[x1, y1, x2, y2, class]`` from both bands' detections: scores below ``min_score`` dropped, then
    per-class NMS so an object the two bands both see is one target."""
    import torchvision

    a = np.asarray([b for b in labels if b[5] >= min_score], np.float32).reshape(-1, 6)
    if len(a) == 0:
        return np.zeros((0, 5), np.float32)
    t = torch.from_numpy(a)
    keep = torchvision.ops.batched_nms(t[:, :4], t[:, 5], t[:, 4].long(), iou).numpy()
    return a[np.sort(keep)][:, :5]


def pixel_pseudo_labels(labels: list[list[float]], min_score: float, width: int, height: int) -> np.ndarray:
    """:func:`merge_pseudo_labels` with the corners in pixels of a ``width`` x ``height`` image (the cached
    detections are normalised, the crops that cut them are not)."""
    boxes = merge_pseudo_labels(labels, min_score)
    boxes[:, [0, 2]] *= width
    boxes[:, [1, 3]] *= height
    return boxes


def cut_to_window(boxes: np.ndarray, x0: float, y0: float, width: float, height: float, min_visible: float,
                  min_side: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) pixel ``[x1, y1, x2, y2]`` -> (the boxes clipped to the window at (x0, y0) in its coordinates, which
    to keep): at least ``min_visible`` of the box and ``min_side`` px per side inside. A sliver of a person is not
    a person to the detector; the student's crops and the teacher's scenes apply the same rule."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4) - np.array([x0, y0, x0, y0], np.float32)
    clipped = np.clip(b, 0, np.array([width, height, width, height], np.float32))
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (cw * ch >= min_visible * np.maximum(area, 1e-6)) & (cw >= min_side) & (ch >= min_side)
    return clipped, keep


MAX_TARGETS = 32  # pseudo-labels per crop, padded so batches stack (rows with class -1 are padding)


def crop_targets(targets: np.ndarray, x0: int, y0: int, c: int, flip: bool, size: int,
                 min_visible: float = 0.5, min_side: float = 6.0) -> torch.Tensor:
    """(MAX_TARGETS, 5) ``[class, cx, cy, w, h]`` normalised to the ``size`` crop, for pixel ``[x1, y1, x2, y2,
    class]`` boxes cut to the crop at (x0, y0) of side c (then mirrored if ``flip``). A box keeps its label only
    when at least ``min_visible`` of it lies inside: a sliver of a person is not a person to the detector."""
    out = torch.full((MAX_TARGETS, 5), -1.0)
    if len(targets) == 0:
        return out
    clipped, keep = cut_to_window(targets[:, :4], x0, y0, c, c, min_visible, min_side)
    clipped, cls = clipped[keep][:MAX_TARGETS], targets[keep, 4][:MAX_TARGETS]
    if flip:
        clipped[:, [0, 2]] = c - clipped[:, [2, 0]]
    xywh = np.stack([(clipped[:, 0] + clipped[:, 2]) / 2, (clipped[:, 1] + clipped[:, 3]) / 2,
                     clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]], axis=1) / size
    out[:len(cls), 0] = torch.from_numpy(cls)
    out[:len(cls), 1:] = torch.from_numpy(xywh.astype(np.float32))
    return out


class FusionPairs(Dataset):
    """Random crops of in-memory pairs; ``len`` is the number of pairs, each access draws a fresh crop."""

    def __init__(self, sources: list[ResolvedSource], *, crop: int, presets: dict[str, PresetLoss],
                 prompt_embeddings: dict[str, torch.Tensor], degradation: DegradationConfig, max_side: int = 800,
                 detections: dict[str, list[list[float]]] | None = None, target_score: float | None = None,
                 seed: int = 0) -> None:
        """``detections``: :func:`detector_labels` (object masks); ``target_score``: also return the merged
        pseudo-labels above that score as ``targets`` for the detector-aware loss."""
        self.crop, self.degradation, self.seed, self.epoch = crop, degradation, seed, 0
        self.with_targets = target_score is not None
        missing = set(presets) - set(prompt_embeddings)
        if missing:
            raise ConfigError(f"training presets without prompt embeddings: {sorted(missing)}")
        self.preset_names = sorted(presets)
        self.weights = torch.stack([presets[n].as_tensor() for n in self.preset_names])
        self.prompts = [prompt_embeddings[n] for n in self.preset_names]
        self.items: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for _, label, folder, stems in sources:
            for stem in stems:
                s = folder.load(stem)
                t, rgb = _resize_max(s.thermal, max_side), _resize_max(s.rgb, max_side)
                mask = np.zeros(t.shape, np.uint8)
                h, w = t.shape
                dets = (detections or {}).get(f"{label}/{stem}", [])
                for x1, y1, x2, y2, *_ in dets:
                    mask[int(y1 * h):int(np.ceil(y2 * h)), int(x1 * w):int(np.ceil(x2 * w))] = 1
                targets = (pixel_pseudo_labels(dets, target_score, w, h) if self.with_targets
                           else np.zeros((0, 5), np.float32))
                self.items.append((t, rgb, mask, targets))
        if not self.items:
            raise ConfigError("training data: no pairs found in " + ", ".join(s.spec.name for s in sources))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        t, rgb, mask, targets = self.items[index]
        h, w = t.shape
        c = min(self.crop, h, w)
        y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        t, rgb, mask = t[y0:y0 + c, x0:x0 + c], rgb[y0:y0 + c, x0:x0 + c], mask[y0:y0 + c, x0:x0 + c]
        flip = rng.random() < 0.5
        if flip:
            t, rgb, mask = t[:, ::-1], rgb[:, ::-1], mask[:, ::-1]
        t, rgb, mask = np.ascontiguousarray(t), np.ascontiguousarray(rgb), np.ascontiguousarray(mask)
        if c < self.crop:  # small image: pad by reflection so batches stack
            pad = ((0, self.crop - c), (0, self.crop - c))
            t, mask = np.pad(t, pad, mode="reflect"), np.pad(mask, pad)
            rgb = np.pad(rgb, pad + ((0, 0),), mode="reflect")
        dt, drgb, labels = degrade_pair(t, rgb, rng, self.degradation)
        p = int(rng.integers(len(self.preset_names)))
        prompts = self.prompts[p]
        emb = prompts[int(rng.integers(len(prompts)))]
        out = {
            "thermal": torch.from_numpy(t).float().div(255).unsqueeze(0),
            "rgb": torch.from_numpy(rgb).float().div(255).permute(2, 0, 1),
            "thermal_in": torch.from_numpy(dt).float().div(255).unsqueeze(0),
            "rgb_in": torch.from_numpy(drgb).float().div(255).permute(2, 0, 1),
            "box": torch.from_numpy(mask).float().unsqueeze(0),
            "degradation": torch.from_numpy(labels),
            "preference": emb.float(),
            "weights": self.weights[p],
            "preset": torch.tensor(p),  # index into preset_names
        }
        if self.with_targets:
            out["targets"] = crop_targets(targets, x0, y0, c, flip, self.crop)
        return out
