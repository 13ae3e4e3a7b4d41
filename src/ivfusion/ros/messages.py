"""Conversions between ROS messages and the core's plain types. The only place that knows message layouts.

cv_bridge is not on PyPI and pulls in a C++ build; these few functions do the same for the encodings the
node accepts, without copying pixel buffers on the way in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from ivfusion.detection import Detection
from ivfusion.imaging.encodings import encode_image
from ivfusion.pipeline import RawImage


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_to_raw(msg: Image) -> RawImage:
    """Wrap the message's buffer (rclpy gives an ``array.array``) without copying it."""
    return RawImage(
        data=memoryview(msg.data) if not isinstance(msg.data, (bytes, bytearray)) else msg.data,
        width=int(msg.width),
        height=int(msg.height),
        step=int(msg.step),
        encoding=str(msg.encoding),
        is_bigendian=bool(msg.is_bigendian),
    )


def array_to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    data, step = encode_image(array, encoding)
    return Image(
        header=header, height=array.shape[0], width=array.shape[1], encoding=encoding,
        is_bigendian=False, step=step, data=data,
    )


def detections_to_msg(detections: Iterable[Detection], header: Header) -> Detection2DArray:
    """vision_msgs 4.x layout: the class *name* goes in ``class_id`` (a string since 4.0), box centre + size."""
    out = Detection2DArray(header=header)
    for i, det in enumerate(detections):
        d = Detection2D(header=header, id=str(i))
        # float() on purpose: rosidl stores a Python int in a float64 field, then serialises garbage.
        cx, cy = map(float, det.center)
        w, h = map(float, det.size)
        d.bbox = BoundingBox2D(size_x=w, size_y=h)
        d.bbox.center.position.x = cx
        d.bbox.center.position.y = cy
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = det.class_name
        hyp.hypothesis.score = float(det.score)
        hyp.pose.pose.position.x = cx
        hyp.pose.pose.position.y = cy
        d.results.append(hyp)
        out.detections.append(d)
    return out


def diagnostic_status(
    name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, object]
) -> DiagnosticStatus:
    """``level`` is one of DiagnosticStatus.OK / WARN / ERROR / STALE (bytes in rclpy)."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )


def diagnostic_array(stamp: Time, statuses: Iterable[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=Header(stamp=stamp), status=list(statuses))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
