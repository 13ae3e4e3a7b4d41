"""Thermal AGC: range, percentile clip, temporal smoothing, degenerate frames, config checks."""

from __future__ import annotations

import numpy as np
import pytest

from ivfusion.errors import ConfigError
from ivfusion.imaging.agc import AGCConfig, ThermalAGC


def _ramp(lo: int = 0, hi: int = 65535, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Every value from lo to hi once, in a pseudo-random order so no row/column pattern helps subsampling."""
    values = np.linspace(lo, hi, shape[0] * shape[1]).round().astype(np.uint16)
    return np.random.default_rng(0).permutation(values).reshape(shape)


def test_output_is_uint8_full_range() -> None:
    raw = np.random.default_rng(1).normal(8000, 150, (512, 640)).clip(0, 65535).astype(np.uint16)
    out = ThermalAGC()(raw)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    assert out.min() == 0 and out.max() == 255
    # Percentile clip at 1/99: about 1% of pixels saturate at each end, not more.
    assert 0.005 < np.mean(out == 0) < 0.02
    assert 0.005 < np.mean(out == 255) < 0.02


def test_percentile_clip_on_a_ramp() -> None:
    raw = _ramp()
    agc = ThermalAGC(AGCConfig(low_percentile=10.0, high_percentile=90.0, smoothing=0.0))
    out = agc(raw)
    lo, hi = agc.bounds  # type: ignore[misc]
    # The subsampled estimate sits within 0.5% of the range of the exact percentiles.
    exact_lo, exact_hi = np.percentile(raw, (10.0, 90.0))
    assert abs(lo - exact_lo) < 0.005 * 65535 and abs(hi - exact_hi) < 0.005 * 65535
    expected = np.clip(np.floor((raw.astype(np.float64) - lo) * 255.0 / (hi - lo) + 0.5), 0, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1  # float32 vs float64 at .5 boundaries
    assert np.all(out[raw <= exact_lo - 200] == 0)
    assert np.all(out[raw >= exact_hi + 200] == 255)
    mid = np.abs(raw.astype(int) - 32768) < 50
    assert np.all(np.abs(out[mid].astype(int) - 128) <= 1)
    # Monotonic: a warmer pixel is never darker.
    order = np.argsort(raw, axis=None, kind="stable")
    assert np.all(np.diff(out.reshape(-1)[order].astype(int)) >= 0)


def test_temporal_smoothing_converges_after_a_range_jump() -> None:
    agc = ThermalAGC(AGCConfig(low_percentile=0.0, high_percentile=100.0, smoothing=0.8))
    cold, hot = _ramp(1000, 2000), _ramp(5000, 6000)
    agc(cold)
    assert agc.bounds == pytest.approx((1000.0, 2000.0), abs=2.0)  # the subsample may miss the extremes
    errors = []
    for _ in range(60):
        agc(hot)
        errors.append(abs(agc.bounds[0] - 5000.0) + abs(agc.bounds[1] - 6000.0))  # type: ignore[index]
    # First frame after the jump moves only (1 - 0.8) of the way, then the error shrinks geometrically.
    assert agc.bounds is not None
    assert errors[0] == pytest.approx(0.8 * 8000.0, abs=4.0)
    assert all(b < a for a, b in zip(errors[:30], errors[1:30]))
    assert errors[-1] < 5.0
    converged = agc(hot).astype(int) - ThermalAGC(AGCConfig(0.0, 100.0, smoothing=0.0))(hot)
    assert np.abs(converged).max() <= 1


def test_no_smoothing_follows_immediately_and_reset_forgets() -> None:
    agc = ThermalAGC(AGCConfig(low_percentile=0.0, high_percentile=100.0, smoothing=0.0))
    agc(_ramp(1000, 2000))
    agc(_ramp(5000, 6000))
    assert agc.bounds == pytest.approx((5000.0, 6000.0), abs=2.0)

    smooth = ThermalAGC(AGCConfig(low_percentile=0.0, high_percentile=100.0, smoothing=0.95))
    smooth(_ramp(1000, 2000))
    smooth.reset()
    assert smooth.bounds is None
    smooth(_ramp(5000, 6000))
    assert smooth.bounds == pytest.approx((5000.0, 6000.0), abs=2.0)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_flat_frame_does_not_divide_by_zero(dtype: type) -> None:
    agc = ThermalAGC()
    with np.errstate(all="raise"):
        out = agc(np.full((64, 80), 7000, dtype))
    assert out.dtype == np.uint8
    assert np.unique(out).size == 1


def test_float_kelvin_input() -> None:
    kelvin = np.linspace(270.0, 310.0, 100 * 120, dtype=np.float32).reshape(100, 120)
    out = ThermalAGC(AGCConfig(low_percentile=0.0, high_percentile=100.0, smoothing=0.0))(kelvin)
    assert out[0, 0] == 0 and out[-1, -1] == 255
    assert abs(int(out[50, 0]) - 127) <= 2


def test_uint8_passes_through_as_the_same_array() -> None:
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    view = img[::2, 1:]
    agc = ThermalAGC()
    assert agc(img) is img
    assert agc(view) is view
    assert agc.bounds is None


def test_strided_input_view() -> None:
    raw = _ramp()
    out = ThermalAGC(AGCConfig(smoothing=0.0))(raw[:, ::3])
    assert out.shape == raw[:, ::3].shape


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(low_percentile=-1.0), "low_percentile=-1.0"),
        (dict(low_percentile=50.0, high_percentile=50.0), "low_percentile < high_percentile"),
        (dict(low_percentile=60.0, high_percentile=40.0), "high_percentile=40.0"),
        (dict(high_percentile=100.5), "high_percentile=100.5"),
        (dict(smoothing=1.0), "smoothing"),
        (dict(smoothing=-0.1), "smoothing"),
        (dict(min_span=0.0), "min_span"),
    ],
)
def test_config_validation(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        AGCConfig(**kwargs)


def test_extreme_valid_config_accepted() -> None:
    AGCConfig(low_percentile=0.0, high_percentile=100.0, smoothing=0.0)
    AGCConfig(smoothing=0.999)
