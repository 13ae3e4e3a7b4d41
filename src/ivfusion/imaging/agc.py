"""Automatic gain control: 16-bit (or float) thermal to 8 bits for fusion and display.

Raw LWIR counts use a few hundred levels out of 65536 and drift with sensor temperature, so a fixed scale
gives a grey, flickering picture. A percentile clip maps the scene's own range to 0..255 while ignoring a few
hot/cold outlier pixels (dead pixels, the sun); smoothing the clip bounds over frames stops the picture from
pumping when a warm object enters or leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivfusion.errors import ConfigError

#: The percentiles are estimated on every 2nd row and column (a quarter of the pixels): on a 640x512 frame
#: this cuts the cost of the partial sort from ~3 ms to under 1 ms, and the clip bounds move by well under one
#: output grey level because a thermal scene is spatially smooth.
SUBSAMPLE = 2


@dataclass(frozen=True)
class AGCConfig:
    """Clip percentiles, EMA factor on the clip bounds (0 = none) and the smallest input span mapped to 0..255."""

    low_percentile: float = 1.0
    high_percentile: float = 99.0
    smoothing: float = 0.9
    min_span: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ConfigError(
                f"AGC percentiles must satisfy 0 <= low_percentile < high_percentile <= 100, got "
                f"low_percentile={self.low_percentile}, high_percentile={self.high_percentile}"
            )
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"AGC smoothing must be in [0, 1), got {self.smoothing}")
        if not self.min_span > 0.0:
            raise ConfigError(f"AGC min_span must be > 0, got {self.min_span}")


class ThermalAGC:
    """Stateful percentile-clip AGC; one instance per camera stream (the state is that stream's range)."""

    def __init__(self, config: AGCConfig | None = None) -> None:
        self.config = config or AGCConfig()
        self._bounds: tuple[float, float] | None = None

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The smoothed (low, high) clip bounds used for the last frame, in input units."""
        return self._bounds

    def reset(self) -> None:
        """Forget the smoothed range, e.g. after a camera restart or a flat-field correction."""
        self._bounds = None

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Map ``img`` to uint8; a uint8 image is already display range and is returned as is."""
        if img.dtype == np.uint8:
            return img
        if img.size == 0:
            raise ValueError(f"ThermalAGC got an empty image of shape {img.shape}")
        cfg = self.config
        sample = img[::SUBSAMPLE, ::SUBSAMPLE] if img.ndim >= 2 else img[::SUBSAMPLE]
        lo, hi = (float(v) for v in np.percentile(sample, (cfg.low_percentile, cfg.high_percentile)))
        if self._bounds is not None and cfg.smoothing > 0.0:
            a = cfg.smoothing
            lo = a * self._bounds[0] + (1.0 - a) * lo
            hi = a * self._bounds[1] + (1.0 - a) * hi
        self._bounds = (lo, hi)
        scale = 255.0 / max(hi - lo, cfg.min_span)
        out = np.subtract(img, lo, dtype=np.float32)
        out *= scale
        out += 0.5  # round to nearest on the truncating cast below
        np.clip(out, 0.0, 255.0, out=out)
        return out.astype(np.uint8)
