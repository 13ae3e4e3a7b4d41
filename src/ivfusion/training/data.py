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


def detector_boxes(sources: list[ResolvedSource], cache_file: Path) -> dict[str, list[list[float]]]:
    """``{"<dataset>/<stem>": [[x1, y1, x2, y2] normalised, ...]}``: shared-detector boxes on the thermal and on
    the visible image (union), computed once and cached as JSON."""
    cache: dict[str, list[list[float]]] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    todo = [(src.label, src.folder, s) for src in sources for s in src.stems if f"{src.label}/{s}" not in cache]
    if todo:
        from ivfusion.detection import Detector, DetectorConfig

        detector = Detector(DetectorConfig(classes=BOX_CLASSES))
        for label, folder, stem in tqdm(todo, desc="detector boxes (cached)", unit="pair"):
            sample = folder.load(stem)
            h, w = sample.thermal.shape
            boxes = []
            for bgr in (cv2.cvtColor(sample.thermal, cv2.COLOR_GRAY2BGR), cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR)):
                boxes += [[d.x1 / w, d.y1 / h, d.x2 / w, d.y2 / h] for d in detector.detect(bgr)]
            cache[f"{label}/{stem}"] = boxes
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    return cache


class FusionPairs(Dataset):
    """Random crops of in-memory pairs; ``len`` is the number of pairs, each access draws a fresh crop."""

    def __init__(self, sources: list[ResolvedSource], *, crop: int, presets: dict[str, PresetLoss],
                 prompt_embeddings: dict[str, torch.Tensor], degradation: DegradationConfig, max_side: int = 800,
                 boxes: dict[str, list[list[float]]] | None = None, seed: int = 0) -> None:
        self.crop, self.degradation, self.seed, self.epoch = crop, degradation, seed, 0
        missing = set(presets) - set(prompt_embeddings)
        if missing:
            raise ConfigError(f"training presets without prompt embeddings: {sorted(missing)}")
        self.preset_names = sorted(presets)
        self.weights = torch.stack([presets[n].as_tensor() for n in self.preset_names])
        self.prompts = [prompt_embeddings[n] for n in self.preset_names]
        self.items: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for _, label, folder, stems in sources:
            for stem in stems:
                s = folder.load(stem)
                t, rgb = _resize_max(s.thermal, max_side), _resize_max(s.rgb, max_side)
                mask = np.zeros(t.shape, np.uint8)
                h, w = t.shape
                for x1, y1, x2, y2 in (boxes or {}).get(f"{label}/{stem}", []):
                    mask[int(y1 * h):int(np.ceil(y2 * h)), int(x1 * w):int(np.ceil(x2 * w))] = 1
                self.items.append((t, rgb, mask))
        if not self.items:
            raise ConfigError("training data: no pairs found in " + ", ".join(s.spec.name for s in sources))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        t, rgb, mask = self.items[index]
        h, w = t.shape
        c = min(self.crop, h, w)
        y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        t, rgb, mask = t[y0:y0 + c, x0:x0 + c], rgb[y0:y0 + c, x0:x0 + c], mask[y0:y0 + c, x0:x0 + c]
        if rng.random() < 0.5:
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
        return {
            "thermal": torch.from_numpy(t).float().div(255).unsqueeze(0),
            "rgb": torch.from_numpy(rgb).float().div(255).permute(2, 0, 1),
            "thermal_in": torch.from_numpy(dt).float().div(255).unsqueeze(0),
            "rgb_in": torch.from_numpy(drgb).float().div(255).permute(2, 0, 1),
            "box": torch.from_numpy(mask).float().unsqueeze(0),
            "degradation": torch.from_numpy(labels),
            "preference": emb.float(),
            "weights": self.weights[p],
        }
