"""How close is the differentiable PyTorch copy of the shared detector to the OpenVINO INT8 original?

Scores both on MSRS (visible-only, infrared-only frames; fused and union label sets) with the evaluator's
mAP settings, and prints the max class-score difference per frame over all of them -- for the float copy and for the copy
with the IR's activation quantisation (``quantize_activations=True``, what ``loss.detector.quantize_activations``
trains against). Training uses a copy, evaluation the original.

    .venv/bin/python bench/torch_detector_parity.py
"""

from __future__ import annotations

import numpy as np
from ultralytics import YOLO

from ivfusion.detection import Detector
from ivfusion.detection.torch_yolo import load_torch_yolo, parity
from ivfusion.evaluation.datasets import open_dataset
from ivfusion.evaluation.runner import EVAL_CLASSES, MAP_DETECTOR
from ivfusion.metrics.detection import DATASET_TO_COCO, evaluate_detections, map_predictions
from ivfusion.paths import default_detector_weights


class _TorchDetector(Detector):
    """The node's Detector front door, with the PyTorch copy behind Ultralytics' predictor."""

    def __init__(self, model) -> None:  # noqa: D107 -- skips Detector.__init__'s file loading on purpose
        self.config = MAP_DETECTOR
        self._model = YOLO("yolov8n.yaml", task="detect")
        self._model.model = model
        self.names = dict(model.names)  # from the IR's metadata.yaml (load_torch_yolo)
        self._class_ids = None


def main() -> None:
    weights = default_detector_weights()
    copies = {"torch-copy": load_torch_yolo(weights),
              "torch-copy-int8": load_torch_yolo(weights, quantize_activations=True)}
    ds = open_dataset("msrs", split="all")
    detectors = {"openvino-int8": Detector(MAP_DETECTOR), **{k: _TorchDetector(m) for k, m in copies.items()}}
    samples = {stem: ds.folder.load(stem) for stem in ds.stems}
    gts = {labels: {stem: ds.folder.labels(stem, labels) or [] for stem in ds.stems} for labels in ("fused", "union")}
    for name, model in copies.items():
        diffs = parity(model, weights, [samples[s].rgb for s in ds.stems])
        print(f"{name}: max |class score| difference per frame over {len(diffs)} frames: median "
              f"{np.median(diffs):.3f}, mean {np.mean(diffs):.3f}, max {max(diffs):.3f}")
    for band in ("vi", "ir"):
        for name, det in detectors.items():
            preds = {}
            for stem, s in samples.items():
                img = s.bgr if band == "vi" else np.repeat(s.thermal[..., None], 3, axis=2)
                preds[stem] = map_predictions(det.detect(img), DATASET_TO_COCO)
            for labels, gt in gts.items():
                r = evaluate_detections(preds, gt, EVAL_CLASSES)
                print(f"{band:>2} {name:<14} labels={labels:<5} mAP@0.5 {r.map50:.3f}  mAP@0.5:0.95 {r.map50_95:.3f}")


if __name__ == "__main__":
    main()
