"""A "pairs folder": ``ir/`` and ``vi/`` with registered images sharing a file stem (the shared datasets' layout)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from ivfusion.data.labels import GroundTruth, LabelStore, image_size
from ivfusion.errors import IvfusionError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class PairSample:
    stem: str
    thermal: np.ndarray  # (H, W) uint8
    rgb: np.ndarray  # (H, W, 3) uint8, RGB order

    @cached_property
    def bgr(self) -> np.ndarray:
        """The visible image in the order every backend and the detector take; converted once per sample."""
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2BGR)


class PairsFolder:
    """Indexes the stems present in both ``ir/`` and ``vi/``, sorted, and loads them on demand."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        ir, vi = self.root / "ir", self.root / "vi"
        for sub in (ir, vi):
            if not sub.is_dir():
                raise IvfusionError(f"pairs folder {self.root}: missing sub-folder {sub.name}/")
        ir_files = _index(ir)
        vi_files = _index(vi)
        self.stems = sorted(set(ir_files) & set(vi_files))
        if not self.stems:
            raise IvfusionError(f"pairs folder {self.root}: no file stem is present in both ir/ and vi/")
        self._files = {s: (ir_files[s], vi_files[s]) for s in self.stems}
        self._labels: LabelStore | None = None  # built on first use: most callers never ask for labels

    def __len__(self) -> int:
        return len(self.stems)

    def paths(self, stem: str) -> tuple[Path, Path]:
        return self._files[stem]

    def load(self, index_or_stem: int | str) -> PairSample:
        stem = self.stems[index_or_stem] if isinstance(index_or_stem, int) else index_or_stem
        ir_path, vi_path = self._files[stem]
        thermal = cv2.imread(str(ir_path), cv2.IMREAD_GRAYSCALE)
        bgr = cv2.imread(str(vi_path), cv2.IMREAD_COLOR)
        if thermal is None or bgr is None:
            raise IvfusionError(f"cannot read pair {stem!r} from {self.root}")
        return PairSample(stem, thermal, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def labels(self, stem: str, which: str) -> list[GroundTruth] | None:
        """Ground-truth boxes of ``stem`` from set ``which`` (``ir``, ``vi``, ``fused`` or ``union``).

        None when the dataset has no labels for that set, [] when the stem has no label file or no
        objects. Layout, formats and the ``union`` de-duplication: :mod:`ivfusion.data.labels`.
        """
        if stem not in self._files:
            raise IvfusionError(f"pairs folder {self.root}: no pair with stem {stem!r}")
        return self._label_store().labels(stem, which)

    def has_labels(self, which: str) -> bool:
        """Whether the dataset has a label set ``which`` (``union``: an ``ir`` or a ``vi`` set)."""
        return self._label_store().has_labels(which)

    def _label_store(self) -> LabelStore:
        if self._labels is None:  # YOLO boxes are scaled to the visible image's size (pairs are registered)
            self._labels = LabelStore(self.root, lambda stem: image_size(self._files[stem][1]))
        return self._labels


def _index(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
