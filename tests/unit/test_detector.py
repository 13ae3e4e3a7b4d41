"""The real Ultralytics detector: the shared COCO YOLOv8n when present, an offline yaml-built model otherwise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.detection import Detector, DetectorConfig, resolve_weights
from ivfusion.errors import ConfigError, DetectorError

pytestmark = pytest.mark.detector


@pytest.fixture(scope="module")
def msrs_image(shared_root: Path) -> np.ndarray:
    folder = shared_root / "datasets" / "msrs" / "vi"
    if not folder.is_dir():
        pytest.skip(f"shared MSRS data not found at {folder}")
    return cv2.imread(str(sorted(folder.iterdir())[0]))


@pytest.fixture(scope="module")
def detector(detector_weights: str) -> Detector:
    return Detector(DetectorConfig(weights=detector_weights, conf=0.25))


def test_boxes_are_in_input_pixels_for_non_square_frames(detector: Detector, msrs_image: np.ndarray) -> None:
    if detector.source.endswith(".yaml"):
        pytest.skip("untrained fallback model finds nothing to compare")
    dets = detector.detect(msrs_image)
    assert dets, "the COCO detector should find someone in the first MSRS daytime frame"
    h, w = msrs_image.shape[:2]
    for d in dets:
        assert -1 <= d.x1 < d.x2 <= w + 1 and -1 <= d.y1 < d.y2 <= h + 1
        assert 0.25 <= d.score <= 1 and d.class_name == detector.names[d.class_index]
    # Letterbox undone: the same content padded at the bottom-right keeps its boxes where they were.
    padded = cv2.copyMakeBorder(msrs_image, 0, 160, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    best = max(dets, key=lambda d: d.score)
    again = [d for d in detector.detect(padded) if d.class_name == best.class_name]
    assert again
    closest = min(again, key=lambda d: abs(d.x1 - best.x1) + abs(d.y1 - best.y1))
    assert np.allclose([closest.x1, closest.y1, closest.x2, closest.y2], [best.x1, best.y1, best.x2, best.y2], atol=12)


def test_class_filter_by_name(detector_weights: str, msrs_image: np.ndarray) -> None:
    only_cars = Detector(DetectorConfig(weights=detector_weights, conf=0.05, classes=("car",)))
    assert all(d.class_name == "car" for d in only_cars.detect(msrs_image))
    with pytest.raises(ConfigError, match="unknown class names"):
        Detector(DetectorConfig(weights=detector_weights, classes=("unicorn",)))


def test_missing_weights_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="not found: .*nope.onnx"):
        resolve_weights(str(tmp_path / "nope.onnx"))


def test_corrupt_weights_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx model")
    with pytest.raises(DetectorError, match="broken.onnx"):
        Detector(DetectorConfig(weights=str(bad)))


def test_pickled_checkpoints_need_an_explicit_opt_in(tmp_path: Path) -> None:
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(DetectorError, match="pickled"):
        resolve_weights(str(pt))
    assert resolve_weights(str(pt), trust_pickled=True) == str(pt)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="conf"):
        DetectorConfig(conf=2.0)
    with pytest.raises(ConfigError, match="imgsz"):
        DetectorConfig(imgsz=100)
