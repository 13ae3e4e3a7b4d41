"""Ground-truth boxes on disk: YOLO txt and Pascal VOC XML, and a dataset's per-band label sets.

Boxes come back as :class:`GroundTruth` in image pixels (``x1 < x2``, ``y1 < y2``, continuous coordinates,
no ``+1`` pixel convention), which is what :mod:`ivfusion.metrics.detection` scores against.

Conventions (also in each function's docstring):

* **YOLO txt** -- one ``class cx cy w h`` line per box, normalised to the image size. An *empty* file
  means "this image has no objects". A *missing* file also reads as no objects (the YOLO convention
  for background images); a caller that must tell "no label file" apart uses :func:`find_label_file`,
  which returns ``None`` for it, or :meth:`LabelStore.labels`, which returns ``None`` when the dataset
  has no label *set* at all. Blank lines and ``#`` comments are skipped; any other line that is not
  exactly five numbers with an integer class id known to ``class_names`` and non-negative w, h raises
  :class:`~ivfusion.errors.IvfusionError` naming the file and the 1-based line number.
  Boxes are not clipped to the image.
* **Pascal VOC XML** -- ``object/name`` and ``object/bndbox/{xmin,ymin,xmax,ymax}``, taken as they are
  (no 1-based shift). ``object/difficult`` (0/1) is kept in :attr:`GroundTruth.difficult`; the metrics
  treat difficult boxes as "ignore" (neither required nor penalised).
* **Dataset layout** (``<root>/labels``) -- ``labels/<which>/<stem>.txt`` or ``.xml`` per label set
  ``which`` in ``ir``, ``vi``, ``fused``; a dataset with a single label set may keep its files directly in
  ``labels/`` (``labels/<stem>.txt``), which then serves every ``which`` that has no sub-folder of its
  own. YOLO class names come from ``classes.txt`` in the dataset root (or in ``labels/``): either one
  name per line (index = line order) or ``<index> <name>`` lines. When both ``<stem>.txt`` and
  ``<stem>.xml`` exist, the txt file wins.
* **"union"** -- the ``ir`` and ``vi`` sets merged: every ``ir`` box is kept, and a ``vi`` box is dropped
  when it duplicates an ``ir`` box of the same class at IoU >= 0.5. Duplicates are paired one-to-one,
  greedily by decreasing IoU, so two distinct ``vi`` people can never collapse onto one ``ir`` box and
  overlapping boxes *within* one set are never merged. The kept (``ir``) box is ``difficult`` only if
  both were. If only one of the two sets exists the union is that set.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivfusion.errors import IvfusionError

LABEL_SETS = ("ir", "vi", "fused")
WHICH = LABEL_SETS + ("union",)
UNION_IOU = 0.5
_SUFFIXES = (".txt", ".xml")
_CLASSES_FILE = "classes.txt"


@dataclass(frozen=True)
class GroundTruth:
    """One annotated box in image pixels."""

    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float
    difficult: bool = False

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


# ----------------------------------------------------------------------------------------------- YOLO


def read_class_names(path: str | Path) -> list[str]:
    """``classes.txt``: one name per line, or ``<index> <name>`` lines (indices 0..n-1, any order)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise IvfusionError(f"cannot read class names {path}: {exc}") from exc
    entries = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    if not entries:
        raise IvfusionError(f"class names file {path} is empty")
    indexed = [e[1].split(None, 1) for e in entries]
    if all(len(p) == 2 and p[0].isdigit() for p in indexed):
        by_index: dict[int, str] = {}
        for (lineno, _), (idx, name) in zip(entries, indexed):
            if int(idx) in by_index:
                raise IvfusionError(f"{path}:{lineno}: class index {idx} given twice")
            by_index[int(idx)] = name.strip()
        if sorted(by_index) != list(range(len(by_index))):
            raise IvfusionError(f"{path}: class indices must be 0..{len(by_index) - 1}, got {sorted(by_index)}")
        return [by_index[i] for i in range(len(by_index))]
    return [text for _, text in entries]


def read_yolo_labels(
    path: str | Path, image_size: tuple[int, int], class_names: Sequence[str]
) -> list[GroundTruth]:
    """Boxes of a YOLO txt file in pixels of an image of ``image_size = (width, height)``.

    A missing or empty file gives ``[]`` (no objects); use :func:`find_label_file` to tell a missing
    file apart. A malformed line raises :class:`IvfusionError` naming the file and line number.
    """
    path = Path(path)
    width, height = image_size
    if width <= 0 or height <= 0:
        raise IvfusionError(f"{path}: image size must be positive, got {image_size}")
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IvfusionError(f"cannot read YOLO labels {path}: {exc}") from exc
    boxes: list[GroundTruth] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        fields = stripped.split()
        if len(fields) != 5:
            raise IvfusionError(f"{where}: expected 'class cx cy w h' (5 fields), got {len(fields)}: {stripped!r}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise IvfusionError(f"{where}: non-numeric field in {stripped!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise IvfusionError(f"{where}: non-finite value in {stripped!r}")
        cls, cx, cy, w, h = values
        if cls != int(cls) or not 0 <= int(cls) < len(class_names):
            raise IvfusionError(f"{where}: class id {fields[0]!r} is not one of 0..{len(class_names) - 1}")
        if w < 0 or h < 0:
            raise IvfusionError(f"{where}: negative box size in {stripped!r}")
        boxes.append(
            GroundTruth(
                class_names[int(cls)],
                (cx - w / 2) * width,
                (cy - h / 2) * height,
                (cx + w / 2) * width,
                (cy + h / 2) * height,
            )
        )
    return boxes


def write_yolo_labels(
    path: str | Path, boxes: Sequence[GroundTruth], image_size: tuple[int, int], class_names: Sequence[str]
) -> None:
    """Inverse of :func:`read_yolo_labels` (the ``difficult`` flag has no place in YOLO txt and is dropped)."""
    width, height = image_size
    index = {name: i for i, name in enumerate(class_names)}
    lines = []
    for b in boxes:
        if b.class_name not in index:
            raise IvfusionError(f"{path}: class {b.class_name!r} is not in the class list {list(class_names)}")
        cx, cy = (b.x1 + b.x2) / 2 / width, (b.y1 + b.y2) / 2 / height
        w, h = (b.x2 - b.x1) / width, (b.y2 - b.y1) / height
        lines.append(f"{index[b.class_name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    Path(path).write_text("".join(lines), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ VOC


def read_voc_labels(path: str | Path) -> list[GroundTruth]:
    """Boxes of a Pascal VOC annotation (coordinates as written; ``difficult`` kept, default False)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise IvfusionError(f"cannot read VOC labels {path}: {exc}") from exc
    boxes: list[GroundTruth] = []
    for n, obj in enumerate(root.iter("object"), 1):
        where = f"{path}: object #{n}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise IvfusionError(f"{where}: missing <name>")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise IvfusionError(f"{where} ({name}): missing <bndbox>")
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = bnd.findtext(tag)
            try:
                coords.append(float((text or "").strip()))
            except ValueError:
                raise IvfusionError(f"{where} ({name}): bad or missing <{tag}> {text!r}") from None
        x1, y1, x2, y2 = coords
        if not all(math.isfinite(c) for c in coords) or x2 < x1 or y2 < y1:
            raise IvfusionError(f"{where} ({name}): invalid box {coords}")
        difficult_text = (obj.findtext("difficult") or "0").strip()
        if difficult_text not in ("0", "1"):
            raise IvfusionError(f"{where} ({name}): <difficult> must be 0 or 1, got {difficult_text!r}")
        boxes.append(GroundTruth(name, x1, y1, x2, y2, difficult=difficult_text == "1"))
    return boxes


def write_voc_labels(
    path: str | Path, boxes: Sequence[GroundTruth], image_size: tuple[int, int], filename: str = ""
) -> None:
    """A minimal Pascal VOC annotation (``filename``, ``size``, one ``object`` per box)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, value in zip(("width", "height", "depth"), (*image_size, 3)):
        ET.SubElement(size, tag).text = str(int(value))
    for b in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = b.class_name
        ET.SubElement(obj, "difficult").text = "1" if b.difficult else "0"
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (b.x1, b.y1, b.x2, b.y2)):
            ET.SubElement(bnd, tag).text = repr(float(value))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# ------------------------------------------------------------------------------------------- merging


def boxes_iou(a: Sequence[GroundTruth], b: Sequence[GroundTruth]) -> np.ndarray:
    """``(len(a), len(b))`` IoU matrix of two box lists (classes not considered)."""
    from ivfusion.metrics.detection import box_iou

    return box_iou([[g.x1, g.y1, g.x2, g.y2] for g in a], [[g.x1, g.y1, g.x2, g.y2] for g in b])


def merge_label_sets(
    primary: Sequence[GroundTruth], secondary: Sequence[GroundTruth], iou_threshold: float = UNION_IOU
) -> list[GroundTruth]:
    """All of ``primary`` plus the ``secondary`` boxes that duplicate none of them (see module doc)."""
    merged = list(primary)
    extra: list[GroundTruth] = []
    for cls in dict.fromkeys(g.class_name for g in secondary):
        p_idx = [i for i, g in enumerate(primary) if g.class_name == cls]
        s_idx = [j for j, g in enumerate(secondary) if g.class_name == cls]
        iou = boxes_iou([primary[i] for i in p_idx], [secondary[j] for j in s_idx])
        used_p: set[int] = set()
        dropped: set[int] = set()
        pairs = np.argwhere(iou >= iou_threshold)
        order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable") if len(pairs) else []
        for k in order:
            pi, si = (int(v) for v in pairs[k])
            if pi in used_p or si in dropped:
                continue
            used_p.add(pi)
            dropped.add(si)
            kept, dup = primary[p_idx[pi]], secondary[s_idx[si]]
            if kept.difficult and not dup.difficult:
                merged[p_idx[pi]] = GroundTruth(kept.class_name, kept.x1, kept.y1, kept.x2, kept.y2, False)
        extra.extend(secondary[s_idx[j]] for j in range(len(s_idx)) if j not in dropped)
    return merged + extra


# ------------------------------------------------------------------------------------- dataset layout


def find_label_file(root: str | Path, stem: str, which: str) -> Path | None:
    """The label file of ``stem`` in set ``which`` (``ir``/``vi``/``fused``) under ``<root>/labels``, or None."""
    set_dir = label_set_dir(root, which)
    if set_dir is None:
        return None
    for suffix in _SUFFIXES:
        candidate = set_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def label_set_dir(root: str | Path, which: str) -> Path | None:
    """``labels/<which>/`` if it exists, else ``labels/`` if it holds label files itself, else None."""
    if which not in LABEL_SETS:
        raise IvfusionError(f"label set must be one of {LABEL_SETS}, got {which!r}")
    labels = Path(root) / "labels"
    if (labels / which).is_dir():
        return labels / which
    if labels.is_dir() and any(
        p.suffix in _SUFFIXES and p.name != _CLASSES_FILE and p.is_file() for p in labels.iterdir()
    ):
        return labels
    return None


def read_label_file(path: Path, image_size: tuple[int, int], class_names: Sequence[str] | None) -> list[GroundTruth]:
    """Dispatch on the suffix: ``.xml`` is VOC, anything else YOLO (which needs ``class_names``)."""
    if path.suffix.lower() == ".xml":
        return read_voc_labels(path)
    if class_names is None:
        raise IvfusionError(f"{path}: YOLO labels need a {_CLASSES_FILE} in the dataset root or in labels/")
    return read_yolo_labels(path, image_size, class_names)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, from its header (the pixels are not decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except (OSError, UnidentifiedImageError) as exc:
        raise IvfusionError(f"cannot read image {path} to learn its size") from exc


class LabelStore:
    """A dataset root's label sets, with class names and image sizes cached.

    ``size_of(stem) -> (width, height)`` gives the pixel size YOLO boxes are scaled to.
    """

    def __init__(self, root: str | Path, size_of: Callable[[str], tuple[int, int]]) -> None:
        self.root = Path(root)
        self._size_of = size_of
        self._sizes: dict[str, tuple[int, int]] = {}
        self._class_names: list[str] | None = None
        self._class_names_read = False

    @property
    def class_names(self) -> list[str] | None:
        if not self._class_names_read:
            for candidate in (self.root / _CLASSES_FILE, self.root / "labels" / _CLASSES_FILE):
                if candidate.is_file():
                    self._class_names = read_class_names(candidate)
                    break
            self._class_names_read = True
        return self._class_names

    def has_labels(self, which: str) -> bool:
        if which == "union":
            return self.has_labels("ir") or self.has_labels("vi")
        return label_set_dir(self.root, which) is not None

    def labels(self, stem: str, which: str) -> list[GroundTruth] | None:
        """Boxes of ``stem`` in set ``which``; None if the dataset has no such set, [] if no file for the stem."""
        if which not in WHICH:
            raise IvfusionError(f"label set must be one of {WHICH}, got {which!r}")
        if which == "union":
            ir, vi = self.labels(stem, "ir"), self.labels(stem, "vi")
            if ir is None or vi is None:
                return vi if ir is None else ir
            return merge_label_sets(ir, vi)
        if not self.has_labels(which):
            return None
        path = find_label_file(self.root, stem, which)
        if path is None:
            return []
        if path.suffix.lower() == ".xml":
            return read_voc_labels(path)
        if stem not in self._sizes:
            self._sizes[stem] = self._size_of(stem)
        return read_label_file(path, self._sizes[stem], self.class_names)
