"""Evaluation metrics: image-fusion quality (``metrics.fusion``) and detection (``metrics.detection``)."""

from ivfusion.metrics.fusion import ALL_METRICS, METRICS, fusion_metrics, mutual_information_pair, to_gray

# Detection metrics: import from ivfusion.metrics.detection (any re-exports of its names go on this line).

__all__ = ["ALL_METRICS", "METRICS", "fusion_metrics", "mutual_information_pair", "to_gray"]
