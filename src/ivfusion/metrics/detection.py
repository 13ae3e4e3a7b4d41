"""COCO-style detection AP (mAP@0.5 and mAP@0.5:0.95) for boxes scored against ground truth.

The rules are pycocotools' ``bbox`` evaluation with the area range fixed to "all", so the numbers agree
with ``COCOeval`` (``areaRng`` all, ``maxDets`` 100) -- the tests check that to 1e-3:

* **Matching**, per class, per image and per IoU threshold ``t``: predictions are taken by decreasing
  score (stable, so ties keep their input order); each takes the *unmatched* ground-truth box of the same
  class and image with the highest IoU, provided that IoU >= ``t``, and is a true positive; otherwise it is
  a false positive. Each ground-truth box is matched at most once, so a second prediction on the same
  object is a false positive, and a prediction of the wrong class is a false positive of its own class.
* **Difficult** ground truth (``difficult=True``, e.g. from VOC XML) is "ignore", as COCO's ``iscrowd``-free
  ignore flag: it is not counted in ``n_gt``, a prediction matched to it is neither TP nor FP, and normal
  boxes are preferred over it when both qualify.
* **At most ``max_dets`` (default 100, COCO's default) predictions per image and class** are kept, the
  highest-scoring ones (this is what ``COCOeval`` does with ``useCats=1``). No area ranges: every box counts
  whatever its size.
* **AP**: the predictions of all images are pooled and sorted by score; precision is made monotone
  (running max from the right) and read at the 101 recall points 0, 0.01, ..., 1 (the first prediction
  whose recall reaches the point; 0 past the highest recall reached); AP is their mean.
* **mAP** averages over the evaluated classes that have at least one (non-difficult) ground-truth box in
  the evaluated images. A class with no ground truth has AP ``nan`` in ``per_class`` and is left out of
  the mean, whether or not it has predictions (pycocotools does the same); if no class has any ground
  truth, mAP is ``nan``. mAP@0.5:0.95 averages AP over the ten thresholds 0.50, 0.55, ..., 0.95.
* **Images**: the evaluated images are the keys of ``ground_truth``; an image with no entry in
  ``predictions`` has no predictions. Predictions for an image absent from ``ground_truth`` are an error
  (an image without objects must be given as an empty list). Boxes of classes outside ``classes`` are
  ignored on both sides.

Class names: detectors report their own vocabulary (COCO for the shared YOLOv8n). :func:`map_predictions`
renames and filters predictions with a mapping *detector class name -> evaluated class name*;
:data:`DATASET_TO_COCO` (the default) is strict, so a COCO "truck" is not a dataset "car";
:data:`LENIENT_VEHICLES` adds truck/bus -> car and motorcycle -> bicycle on top of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ivfusion.errors import IvfusionError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # same values as pycocotools (0.8999999999999999 included)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100

# Detector (COCO) class name -> evaluated (dataset) class name. The MSRS classes are COCO names already.
DATASET_TO_COCO: dict[str, str] = {"person": "person", "bicycle": "bicycle", "car": "car"}
# The strict mapping plus the COCO classes a road-scene annotator may have called car / bicycle.
LENIENT_VEHICLES: dict[str, str] = {**DATASET_TO_COCO, "truck": "car", "bus": "car", "motorcycle": "bicycle"}


class BoxLike(Protocol):
    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float


class ScoredBoxLike(BoxLike, Protocol):
    score: float


@dataclass(frozen=True)
class Prediction:
    """A scored box in image pixels (``ivfusion.detection.Detection`` is accepted wherever this is)."""

    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float


@dataclass(frozen=True)
class ClassAP:
    ap50: float  # nan when the class has no ground truth
    ap50_95: float
    n_gt: int  # non-difficult ground-truth boxes
    n_pred: int  # predictions of this class in the evaluated images (before the max_dets cut)


@dataclass(frozen=True)
class DetectionScores:
    map50: float
    map50_95: float
    per_class: dict[str, ClassAP] = field(default_factory=dict)
    n_images: int = 0

    def summary(self) -> str:
        """A small fixed-width table: one line per class, then the means."""
        lines = [f"{'class':<12} {'n_gt':>5} {'n_pred':>6} {'AP50':>7} {'AP50:95':>8}"]
        for name, c in self.per_class.items():
            lines.append(f"{name:<12} {c.n_gt:>5d} {c.n_pred:>6d} {c.ap50:>7.4f} {c.ap50_95:>8.4f}")
        lines.append(f"{'mAP':<12} {'':>5} {'':>6} {self.map50:>7.4f} {self.map50_95:>8.4f}  ({self.n_images} images)")
        return "\n".join(lines)


def map_predictions(dets: Iterable[ScoredBoxLike], mapping: Mapping[str, str] = DATASET_TO_COCO) -> list[Prediction]:
    """Detections whose ``class_name`` is a key of ``mapping``, renamed to the mapped (evaluated) class."""
    return [
        Prediction(mapping[d.class_name], float(d.x1), float(d.y1), float(d.x2), float(d.y2), float(d.score))
        for d in dets
        if d.class_name in mapping
    ]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of ``(N, 4)`` and ``(M, 4)`` x1,y1,x2,y2 boxes (0 where both are empty)."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def evaluate_detections(
    predictions: Mapping[str, Sequence[ScoredBoxLike]],
    ground_truth: Mapping[str, Sequence[BoxLike]],
    classes: Sequence[str],
    *,
    max_dets: int = MAX_DETS,
    iou_thresholds: Sequence[float] | np.ndarray = IOU_THRESHOLDS,
) -> DetectionScores:
    """Score ``predictions[image]`` against ``ground_truth[image]`` for ``classes`` (rules: module doc).

    ``mAP@0.5`` is AP at ``iou_thresholds[0]``; ``mAP@0.5:0.95`` is AP averaged over all of them.
    Ground-truth items may carry ``difficult``; missing means False.
    """
    stray = sorted(set(predictions) - set(ground_truth))
    if stray:
        raise IvfusionError(
            f"predictions for {len(stray)} image(s) without a ground-truth entry, e.g. {stray[:3]}; "
            "give images without objects an empty ground-truth list"
        )
    if max_dets < 1:
        raise IvfusionError(f"max_dets must be >= 1, got {max_dets}")
    thresholds = np.asarray(iou_thresholds, dtype=float)
    if thresholds.ndim != 1 or not len(thresholds) or not ((thresholds > 0) & (thresholds <= 1)).all():
        raise IvfusionError(f"iou_thresholds must be a non-empty list in (0, 1], got {iou_thresholds}")
    thresholds = np.minimum(thresholds, 1 - 1e-10)  # as pycocotools: IoU 1 still matches at t = 1
    images = sorted(ground_truth)
    wanted = list(dict.fromkeys(classes))

    per_class: dict[str, ClassAP] = {}
    for cls in wanted:
        scores, tp, ignored, n_gt, n_pred = [], [], [], 0, 0
        for image in images:
            gts = [g for g in ground_truth[image] if g.class_name == cls]
            preds = [p for p in predictions.get(image, ()) if p.class_name == cls]
            n_pred += len(preds)
            gt_ignore = np.array([bool(getattr(g, "difficult", False)) for g in gts], dtype=bool)
            n_gt += int((~gt_ignore).sum())
            if not preds:
                continue
            order = np.argsort([-float(p.score) for p in preds], kind="mergesort")[:max_dets]
            pred_boxes = np.array([[preds[i].x1, preds[i].y1, preds[i].x2, preds[i].y2] for i in order], float)
            gt_boxes = np.array([[g.x1, g.y1, g.x2, g.y2] for g in gts], float).reshape(-1, 4)
            is_tp, is_ignored = _match(box_iou(pred_boxes, gt_boxes), gt_ignore, thresholds)
            scores.append(np.array([float(preds[i].score) for i in order]))
            tp.append(is_tp)
            ignored.append(is_ignored)
        if n_gt == 0:
            per_class[cls] = ClassAP(math.nan, math.nan, 0, n_pred)
            continue
        if scores:
            all_scores = np.concatenate(scores)
            order = np.argsort(-all_scores, kind="mergesort")
            ap = _average_precision(np.concatenate(tp, 1)[:, order], np.concatenate(ignored, 1)[:, order], n_gt)
        else:
            ap = np.zeros(len(thresholds))
        per_class[cls] = ClassAP(float(ap[0]), float(ap.mean()), n_gt, n_pred)

    scored = [c for c in per_class.values() if c.n_gt > 0]
    map50 = float(np.mean([c.ap50 for c in scored])) if scored else math.nan
    map50_95 = float(np.mean([c.ap50_95 for c in scored])) if scored else math.nan
    return DetectionScores(map50, map50_95, per_class, len(images))


def _match(iou: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching of score-sorted predictions (rows of ``iou``) at each threshold.

    Returns ``(T, D)`` booleans: matched to a normal box (TP), and matched to an ignored box (neither).
    """
    n_t, (n_d, n_g) = len(thresholds), iou.shape
    tp = np.zeros((n_t, n_d), dtype=bool)
    ign = np.zeros((n_t, n_d), dtype=bool)
    if n_g == 0:
        return tp, ign
    # Normal boxes first, then ignored ones; among equal IoUs the later box wins (pycocotools' loop).
    gt_order = np.argsort(gt_ignore, kind="mergesort")
    iou = iou[:, gt_order]
    ignore = gt_ignore[gt_order]
    normal = ~ignore
    for ti, t in enumerate(thresholds):
        taken = np.zeros(n_g, dtype=bool)
        for d in range(n_d):
            ok = (~taken) & (iou[d] >= t)
            if not ok.any():
                continue
            pool = ok & normal if (ok & normal).any() else ok
            cand = np.where(pool, iou[d], -1.0)
            g = n_g - 1 - int(np.argmax(cand[::-1]))  # last index of the maximum
            taken[g] = True
            if ignore[g]:
                ign[ti, d] = True
            else:
                tp[ti, d] = True
    return tp, ign


def _average_precision(tp: np.ndarray, ignored: np.ndarray, n_gt: int) -> np.ndarray:
    """101-point interpolated AP per threshold from score-sorted ``(T, D)`` TP / ignore flags."""
    ap = np.zeros(tp.shape[0])
    for ti in range(tp.shape[0]):
        keep = ~ignored[ti]
        hits = tp[ti][keep]
        if not hits.size:
            continue
        tp_sum = np.cumsum(hits, dtype=float)
        fp_sum = np.cumsum(~hits, dtype=float)
        recall = tp_sum / n_gt
        precision = tp_sum / (tp_sum + fp_sum)
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        idx = np.searchsorted(recall, RECALL_POINTS, side="left")
        reached = idx < len(precision)
        ap[ti] = precision[idx[reached]].sum() / len(RECALL_POINTS)
    return ap
