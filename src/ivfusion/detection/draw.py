"""Box overlays drawn with OpenCV only (Ultralytics' plotter may try to download a font)."""

from __future__ import annotations

import cv2
import numpy as np

from ivfusion.detection.yolo import Detection


def _colour(class_name: str) -> tuple[int, int, int]:
    """Stable per class *name*: detections read back from a message carry no class index."""
    hue = (sum(class_name.encode()) * 47) % 180
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(bgr: np.ndarray, detections: list[Detection]) -> np.ndarray:
    """A copy of ``bgr`` with labelled boxes; the input is left untouched."""
    out = bgr.copy()
    thickness = max(1, round(min(out.shape[:2]) / 320))
    for det in detections:
        colour = _colour(det.class_name)
        p1, p2 = (round(det.x1), round(det.y1)), (round(det.x2), round(det.y2))
        cv2.rectangle(out, p1, p2, colour, thickness, cv2.LINE_AA)
        label = f"{det.class_name} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, thickness)
        top = max(p1[1] - th - base, 0)
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw, top + th + base), colour, -1)
        cv2.putText(out, label, (p1[0], top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    return out
