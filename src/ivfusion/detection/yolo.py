"""The detector: one front door (``ultralytics.YOLO``) over .pt / .onnx / .engine / OpenVINO weights.

Ultralytics already undoes its letterbox, so boxes come back in the pixels of the image passed in (the fused
frame). This wrapper adds what a node needs around it: weights resolved and checked *before* Ultralytics
sees them (a missing ``.pt`` would otherwise trigger a download attempt), class filtering by name, a warm-up,
and errors that name the path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ivfusion.errors import ConfigError, DetectorError
from ivfusion.paths import default_detector_weights

# Files an Ultralytics checkpoint may be; directories are OpenVINO / TF SavedModel exports.
_WEIGHT_SUFFIXES = (".pt", ".onnx", ".engine", ".torchscript", ".mlpackage", ".tflite")


@dataclass(frozen=True)
class Detection:
    """An axis-aligned box in the pixels of the image that was detected on."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    class_index: int
    class_name: str

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0

    @property
    def size(self) -> tuple[float, float]:
        return self.x2 - self.x1, self.y2 - self.y1


@dataclass(frozen=True)
class DetectorConfig:
    weights: str = ""  # "" = the shared COCO YOLOv8n; "yolov8n.yaml" = an untrained model built offline
    conf: float = 0.25
    iou: float = 0.45
    classes: tuple[str, ...] = ()  # class names to keep; empty keeps all
    imgsz: int = 640
    device: str = "cpu"
    trust_pickled_weights: bool = False  # .pt checkpoints are pickles: opt in explicitly
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ConfigError(f"detector.conf must be in [0, 1], got {self.conf}")
        if not 0.0 <= self.iou <= 1.0:
            raise ConfigError(f"detector.iou must be in [0, 1], got {self.iou}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ConfigError(f"detector.imgsz must be a positive multiple of 32, got {self.imgsz}")


def resolve_weights(spec: str, *, trust_pickled: bool = False) -> str:
    """Turn the ``weights`` setting into something ``YOLO()`` can open without touching the network."""
    if not spec:
        path = default_detector_weights()
        if not path.exists():
            raise DetectorError(
                f"default detector weights not found at {path}; set detector.weights or IVFUSION_SHARED"
            )
        return str(path)
    if spec.endswith((".yaml", ".yml")) and os.path.sep not in spec and not Path(spec).exists():
        return spec  # an Ultralytics model config shipped inside the package (random init, no download)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DetectorError(f"detector weights not found: {path}")
    if path.is_file() and path.suffix not in _WEIGHT_SUFFIXES + (".yaml", ".yml"):
        raise DetectorError(f"detector weights {path}: unsupported file type {path.suffix!r}")
    if path.suffix == ".pt" and not trust_pickled:
        raise DetectorError(
            f"detector weights {path} are a pickled PyTorch checkpoint; loading one runs arbitrary code. "
            "Export it to ONNX/OpenVINO, or set detector.trust_pickled_weights if you trust the file"
        )
    return str(path)


class Detector:
    """Loads the model once, warms it up, and returns :class:`Detection` lists for BGR frames."""

    def __init__(self, config: DetectorConfig) -> None:
        from ultralytics import YOLO  # heavy import, only when a detector is really wanted

        self.config = config
        self.source = resolve_weights(config.weights, trust_pickled=config.trust_pickled_weights)
        try:
            self._model = YOLO(self.source, task="detect")
            self.names: dict[int, str] = dict(self._model.names)
        except Exception as exc:  # Ultralytics raises many types for a bad file
            raise DetectorError(f"cannot load detector weights {self.source}: {exc}") from exc
        self._class_ids = self._resolve_classes(config.classes)
        try:
            self.detect(np.zeros((config.imgsz, config.imgsz, 3), np.uint8))
        except Exception as exc:
            raise DetectorError(f"detector {self.source} failed its warm-up inference: {exc}") from exc

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        result = self._model.predict(
            bgr,
            conf=self.config.conf,
            iou=self.config.iou,
            classes=self._class_ids,
            imgsz=self.config.imgsz,
            device=self.config.device,
            verbose=False,
            **self.config.extra,
        )[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy().astype(float)
        scores = boxes.conf.cpu().numpy().astype(float)
        classes = boxes.cls.cpu().numpy().astype(int)
        return [
            Detection(*map(float, xyxy[i]), float(scores[i]), int(classes[i]), self.names.get(int(classes[i]), str(classes[i])))
            for i in range(len(scores))
        ]

    def _resolve_classes(self, names: tuple[str, ...]) -> list[int] | None:
        if not names:
            return None
        by_name = {v: k for k, v in self.names.items()}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ConfigError(f"detector.classes: unknown class names {unknown}; the model knows e.g. {list(by_name)[:10]}")
        return [by_name[n] for n in names]
