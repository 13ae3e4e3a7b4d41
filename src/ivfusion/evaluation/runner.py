"""Run methods over a dataset: fusion metrics per image, detections per image, mAP per label set.

One evaluator for every method (ours, classical baselines, peers' precomputed outputs, single sources), so
the tables compare like with like. Detection is scored the way the labels were made: infrared-only against
the infrared labels, visible-only against the visible labels, fused frames against the fused labels; and
everything (sources too) against the fused labels and against the union of infrared and visible labels (people
seen in either band), so that a fused frame and a single band are also compared on one ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ivfusion.detection import Detection, Detector, DetectorConfig
from ivfusion.evaluation.datasets import EvalDataset
from ivfusion.evaluation.methods import FusionMethod
from ivfusion.errors import IvfusionError

#: Detector settings for mAP: a low confidence threshold so the whole precision-recall curve is scored
#: (as Ultralytics' own validation does), NMS IoU 0.6.
MAP_DETECTOR = DetectorConfig(conf=0.001, iou=0.6)
EVAL_CLASSES = ("person", "bicycle", "car")
GRID_SIZE = 4  # pairs kept for the report's image grids


@dataclass
class MethodResult:
    name: str
    kind: str
    metrics: dict[str, list[float]] = field(default_factory=dict)  # metric -> per-image values
    stems: list[str] = field(default_factory=list)
    detections: dict[str, list[Detection]] = field(default_factory=dict)
    detection_scores: dict[str, object] = field(default_factory=dict)  # label set -> DetectionScores
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # stem -> fused BGR (grid pairs only)
    missing: list[str] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        values = self.metrics.get(metric, [])
        return float(np.mean(values)) if values else float("nan")


@dataclass
class EvalResult:
    dataset: str
    split: str
    n_pairs: int
    metric_names: tuple[str, ...]
    methods: list[MethodResult]
    label_sets: tuple[str, ...]
    reference_check: dict[str, float] | None = None  # method -> max relative deviation vs the reference
    grid_inputs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # stem -> (IR, VIS BGR)


def label_set_for(method: FusionMethod) -> str:
    if method.kind == "source":
        return "ir" if method.source == "infrared" else "vi"
    return "fused"


def evaluate(
    dataset: EvalDataset,
    methods: Sequence[FusionMethod],
    *,
    metrics: bool = True,
    detection: bool = True,
    detector_config: DetectorConfig = MAP_DETECTOR,
    verify_reference: bool = False,
    progress: bool = True,
) -> EvalResult:
    from ivfusion.metrics.fusion import METRICS, fusion_metrics

    folder = dataset.folder
    label_sets = tuple(s for s in ("ir", "vi", "fused", "union") if detection and folder.has_labels(s))
    detector = Detector(detector_config) if label_sets else None
    reference = _reference_metrics() if verify_reference and metrics else None
    results = [MethodResult(m.name, m.kind) for m in methods]
    deviations: dict[str, float] = {m.name: 0.0 for m in methods}
    grid_stems = set(dataset.stems[:GRID_SIZE])
    grid_inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    for stem in tqdm(dataset.stems, desc=f"{dataset.name}: {len(methods)} methods", unit="pair", disable=not progress):
        sample = folder.load(stem)
        visible = sample.bgr
        if stem in grid_stems:
            grid_inputs[stem] = (sample.thermal, visible)
        for method, res in zip(methods, results):
            try:
                fused = method.fuse(sample)
            except IvfusionError:
                res.missing.append(stem)
                continue
            res.stems.append(stem)
            if metrics:
                values = fusion_metrics(sample.thermal, visible, fused)
                for k, v in values.items():
                    res.metrics.setdefault(k, []).append(v)
                if reference is not None:
                    ref = reference(sample.thermal, visible, fused)
                    dev = max(abs(values[k] - ref[k]) / max(abs(ref[k]), 1e-12) for k in values)
                    deviations[method.name] = max(deviations[method.name], dev)
            if detector is not None:
                res.detections[stem] = detector.detect(fused)
            if stem in grid_stems:
                res.examples[stem] = fused

    for method, res in zip(methods, results):
        for label_set in label_sets:
            # every method is also scored on the fused frames' labels and on the union: one common ground truth
            if label_set in ("union", "fused", label_set_for(method)):
                res.detection_scores[label_set] = _score(folder, res, label_set)
    return EvalResult(dataset.name, dataset.split, len(dataset.stems), tuple(METRICS) if metrics else (),
                      results, label_sets, deviations if reference is not None else None, grid_inputs)


def _score(folder, res: MethodResult, label_set: str):
    from ivfusion.metrics.detection import DATASET_TO_COCO, evaluate_detections, map_predictions

    ground_truth = {stem: folder.labels(stem, label_set) or [] for stem in res.stems}
    predictions = {stem: map_predictions(res.detections.get(stem, []), DATASET_TO_COCO) for stem in res.stems}
    return evaluate_detections(predictions, ground_truth, EVAL_CLASSES)


def _reference_metrics():
    """The independent implementation that the tests also use; present in a source checkout."""
    try:
        from ivfusion.metrics.reference import reference_metrics
    except ImportError as exc:
        raise IvfusionError("--verify needs ivfusion.metrics.reference (the independent implementation)") from exc
    return reference_metrics
