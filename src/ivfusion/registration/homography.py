"""Warp the thermal image into the RGB camera's pixel frame with a planar homography.

The two cameras sit side by side, so for a scene far away compared with the baseline a single 3x3 homography
(thermal pixel -> RGB pixel) aligns them well enough for fusion; it is calibrated once, at one pair of image
sizes. Drivers are often reconfigured to other resolutions afterwards, so the matrix is rescaled to the live
sizes instead of being recalibrated:  H_live = S_rgb · H · S_thermal⁻¹.

Scalings use the pixel-centre convention (x' = (x + 0.5)·s − 0.5), the one cv2.resize uses, so that the
full-frame case can take the cv2.resize fast path and give the same pixels as warpPerspective would.

Without a calibrated homography the thermal image is stretched over the whole RGB frame (a pure scaling,
the identity when the sizes match). That is the one guess that needs no calibration and is right for
co-boresighted cameras with matched fields of view; the simulator renders its pairs that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

from ivfusion.errors import CalibrationError

Size = tuple[int, int]  # (width, height), as in calibration files and ROS camera info
_TOL = 1e-9


def _parse_size(value: object, key: str) -> Size | None:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return None  # an empty list is how a ROS parameter says "unset"
    try:
        w, h = (int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise CalibrationError(f"{key} must be [width, height], got {value!r}") from None
    if w <= 0 or h <= 0:
        raise CalibrationError(f"{key} must be positive, got [{w}, {h}]")
    return (w, h)


def _scaling(sx: float, sy: float) -> np.ndarray:
    """Pixel-centre scaling, the map cv2.resize applies."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


class Registration:
    """A thermal->RGB homography plus the image sizes it was calibrated at; warps thermal onto RGB."""

    def __init__(self, homography: np.ndarray | Sequence[float] | None = None, thermal_size: Size | None = None,
                 rgb_size: Size | None = None) -> None:
        self.homography = None if homography is None else self._validate(homography)
        self.thermal_size = thermal_size
        self.rgb_size = rgb_size
        self._cache: dict[tuple[Size, Size], tuple[np.ndarray, bool]] = {}

    @staticmethod
    def _validate(values: object) -> np.ndarray:
        try:
            h = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise CalibrationError(f"homography must be numbers, got {values!r}") from None
        if h.size != 9:
            raise CalibrationError(f"homography must have 9 values (3x3), got {h.size} with shape {h.shape}")
        h = h.reshape(3, 3)
        if not np.isfinite(h).all():
            raise CalibrationError("homography contains NaN/inf")
        # Relative test: a determinant alone depends on the units of the matrix.
        if abs(np.linalg.det(h)) <= 1e-12 * max(np.abs(h).max(), 1e-300) ** 3:
            raise CalibrationError(f"homography is singular (det={np.linalg.det(h):.3g}): {h.tolist()}")
        return h / h[2, 2] if abs(h[2, 2]) > _TOL else h

    @classmethod
    def from_params(cls, homography: Sequence[float] | None = (), thermal_size: Sequence[int] | None = None,
                    rgb_size: Sequence[int] | None = None) -> Registration:
        """From flat node parameters: 9 row-major values, or none for the full-frame default."""
        values = homography if homography is not None and len(homography) else None
        return cls(values, _parse_size(thermal_size, "thermal_size"), _parse_size(rgb_size, "rgb_size"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Registration:
        """From a calibration file with ``homography`` (9 numbers or 3x3) and optional ``thermal_size``/``rgb_size``."""
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise CalibrationError(f"calibration file {path} does not exist") from None
        except (OSError, yaml.YAMLError) as exc:
            raise CalibrationError(f"calibration file {path} cannot be read: {exc}") from exc
        if not isinstance(doc, dict) or "homography" not in doc:
            raise CalibrationError(f"calibration file {path} has no 'homography' key")
        try:
            values = np.asarray(doc["homography"], dtype=np.float64)
        except (TypeError, ValueError):
            raise CalibrationError(f"calibration file {path}: 'homography' is not a list of numbers") from None
        try:
            if values.shape not in ((9,), (3, 3)):
                raise CalibrationError(f"'homography' must be 9 numbers or 3x3, got shape {values.shape}")
            return cls(values, _parse_size(doc.get("thermal_size"), "'thermal_size'"),
                       _parse_size(doc.get("rgb_size"), "'rgb_size'"))
        except CalibrationError as exc:
            raise CalibrationError(f"calibration file {path}: {exc}") from None

    def _entry(self, thermal_shape: tuple[int, ...], rgb_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
        key = ((int(thermal_shape[1]), int(thermal_shape[0])), (int(rgb_shape[1]), int(rgb_shape[0])))
        entry = self._cache.get(key)
        if entry is None:
            (tw, th), (rw, rh) = key
            full_frame = _scaling(rw / tw, rh / th)
            if self.homography is None:
                m = full_frame
            else:
                cal_t, cal_r = self.thermal_size or (tw, th), self.rgb_size or (rw, rh)
                s_t = _scaling(tw / cal_t[0], th / cal_t[1])
                s_r = _scaling(rw / cal_r[0], rh / cal_r[1])
                m = s_r @ self.homography @ np.linalg.inv(s_t)
                m /= m[2, 2]
            m.flags.writeable = False
            entry = self._cache[key] = (m, bool(np.allclose(m, full_frame, atol=_TOL, rtol=0.0)))
        return entry

    def matrix(self, thermal_shape: tuple[int, ...], rgb_shape: tuple[int, ...]) -> np.ndarray:
        """The thermal->RGB matrix for these live (H, W[, C]) shapes, cached per shape pair (read-only)."""
        return self._entry(thermal_shape, rgb_shape)[0]

    def warp(self, thermal: np.ndarray, rgb_shape: tuple[int, ...]) -> np.ndarray:
        """Thermal resampled into the RGB frame: shape rgb_shape[:2] (+ thermal's channels), same dtype.

        Pixels that fall outside the thermal image are 0. When the matrix is a full-frame scaling the result
        comes from cv2.resize, or is ``thermal`` itself for the identity, because warpPerspective costs
        several times more for the same pixels.
        """
        rh, rw = int(rgb_shape[0]), int(rgb_shape[1])
        m, full_frame = self._entry(thermal.shape, (rh, rw))
        if full_frame:
            if thermal.shape[:2] == (rh, rw):
                return thermal
            return cv2.resize(thermal, (rw, rh), interpolation=cv2.INTER_LINEAR)
        return cv2.warpPerspective(thermal, m, (rw, rh), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
