"""The project-built vision_msgs must be field-for-field upstream vision_msgs 4.x, so real consumers interoperate."""

from __future__ import annotations

import pytest

pytest.importorskip("vision_msgs.msg", reason="vision_msgs interfaces not built (make setup)")
import vision_msgs.msg as vm  # noqa: E402

UPSTREAM_4X = {
    "Point2D": {"x": "double", "y": "double"},
    "Pose2D": {"position": "vision_msgs/Point2D", "theta": "double"},
    "BoundingBox2D": {"center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"},
    "ObjectHypothesis": {"class_id": "string", "score": "double"},
    "ObjectHypothesisWithPose": {"hypothesis": "vision_msgs/ObjectHypothesis", "pose": "geometry_msgs/PoseWithCovariance"},
    "Detection2D": {"header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                    "bbox": "vision_msgs/BoundingBox2D", "id": "string"},
    "Detection2DArray": {"header": "std_msgs/Header", "detections": "sequence<vision_msgs/Detection2D>"},
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_4X))
def test_field_layout_matches_upstream(name: str) -> None:
    fields = getattr(vm, name).get_fields_and_field_types()
    assert list(fields.items()) == list(UPSTREAM_4X[name].items())


def test_detections_conversion_roundtrip() -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import Header

    from ivfusion.detection import Detection
    from ivfusion.ros.messages import detections_to_msg

    header = Header(frame_id="cam")
    msg = detections_to_msg([Detection(10, 20, 50, 100, 0.9, 0, "person")], header)
    back = deserialize_message(serialize_message(msg), vm.Detection2DArray)
    d = back.detections[0]
    assert back.header.frame_id == "cam" and d.results[0].hypothesis.class_id == "person"
    assert (d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y) == (30, 60, 40, 80)
