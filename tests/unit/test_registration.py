"""Thermal -> RGB registration: default full-frame mapping, homographies, rescaling, calibration files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.errors import CalibrationError
from ivfusion.registration.homography import Registration

TRANSLATION = [1.0, 0.0, 10.0, 0.0, 1.0, 5.0, 0.0, 0.0, 1.0]


def _dot(h: int, w: int, x: int, y: int, dtype: type = np.uint8) -> np.ndarray:
    img = np.zeros((h, w), dtype)
    img[y, x] = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    return img


def _peak(img: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(img)), img.shape)
    return int(x), int(y)


def test_default_same_size_returns_the_input() -> None:
    thermal = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    for reg in (Registration(), Registration.from_params([]), Registration.from_params(None, [], [])):
        out = reg.warp(thermal, (48, 64, 3))
        assert out is thermal
        np.testing.assert_array_equal(reg.matrix(thermal.shape, (48, 64)), np.eye(3))


def test_explicit_identity_same_size_keeps_pixels() -> None:
    thermal = np.random.default_rng(1).integers(0, 65535, (30, 40), dtype=np.uint16)
    out = Registration.from_params(np.eye(3).ravel().tolist()).warp(thermal, (30, 40))
    np.testing.assert_array_equal(out, thermal)


@pytest.mark.parametrize(("tsize", "rsize"), [((64, 80), (128, 160)), ((512, 640), (480, 640)), ((37, 51), (20, 30))])
def test_default_different_sizes_is_a_full_frame_resize(tsize: tuple[int, int], rsize: tuple[int, int]) -> None:
    thermal = np.random.default_rng(2).integers(0, 256, tsize, dtype=np.uint8)
    out = Registration().warp(thermal, rsize)
    assert out.shape == rsize and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(thermal, rsize[::-1], interpolation=cv2.INTER_LINEAR))


def test_full_frame_matrix_agrees_with_warp_perspective() -> None:
    # The fast path must give what the general path would: compare on a smooth image (fixed-point
    # interpolation in warpPerspective differs from resize by at most a grey level or so).
    yy, xx = np.mgrid[0:60, 0:80]
    thermal = (100 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.uint8)
    reg = Registration()
    m = reg.matrix(thermal.shape, (120, 160))
    slow = cv2.warpPerspective(thermal, m, (160, 120), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fast = reg.warp(thermal, (120, 160))
    assert np.abs(slow.astype(int) - fast).max() <= 2


def test_translation_moves_a_bright_dot() -> None:
    thermal = _dot(100, 120, x=20, y=30)
    out = Registration.from_params(TRANSLATION).warp(thermal, (100, 120))
    assert _peak(out) == (30, 35)
    assert out[35, 30] == 255
    assert out[:5, :].max() == 0 and out[:, :10].max() == 0  # uncovered border is black


def test_translation_into_a_different_rgb_size() -> None:
    thermal = _dot(100, 120, x=20, y=30, dtype=np.uint16)
    out = Registration.from_params(TRANSLATION).warp(thermal, (200, 300, 3))
    assert out.shape == (200, 300) and out.dtype == np.uint16
    assert _peak(out) == (30, 35)


def test_homography_is_rescaled_from_calibration_sizes() -> None:
    # Translation by (10, 6) pixels calibrated at 160x120 becomes (20, 12) at 320x240.
    reg = Registration.from_params([1, 0, 10, 0, 1, 6, 0, 0, 1], thermal_size=[160, 120], rgb_size=[160, 120])
    np.testing.assert_allclose(reg.matrix((240, 320), (240, 320)), [[1, 0, 20], [0, 1, 12], [0, 0, 1]], atol=1e-9)
    out = reg.warp(_dot(240, 320, x=50, y=40), (240, 320))
    assert _peak(out) == (70, 52)
    # At the calibration sizes nothing is rescaled.
    assert _peak(reg.warp(_dot(120, 160, x=50, y=40), (120, 160))) == (60, 46)


def test_rescaling_matches_point_mapping_through_calibration_frames() -> None:
    h_cal = np.array([[1.05, 0.02, 7.0], [-0.01, 0.98, -3.0], [1e-5, -2e-5, 1.0]])
    reg = Registration(h_cal, thermal_size=(160, 128), rgb_size=(320, 240))
    thermal_live, rgb_live = (256, 320), (480, 640)  # (h, w): thermal x2, rgb x2
    pts = np.array([[0.0, 0.0], [319.0, 255.0], [100.5, 40.25], [7.0, 200.0]])
    # Independent computation with the pixel-centre convention: live thermal -> calibration thermal ->
    # H -> calibration rgb -> live rgb.
    st = (320 / 160, 256 / 128)
    sr = (640 / 320, 480 / 240)
    cal = np.stack([(pts[:, 0] + 0.5) / st[0] - 0.5, (pts[:, 1] + 0.5) / st[1] - 0.5, np.ones(len(pts))])
    mapped = h_cal @ cal
    mapped = mapped[:2] / mapped[2]
    expected = np.stack([(mapped[0] + 0.5) * sr[0] - 0.5, (mapped[1] + 0.5) * sr[1] - 0.5], axis=1)
    got = cv2.perspectiveTransform(pts[None], reg.matrix(thermal_live, rgb_live))[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_matrix_is_cached_per_shape_pair() -> None:
    reg = Registration.from_params(TRANSLATION)
    m1 = reg.matrix((100, 120), (100, 120))
    assert reg.matrix((100, 120, 1), (100, 120, 3)) is m1
    assert reg.matrix((50, 60), (100, 120)) is not m1
    assert not m1.flags.writeable


def test_homography_is_normalised() -> None:
    reg = Registration.from_params([2 * v for v in TRANSLATION])
    np.testing.assert_allclose(reg.homography, np.array(TRANSLATION).reshape(3, 3))


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ([1, 2, 3, 2, 4, 6, 0, 0, 1], "singular"),
        ([0] * 9, "singular"),
        ([1, 0, 0, 0, 1, 0, 0, 0], "9 values"),
        ([1, 0, 0, 0, 1, 0, 0, 0, float("nan")], "NaN"),
        (["a"] * 9, "numbers"),
    ],
)
def test_bad_homography_params(values: list, fragment: str) -> None:
    with pytest.raises(CalibrationError, match=fragment):
        Registration.from_params(values)


@pytest.mark.parametrize("size", [[640], [0, 480], [640, -1], "abc"])
def test_bad_size_params(size: object) -> None:
    with pytest.raises(CalibrationError, match="thermal_size"):
        Registration.from_params(TRANSLATION, thermal_size=size)  # type: ignore[arg-type]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calib.yaml"
    path.write_text(text)
    return path


def test_yaml_flat_and_nested_give_the_same_registration(tmp_path: Path) -> None:
    flat = Registration.from_yaml(_write(tmp_path, "homography: [1, 0, 10, 0, 1, 5, 0, 0, 1]\n"))
    nested_path = tmp_path / "nested.yaml"
    nested_path.write_text(
        "homography:\n  - [1, 0, 10]\n  - [0, 1, 5]\n  - [0, 0, 1]\nthermal_size: [120, 100]\nrgb_size: [120, 100]\n"
    )
    nested = Registration.from_yaml(str(nested_path))
    np.testing.assert_allclose(flat.homography, nested.homography)
    assert nested.thermal_size == (120, 100) and nested.rgb_size == (120, 100)
    assert flat.thermal_size is None
    assert _peak(nested.warp(_dot(100, 120, x=20, y=30), (100, 120))) == (30, 35)


def test_yaml_sizes_drive_rescaling(tmp_path: Path) -> None:
    reg = Registration.from_yaml(_write(tmp_path, (
        "homography: [1, 0, 10, 0, 1, 6, 0, 0, 1]\nthermal_size: [160, 120]\nrgb_size: [160, 120]\n")))
    assert _peak(reg.warp(_dot(240, 320, x=50, y=40), (240, 320))) == (70, 52)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("thermal_size: [1, 2]\n", ["'homography'"]),
        ("- 1\n- 2\n", ["'homography'"]),
        ("homography: [1, 0, 0, 0, 1, 0]\n", ["'homography'", "shape (6,)"]),
        ("homography: [[1, 0], [0, 1]]\n", ["'homography'", "shape (2, 2)"]),
        ("homography: [1, 2, 3, 2, 4, 6, 0, 0, 1]\n", ["singular"]),
        ("homography: [1, x, 0, 0, 1, 0, 0, 0, 1]\n", ["'homography'", "numbers"]),
        ("homography: [1, 0, 0, 0, 1, 0, 0, 0, 1]\nrgb_size: [640]\n", ["'rgb_size'"]),
        ("homography: [1, 0\n", ["cannot be read"]),
    ],
)
def test_yaml_errors_name_path_and_key(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CalibrationError) as info:
        Registration.from_yaml(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_yaml_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "calib.yaml"
    with pytest.raises(CalibrationError, match="does not exist") as info:
        Registration.from_yaml(path)
    assert str(path) in str(info.value)
