"""Teacher data: random luminance patches of the shared pairs (PALDM) and object-instance patches (IDPO).

Sources resolve exactly as the student's (``ivfusion.training.data.resolve_source``: shared names under
``ivfusion.paths.shared_root()``, RoadScene's pinned ``train`` split only). Images are kept in memory as uint8
(thermal, visible luminance, visible RGB) after downscaling the longest side to ``max_side``.

Instances (IDPO) come in two kinds (``data.instances`` in the IDPO config):

* ``objects`` -- one object each: ground-truth boxes where the dataset has labels (MSRS: the union of its
  infrared and visible label sets), otherwise the shared detector's boxes on the infrared and on the visible
  image (the student's cache, ``outputs/cache/student_detections.json``, computed if missing). Each instance is a
  ``patch`` x ``patch`` window centred on the box (clamped to the image) with the box as its mask.
* ``scenes`` -- one larger window per image placed to hold as many objects as it can, with all of them (class
  and box) as its objects and the whole window as its region. The detection oracle then judges what the
  evaluation measures -- every object of a frame at the detector's own scale, in colour -- and the visual oracle
  judges the whole window rather than a 128-px box whose cheapest win is added high frequency (IDPO v2).
  ``windows: grid`` instead tiles each image with overlapping windows (every part of a frame is a scene), and
  ``objects: pseudo`` takes the detector's pseudo-labels even where the dataset has labels, so a labelled
  set can be adapted to without its labels ever reaching training (IDPO v5: MSRS, cross-fitted by ``folds``).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
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


Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (pixels)


@dataclass(frozen=True)
class Instance:
    key: str  # "<dataset>/<stem>#<i>"
    image: int  # index into the image list
    x0: int  # patch origin (pixels of the resized image)
    y0: int
    box: Box  # the region inside the patch: the visual oracle's window, the IDPO mask of non-detection pairs
    objects: tuple[Box, ...] = ()  # object boxes inside the patch (an object instance: (box,))
    classes: tuple[str, ...] = ()  # class name per object; () = any class

    def judged(self, oracle: str) -> tuple[Box, ...]:
        """The boxes an oracle judged, so the IDPO loss (and any drawing) covers exactly them: the objects for
        the detection oracle, the region for the others."""
        return self.objects if oracle == "detection" else (self.box,)


@dataclass(frozen=True)
class View:
    """What an oracle sees of one instance (uint8 patches)."""

    ir: np.ndarray | None  # (P, P) thermal
    vi: np.ndarray | None  # (P, P) visible luminance
    box: Box
    objects: tuple[Box, ...] = ()
    classes: tuple[str, ...] = ()
    crcb: np.ndarray | None = None  # (P, P, 2) visible chroma (YCrCb): the detector judges colour, as evaluated


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


def _by_key(resolved: list, pseudo_only: bool = False) -> tuple[dict[str, tuple], list]:
    """``{"<dataset>/<stem>": (source, stem)}`` and the sources whose objects are pseudo-labels: those without
    labels, or all of them with ``pseudo_only``."""
    by_key = {f"{src.label}/{stem}": (src, stem) for src in resolved for stem in src.stems}
    return by_key, [src for src in resolved if pseudo_only or not src.folder.has_labels("union")]


def _label_boxes(img: Image, src, stem: str) -> list[tuple[float, float, float, float, str]]:
    """The dataset's union labels as (x1, y1, x2, y2, class name) in resized-image pixels."""
    s = img.scale
    return [(g.x1 * s, g.y1 * s, g.x2 * s, g.y2 * s, g.class_name) for g in src.folder.labels(stem, "union") or []]


def _window_origin(cx: float, cy: float, w: int, h: int, patch: int) -> tuple[int, int]:
    """Top-left of a ``patch`` window centred on (cx, cy), shifted to stay inside a w x h image."""
    return (int(np.clip(round(cx - patch / 2), 0, max(0, w - patch))),
            int(np.clip(round(cy - patch / 2), 0, max(0, h - patch))))


def find_instances(images: list[Image], resolved: list, patch: int, *, cache_dir: Path, min_side: int = 8,
                   max_per_image: int = 4) -> list[Instance]:
    """Object instances (see the module docstring), at most ``max_per_image`` largest per image."""
    by_key, unlabelled = _by_key(resolved)
    det = detector_boxes(unlabelled, cache_dir / "student_detections.json") if unlabelled else {}
    out: list[Instance] = []
    for i, img in enumerate(images):
        src, stem = by_key[img.key]
        h, w = img.thermal.shape
        if src.folder.has_labels("union"):
            boxes = [b[:4] for b in _label_boxes(img, src, stem)]
        else:
            boxes = [(x1 * w, y1 * h, x2 * w, y2 * h) for x1, y1, x2, y2 in det.get(img.key, [])]
        sides = [(b[2] - b[0], b[3] - b[1]) for b in boxes]
        boxes = [b for b, s in zip(boxes, sides) if min(s) >= min_side and max(s) <= patch]
        boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        for j, (x1, y1, x2, y2) in enumerate(boxes[:max_per_image]):
            x0, y0 = _window_origin((x1 + x2) / 2, (y1 + y2) / 2, w, h, patch)
            box = (int(max(0, x1 - x0)), int(max(0, y1 - y0)),
                   int(min(patch, np.ceil(x2 - x0))), int(min(patch, np.ceil(y2 - y0))))
            if box[2] - box[0] >= min_side and box[3] - box[1] >= min_side:
                out.append(Instance(f"{img.key}#{j}", i, x0, y0, box, (box,)))
    return out


def _window_boxes(boxes: list[tuple[float, float, float, float, str]], x0: int, y0: int, patch: int,
                  min_side: int, min_visible: float = 0.5) -> list[tuple[Box, str]]:
    """(box in window pixels, class) of the objects that the window at (x0, y0) shows (``cut_to_window``)."""
    from ivfusion.training.data import cut_to_window

    if not boxes:
        return []
    clipped, keep = cut_to_window(np.array([b[:4] for b in boxes]), x0, y0, patch, patch, min_visible, min_side)
    return [((int(c[0]), int(c[1]), int(np.ceil(c[2])), int(np.ceil(c[3]))), b[4])
            for b, c, k in zip(boxes, clipped, keep) if k]


def _image_objects(img: Image, src, stem: str, pseudo: dict[str, list[list[float]]], min_score: float,
                   names: dict[int, str]) -> list[tuple[float, float, float, float, str]]:
    """(x1, y1, x2, y2, class name) in resized-image pixels: the dataset's labels, or for the images in ``pseudo``
    (the sources :func:`_by_key` names) the shared detector's boxes on both bands merged by per-class NMS (the
    student's pseudo-labels)."""
    from ivfusion.training.data import pixel_pseudo_labels

    if img.key not in pseudo:
        return _label_boxes(img, src, stem)
    h, w = img.thermal.shape
    merged = pixel_pseudo_labels(pseudo[img.key], min_score, w, h)
    return [(x1, y1, x2, y2, names.get(int(c), str(int(c)))) for x1, y1, x2, y2, c in merged.tolist()]


def grid_origins(w: int, h: int, patch: int, overlap: float = 0.1) -> list[tuple[int, int]]:
    """Top-left corners of ``patch`` windows covering a w x h image, neighbours overlapping by at least ``overlap``
    (a 640x480 frame: 3 x 2 windows of 256)."""
    def starts(n: int) -> list[int]:
        if n <= patch:
            return [0]
        k = int(np.ceil((n - patch) / (patch * (1.0 - overlap)))) + 1
        return [int(round(v)) for v in np.linspace(0, n - patch, k)]

    return [(x0, y0) for y0 in starts(h) for x0 in starts(w)]


def find_scenes(images: list[Image], resolved: list, patch: int, *, cache_dir: Path, min_score: float = 0.3,
                min_side: int = 8, windows: str = "best", pseudo_only: bool = False, overlap: float = 0.1,
                skip_empty: bool = False) -> list[Instance]:
    """Scene instances. ``windows="best"``: one ``patch`` window per image, placed (centred on one of its objects,
    or the image centre) where it holds the most objects, ties broken by object area. ``"grid"``: every window
    of :func:`grid_origins` with neighbours overlapping by ``overlap`` (0.75: a window every quarter patch, so
    each object is seen at several positions and with several noises). Windows without objects still give a
    scene (the visual and text oracles judge it, the detection oracle abstains) unless ``skip_empty``: a
    detection-only run would spend candidates on them for nothing."""
    from ivfusion.training.data import detector_labels

    if windows not in ("best", "grid"):
        raise ConfigError(f"data.windows must be 'best' or 'grid', got {windows!r}")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"data.window_overlap must be in [0, 1), got {overlap}")
    by_key, unlabelled = _by_key(resolved, pseudo_only)
    wanted = {f"{src.label}/{stem}" for src in unlabelled for stem in src.stems}  # the cache holds other sets too
    pseudo = {k: v for k, v in detector_labels(unlabelled, cache_dir / "student_detections.json").items()
              if k in wanted} if unlabelled else {}
    names = coco_names() if unlabelled else {}
    out: list[Instance] = []
    for i, img in enumerate(images):
        src, stem = by_key[img.key]
        h, w = img.thermal.shape
        objs = _image_objects(img, src, stem, pseudo, min_score, names)
        if windows == "grid":
            for j, (x0, y0) in enumerate(grid_origins(w, h, patch, overlap)):
                kept = _window_boxes(objs, x0, y0, patch, min_side)
                out.append(Instance(f"{img.key}#w{j}", i, x0, y0, (0, 0, patch, patch),
                                    tuple(b for b, _ in kept), tuple(n for _, n in kept)))
            continue
        centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in objs] + [(w / 2, h / 2)]
        best = None
        for cx, cy in centres:
            x0, y0 = _window_origin(cx, cy, w, h, patch)
            kept = _window_boxes(objs, x0, y0, patch, min_side)
            score = (len(kept), sum((b[2] - b[0]) * (b[3] - b[1]) for b, _ in kept))
            if best is None or score > best[0]:
                best = (score, x0, y0, kept)
        _, x0, y0, kept = best
        out.append(Instance(f"{img.key}#scene", i, x0, y0, (0, 0, patch, patch),
                            tuple(b for b, _ in kept), tuple(n for _, n in kept)))
    return [s for s in out if s.objects] if skip_empty else out


def coco_names() -> dict[int, str]:
    """COCO class index -> name, as the shared detector reports them (the pseudo-labels store the index)."""
    from ivfusion.detection.torch_yolo import class_names
    from ivfusion.paths import default_detector_weights

    weights = default_detector_weights()
    names = class_names(weights)
    if all(v.isdigit() for v in names.values()):  # without names no class would ever match: the oracle abstains
        raise ConfigError(f"no class names in the metadata.yaml beside {weights}: pseudo-labels cannot be matched "
                          "to detections by class")
    return names


def instance_view(images: list[Image], inst: Instance, patch: int) -> View:
    """The oracle's view of an instance: source patches, region, objects, and the visible chroma."""
    t, y = instance_patch(images, inst, patch)
    rgb = _pad_to(images[inst.image].rgb, patch)[inst.y0:inst.y0 + patch, inst.x0:inst.x0 + patch]
    crcb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)[..., 1:]
    return View(t, y, inst.box, inst.objects, inst.classes, crcb)


def instance_mask(inst: Instance, patch: int, oracle: str, region: bool = False) -> np.ndarray:
    """(P, P) float mask of a pair's IDPO loss: the boxes its oracle judged (``Instance.judged``), or with
    ``region`` the instance's region (a scene's whole window) whatever the oracle."""
    m = np.zeros((patch, patch), np.float32)
    for x1, y1, x2, y2 in (inst.box,) if region else inst.judged(oracle):
        m[y1:y2, x1:x2] = 1.0
    return m


def instance_patch(images: list[Image], inst: Instance, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(thermal, visible luminance) uint8 ``patch`` x ``patch`` windows of an instance."""
    img = images[inst.image]
    t, y = _pad_to(img.thermal, patch), _pad_to(img.vis_y, patch)
    return (t[inst.y0:inst.y0 + patch, inst.x0:inst.x0 + patch].copy(),
            y[inst.y0:inst.y0 + patch, inst.x0:inst.x0 + patch].copy())


def fingerprint(*model_dirs: Path, **settings) -> str:
    """sha256 of what a cache depends on: the weights and configs in ``model_dirs`` and ``settings`` (JSON; arrays
    and tensors by their bytes). The teacher's caches (candidates, verdicts, text embeddings, distillation targets)
    store it and are rebuilt when it differs: matching only instance names or preset counts once reused
    outputs of another model or config."""
    from ivfusion.models.pretrained import CONFIG_NAME, WEIGHTS_NAME
    from ivfusion.teacher.adapters import ADAPTERS_CONFIG, ADAPTERS_WEIGHTS

    h = hashlib.sha256()
    for d in model_dirs:
        for name in (WEIGHTS_NAME, CONFIG_NAME, "scheduler_config.json", ADAPTERS_WEIGHTS, ADAPTERS_CONFIG):
            if (Path(d) / name).exists():
                h.update(name.encode() + (Path(d) / name).read_bytes())

    def jsonable(x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().contiguous().numpy()
        if isinstance(x, np.ndarray):
            return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() + str(x.shape) + str(x.dtype)
        return str(x)

    h.update(json.dumps(settings, sort_keys=True, default=jsonable).encode())
    return h.hexdigest()


def load_keyed(file: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The tensors of a cache written by :func:`save_keyed` with this :func:`fingerprint`, else None."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not file.exists():
        return None
    with safe_open(str(file), "pt") as f:
        if (f.metadata() or {}).get("key") != key:
            return None
    return load_file(str(file))


def keyed_cache(file: Path, key: str, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The cache at ``file`` when its fingerprint is ``key``, else ``build()`` saved there under ``key``."""
    cached = load_keyed(file, key)
    if cached is None:
        cached = build()
        save_keyed(cached, file, key)
    return cached


def save_keyed(tensors: dict[str, torch.Tensor], file: Path, key: str, **metadata: str) -> None:
    """A safetensors cache with its fingerprint in the file's own metadata (no side file to get out of step)."""
    from safetensors.torch import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(file), metadata={"key": key, **metadata})


def _image_hash(key: str) -> int:
    """A stable hash of the image of ``key`` (``<dataset>/<stem>``, or an instance key ``...#...``)."""
    return zlib.crc32(key.split("#", 1)[0].encode())


def fold_of(key: str, folds: int) -> int:
    """The cross-fitting fold of an image (``<dataset>/<stem>``, or an instance key ``...#...``): a stable hash,
    so every script that splits the same images agrees (training, the cross-fitted MSRS evaluation)."""
    return _image_hash(key) % folds


def is_held_out(key: str, rule: float | dict) -> bool:
    """Held-out by image (never an instance of a training image), by a stable hash of ``<dataset>/<stem>``.
    ``rule``: a fraction of the images, or ``{folds: K, fold: k}``: the images of fold k (cross-fitting: K runs,
    each holding out one fold, together evaluate every image with a model that never trained on it), optionally
    with ``datasets: [...]``: only those datasets are split, the others train in every fold (extra data for a
    cross-fitted evaluation on one dataset)."""
    if isinstance(rule, dict):
        folds, fold = int(rule["folds"]), int(rule["fold"])
        if not 0 <= fold < folds:
            raise ConfigError(f"data.held_out: need 0 <= fold < folds, got fold {fold} of {folds}")
        if rule.get("datasets") is not None and key.split("/", 1)[0] not in rule["datasets"]:
            return False
        return fold_of(key, folds) == fold
    return (_image_hash(key) % 1000) < float(rule) * 1000
