"""Laplacian pyramid fusion: sizes, identity behaviour, preference effect, colour preservation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ivfusion.errors import ConfigError
from ivfusion.fusion.base import FusionBackend
from ivfusion.fusion.classical import PRESET_PARAMS, LaplacianPyramidFusion, pyramid_levels
from ivfusion.fusion.preference import PRESETS, parse_preference


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth shading plus fine texture: something with energy at every pyramid level."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = 128 + 50 * np.sin(xx / 23.0) * np.cos(yy / 31.0) + rng.normal(0, 12, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def _ycrcb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).astype(np.int16)


def test_is_a_fusion_backend() -> None:
    fusion = LaplacianPyramidFusion()
    assert isinstance(fusion, FusionBackend)
    assert fusion.name == "classical"
    assert set(PRESET_PARAMS) == set(PRESETS)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (31, 17), (481, 641)])
@pytest.mark.parametrize("levels", [1, 4, 12])
def test_any_size_gives_same_size_bgr(size: tuple[int, int], levels: int) -> None:
    h, w = size
    rng = np.random.default_rng(h * 1000 + w)
    thermal = rng.integers(0, 256, (h, w), dtype=np.uint8)
    visible = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    fusion = LaplacianPyramidFusion(levels=levels)
    for preset in ("detection", "fog"):
        out = fusion.fuse(thermal, visible, parse_preference(preset))
        assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_pyramid_levels_clamp() -> None:
    assert pyramid_levels(1, 1, 4) == 1
    assert pyramid_levels(3, 5, 4) == 2
    assert pyramid_levels(481, 641, 4) == 4
    assert pyramid_levels(16, 1000, 10) == 5
    assert pyramid_levels(512, 640, 1) == 1


@pytest.mark.parametrize("preset", ["detection", "visual", "balanced", "low_light"])
def test_same_gray_in_both_cameras_is_reproduced(preset: str) -> None:
    gray = _textured(120, 161)
    visible = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    out = LaplacianPyramidFusion().fuse(gray, visible, parse_preference(preset))
    assert np.abs(out.astype(int) - visible).max() <= 2


def _hot_square_scene() -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    h, w = 160, 200
    square = (slice(60, 100), slice(80, 120))
    thermal = np.full((h, w), 60, np.uint8)
    thermal[square] = 230
    visible = cv2.cvtColor(_textured(h, w, seed=3), cv2.COLOR_GRAY2BGR)
    visible[square] = 90  # the target is dull in visible, as a dark-clad pedestrian would be
    return thermal, visible, square


def test_hot_target_is_brighter_for_detection_than_for_visual() -> None:
    thermal, visible, square = _hot_square_scene()
    fusion = LaplacianPyramidFusion()
    y_det = _ycrcb(fusion.fuse(thermal, visible, parse_preference("detection")))[..., 0]
    y_vis = _ycrcb(fusion.fuse(thermal, visible, parse_preference("visual")))[..., 0]
    assert y_det[square].mean() > y_vis[square].mean() + 30
    # And the target stands out from its surroundings more with detection.
    ring = np.ones(thermal.shape, bool)
    ring[40:120, 60:140] = False
    contrast = lambda y: y[square].mean() - y[ring].mean()  # noqa: E731
    assert contrast(y_det) > contrast(y_vis) + 30


def test_free_text_pedestrians_behaves_like_detection() -> None:
    thermal, visible, _ = _hot_square_scene()
    fusion = LaplacianPyramidFusion()
    free = parse_preference("keep pedestrians bright")
    assert free.is_free_text and free.nearest_preset() == "detection"
    np.testing.assert_array_equal(
        fusion.fuse(thermal, visible, free), fusion.fuse(thermal, visible, parse_preference("detection")))
    assert not np.array_equal(
        fusion.fuse(thermal, visible, free), fusion.fuse(thermal, visible, parse_preference("visual")))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_visible_chroma_is_preserved(preset: str) -> None:
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ycrcb = np.empty((h, w, 3), np.uint8)
    ycrcb[..., 0] = 110 + 20 * np.sin(xx / 11.0)
    ycrcb[..., 1] = 128 + 18 * np.cos(yy / 13.0)  # muted colours, so no gamut clipping muddies the test
    ycrcb[..., 2] = 128 - 15 * np.sin((xx + yy) / 17.0)
    visible = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
    thermal = _textured(h, w, seed=9) // 2 + 64
    out = _ycrcb(LaplacianPyramidFusion().fuse(thermal, visible, parse_preference(preset)))
    diff = np.abs(out[..., 1:] - _ycrcb(visible)[..., 1:])
    assert np.median(diff) <= 1 and diff.mean() < 1.5
    # ...while the luminance did change: thermal was fused in.
    assert np.abs(out[..., 0] - _ycrcb(visible)[..., 0]).mean() > 5


def test_fog_equalises_low_contrast_visible() -> None:
    h, w = 128, 160
    haze = (150 + _textured(h, w, seed=4).astype(np.int16) // 10).astype(np.uint8)  # washed-out visible
    visible = cv2.cvtColor(haze, cv2.COLOR_GRAY2BGR)
    thermal = np.full((h, w), 128, np.uint8)  # flat: any extra contrast must come from the visible side
    fusion = LaplacianPyramidFusion()
    fog = _ycrcb(fusion.fuse(thermal, visible, parse_preference("fog")))[..., 0]
    low_light = _ycrcb(fusion.fuse(thermal, visible, parse_preference("low_light")))[..., 0]
    assert fog.std() > 1.5 * low_light.std()


def test_thermal_with_channel_axis_is_accepted() -> None:
    thermal, visible, _ = _hot_square_scene()
    fusion = LaplacianPyramidFusion()
    pref = parse_preference("balanced")
    np.testing.assert_array_equal(fusion.fuse(thermal[..., None], visible, pref), fusion.fuse(thermal, visible, pref))


def test_input_validation() -> None:
    fusion = LaplacianPyramidFusion()
    pref = parse_preference("balanced")
    with pytest.raises(ValueError, match="registered"):
        fusion.fuse(np.zeros((10, 12), np.uint8), np.zeros((10, 13, 3), np.uint8), pref)
    with pytest.raises(ValueError, match="thermal"):
        fusion.fuse(np.zeros((10, 12), np.uint16), np.zeros((10, 12, 3), np.uint8), pref)
    with pytest.raises(ValueError, match="visible"):
        fusion.fuse(np.zeros((10, 12), np.uint8), np.zeros((10, 12), np.uint8), pref)
    with pytest.raises(ConfigError, match="levels"):
        LaplacianPyramidFusion(levels=0)
