"""Object detection on the fused frame (ROS-free)."""

from ivfusion.detection.yolo import Detection, Detector, DetectorConfig, resolve_weights

__all__ = ["Detection", "Detector", "DetectorConfig", "resolve_weights"]
