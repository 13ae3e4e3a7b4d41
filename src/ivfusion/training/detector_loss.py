"""The detector's own training loss on fused crops: the signal that makes the `detection` preset detector-aware.

Why this and not a better intensity target: an L1 fit to a detector-friendly target got within 5 grey levels
of it and still did not carry the target's mAP over (docs/student.md, stage 4). What the detector needs is
decided by the detector, so the loss is the detector's: YOLOv8's box + class + DFL loss (Ultralytics'
``v8DetectionLoss``, task-aligned assignment) of a frozen, differentiable copy of the shared detector
(:mod:`ivfusion.detection.torch_yolo`) looking at the fused crop, against pseudo-labels = what the same
detector finds on either band alone (:func:`ivfusion.training.data.merge_pseudo_labels`). Its gradient flows
into the student only. No dataset labels are used, so MSRS's labels stay a clean test of the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from ivfusion.errors import ConfigError


@dataclass(frozen=True)
class DetectorLossConfig:
    weight: float = 0.0  # 0 disables the detector-aware pass
    preset: str = "detection"  # the preference whose output the detector judges
    target_score: float = 0.3  # pseudo-labels below this detector confidence are not targets
    fusion: float = 1.0  # weight of that preset's fusion losses on the same pass (keeps it a fusion)
    anchor: float = 0.0  # L1 of the *other* presets' outputs to the starting model's (they keep their look)
    mixed_fusion: float = 1.0  # weight of the usual all-presets fusion pass; 0 leaves the others to the anchor
    weights: str = ""  # OpenVINO IR of the detector; "" = the shared YOLOv8n
    box: float = 7.5  # Ultralytics' default gains
    cls: float = 0.5
    dfl: float = 1.5
    class_weights: dict[str, float] = field(default_factory=dict)  # e.g. {bicycle: 4}: rare pseudo-label classes
    quantize_activations: bool = False  # judge with the IR's INT8 activation grid (closer to the evaluated detector)

    def __post_init__(self) -> None:
        if min(self.weight, self.fusion, self.anchor, self.mixed_fusion) < 0:
            raise ConfigError(f"loss.detector: weight, fusion, anchor and mixed_fusion must be >= 0, got "
                              f"{self.weight}, {self.fusion}, {self.anchor}, {self.mixed_fusion}")
        if self.mixed_fusion == 0 and self.anchor == 0:
            raise ConfigError("loss.detector.mixed_fusion 0 needs an anchor > 0: nothing would hold the other presets")
        if not 0.0 < self.target_score < 1.0:
            raise ConfigError(f"loss.detector.target_score must be in (0, 1), got {self.target_score}")
        if any(float(w) <= 0 for w in self.class_weights.values()):
            raise ConfigError(f"loss.detector.class_weights must be > 0, got {self.class_weights}")


class DetectorLoss:
    """``loss(rgb (B,3,H,W) in [0,1], targets (B, N, 5) [class, cx, cy, w, h], class -1 = padding)``."""

    def __init__(self, config: DetectorLossConfig, device: torch.device | str = "cpu") -> None:
        from ultralytics.utils.loss import v8DetectionLoss

        from ivfusion.detection.torch_yolo import load_torch_yolo
        from ivfusion.paths import default_detector_weights

        self.config = config
        # on the training device before the criterion is built: v8DetectionLoss takes its device from the model
        self.model = load_torch_yolo(Path(config.weights) if config.weights else default_detector_weights(),
                                     quantize_activations=config.quantize_activations).to(device)
        self.model.args = SimpleNamespace(box=config.box, cls=config.cls, dfl=config.dfl)
        if config.class_weights:  # Ultralytics scales each class's BCE column by model.class_weights
            self.model.class_weights = class_weight_vector(config.class_weights, self.model.names).to(device)
        self.criterion = v8DetectionLoss(self.model)

    def __call__(self, rgb: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if rgb.shape[-1] % 32 or rgb.shape[-2] % 32:
            raise ConfigError(f"detector-aware loss needs crops that are multiples of 32, got {tuple(rgb.shape[-2:])}")
        valid = targets[..., 0] >= 0
        batch_idx = torch.nonzero(valid)[:, 0].to(rgb.dtype)
        rows = targets[valid]
        batch = {"batch_idx": batch_idx, "cls": rows[:, :1], "bboxes": rows[:, 1:]}
        loss, items = self.criterion(self.model(rgb), batch)
        b = rgb.shape[0]
        return loss.sum() / b, {f"det_{k.split('_')[0]}": v.detach() for k, v in items.items()}


def class_weight_vector(weights: dict[str, float], names: dict[int, str]) -> torch.Tensor:
    """Per-class BCE weights for the detector's classes (1 where not named). Why: pseudo-labels are 45 % person,
    49 % car and 2 % bicycle, so an unweighted loss lets the rare class pay for the common ones (docs/student.md)."""
    index = {n: i for i, n in names.items()}
    unknown = sorted(set(weights) - set(index))
    if unknown:
        raise ConfigError(f"loss.detector.class_weights: unknown classes {unknown}; the detector has e.g. "
                          f"{', '.join(list(index)[:6])}")
    vector = torch.ones(len(names))
    for name, w in weights.items():
        vector[index[name]] = float(w)
    return vector
