"""Procedural scene: determinism, shapes, boxes, thermal plausibility."""

from __future__ import annotations

import numpy as np
import pytest

from ivfusion.errors import ConfigError
from ivfusion.sim.scene import SceneConfig, SceneGenerator


def _background_mask(shape: tuple[int, int], boxes: list, sx: float, sy: float) -> np.ndarray:
    mask = np.ones(shape, bool)
    for _, x1, y1, x2, y2 in boxes:
        mask[int(y1 * sy) : int(y2 * sy) + 1, int(x1 * sx) : int(x2 * sx) + 1] = False
    return mask


@pytest.mark.parametrize("bits", [8, 16])
def test_deterministic(bits: int) -> None:
    cfg = SceneConfig(seed=7, thermal_bits=bits, night=bits == 16)
    a, b = SceneGenerator(cfg).frame(5), SceneGenerator(cfg).frame(5)
    np.testing.assert_array_equal(a.thermal, b.thermal)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert a.boxes == b.boxes
    # Frame index and seed both matter.
    gen = SceneGenerator(cfg)
    later = gen.frame(25)
    assert later.boxes != a.boxes and not np.array_equal(later.rgb, a.rgb)
    other = SceneGenerator(SceneConfig(seed=8, thermal_bits=bits)).frame(5)
    assert other.boxes != a.boxes
    # Rendering other frames in between does not change a frame (no hidden state).
    np.testing.assert_array_equal(gen.frame(5).thermal, a.thermal)


@pytest.mark.parametrize(
    ("cfg", "thermal_dtype"),
    [
        (SceneConfig(), np.uint8),
        (SceneConfig(thermal_bits=16), np.uint16),
        (SceneConfig(width=320, height=240, thermal_width=160, thermal_height=128, thermal_bits=16), np.uint16),
        (SceneConfig(width=17, height=16, n_people=2, n_cars=1), np.uint8),
    ],
)
def test_shapes_and_dtypes(cfg: SceneConfig, thermal_dtype: type) -> None:
    pair = SceneGenerator(cfg).frame(0)
    tw, th = cfg.thermal_size
    assert pair.thermal.shape == (th, tw) and pair.thermal.dtype == thermal_dtype
    assert pair.rgb.shape == (cfg.height, cfg.width, 3) and pair.rgb.dtype == np.uint8
    assert len(pair.boxes) == cfg.n_people + cfg.n_cars
    assert {b[0] for b in pair.boxes} <= {"person", "car"}


def test_16_bit_uses_a_raw_count_range() -> None:
    pair = SceneGenerator(SceneConfig(thermal_bits=16, seed=2)).frame(3)
    assert 6800 <= pair.thermal.min() and pair.thermal.max() <= 9200
    assert pair.thermal.max() - pair.thermal.min() > 1000  # objects span a good part of it


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_stay_inside_the_image(seed: int) -> None:
    cfg = SceneConfig(seed=seed, n_people=6, n_cars=3)
    gen = SceneGenerator(cfg)
    for i in range(0, 600, 7):
        for name, x1, y1, x2, y2 in gen.frame(i).boxes:
            assert 0 <= x1 < x2 <= cfg.width and 0 <= y1 < y2 <= cfg.height, (name, i, x1, y1, x2, y2)


def test_objects_move_a_little_per_frame() -> None:
    gen = SceneGenerator(SceneConfig(seed=4))
    b0, b1 = gen.frame(10).boxes, gen.frame(11).boxes
    shifts = [abs(a[1] - b[1]) for a, b in zip(b0, b1)]
    assert max(shifts) > 0 and max(shifts) < 20


@pytest.mark.parametrize(
    "cfg",
    [SceneConfig(seed=0), SceneConfig(seed=1, thermal_bits=16, night=True),
     SceneConfig(seed=2, thermal_width=320, thermal_height=256)],
)
def test_objects_are_warmer_than_the_background(cfg: SceneConfig) -> None:
    pair = SceneGenerator(cfg).frame(12)
    tw, th = cfg.thermal_size
    sx, sy = tw / cfg.width, th / cfg.height
    thermal = pair.thermal.astype(np.float64)
    background = np.median(thermal[_background_mask(thermal.shape, pair.boxes, sx, sy)])
    span = np.percentile(thermal, 99.5) - np.percentile(thermal, 0.5)
    for name, x1, y1, x2, y2 in pair.boxes:
        inside = thermal[int(y1 * sy) : int(y2 * sy), int(x1 * sx) : int(x2 * sx)]
        assert np.percentile(inside, 95) > background + 0.2 * span, name


def test_people_are_warm_but_dark_at_night() -> None:
    day = SceneGenerator(SceneConfig(seed=5)).frame(0)
    night = SceneGenerator(SceneConfig(seed=5, night=True)).frame(0)
    assert night.rgb.mean() < 0.45 * day.rgb.mean()
    assert day.boxes == night.boxes
    # Night visible is noisier relative to its level (per-pixel difference from a smoothed copy).
    def rel_noise(img: np.ndarray) -> float:
        g = img.astype(np.float64).mean(axis=2)
        return float(np.abs(np.diff(g, axis=1)).mean() / g.mean())
    assert rel_noise(night.rgb) > 2 * rel_noise(day.rgb)


def test_sky_is_colder_than_road_in_thermal() -> None:
    cfg = SceneConfig(n_people=0, n_cars=0)
    thermal = SceneGenerator(cfg).frame(0).thermal.astype(np.float64)
    assert thermal[: cfg.height // 4].mean() < thermal[-cfg.height // 4 :].mean() - 20
    # A mild gradient, not a flat field, on the road rows.
    assert thermal[-10:].mean() - thermal[cfg.height // 2 : cfg.height // 2 + 10].mean() > 2


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [(dict(thermal_bits=12), "thermal_bits"), (dict(width=8), "width"), (dict(n_people=-1), "n_people"),
     (dict(thermal_height=4), "thermal_height")],
)
def test_config_validation(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SceneConfig(**kwargs)
