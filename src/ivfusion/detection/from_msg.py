"""Detections read back from a ``vision_msgs/Detection2DArray``, the inverse of ``ros.messages.detections_to_msg``.

Duck-typed on the 4.x field layout, so it serves rclpy messages (the demo) and rosbags-deserialised messages
(bag reports) alike without importing ROS.
"""

from __future__ import annotations

from typing import Any

from ivfusion.detection.yolo import Detection


def detections_from_msg(msg: Any) -> list[Detection]:
    """Boxes in image pixels; the class index is not carried by the message (-1), the class name is."""
    out = []
    for d in msg.detections:
        cx, cy, w, h = d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y
        hyp = d.results[0].hypothesis if d.results else None
        out.append(Detection(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, float(hyp.score) if hyp else 0.0, -1,
                             hyp.class_id if hyp else ""))
    return out
