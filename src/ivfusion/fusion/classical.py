"""Classical multi-scale baseline: Laplacian pyramid fusion (Burt & Adelson, 1983) of thermal and visible.

Only the luminance is fused: the visible image goes to YCrCb, its Y is fused with thermal and its Cr/Cb are
kept, because the detector was trained on natural colour and thermal has no colour to contribute.

Fusion rule. Detail (Laplacian) levels take, per pixel, the source with the larger absolute coefficient
(edges and texture from whichever camera sees them), softened by a 3x3 box filter over the choice mask so
that neighbouring pixels do not flip between sources and ring. The coarsest Gaussian level, which carries
brightness, is a weighted average whose thermal weight comes from the preference and is raised where thermal
is salient (far from its local mean: people, engines), so warm targets keep their contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ivfusion.errors import ConfigError
from ivfusion.fusion.base import check_fusion_inputs
from ivfusion.fusion.preference import Preference


@dataclass(frozen=True)
class PresetParams:
    """Per-preset knobs: thermal base weight, how far saliency pushes it towards 1, CLAHE on visible Y."""

    thermal_weight: float
    saliency_gain: float
    clahe: bool = False


PRESET_PARAMS: dict[str, PresetParams] = {
    "detection": PresetParams(thermal_weight=0.7, saliency_gain=1.0),
    "visual": PresetParams(thermal_weight=0.25, saliency_gain=0.2),
    "balanced": PresetParams(thermal_weight=0.5, saliency_gain=0.5),
    "low_light": PresetParams(thermal_weight=0.7, saliency_gain=0.6),
    "fog": PresetParams(thermal_weight=0.65, saliency_gain=0.5, clahe=True),
}


def pyramid_levels(height: int, width: int, requested: int) -> int:
    """Levels that fit: each pyrDown halves (rounding up), so stop once the short side would reach 1 pixel."""
    return max(1, min(requested, int(np.log2(max(1, min(height, width)))) + 1))


class LaplacianPyramidFusion:
    """Laplacian pyramid fusion on luminance; see the module docstring for the rule and why."""

    name = "classical"

    def __init__(self, levels: int = 4, saliency_floor: float = 32.0) -> None:
        if int(levels) < 1:
            raise ConfigError(f"classical fusion levels must be >= 1, got {levels}")
        if not saliency_floor > 0:
            raise ConfigError(f"classical fusion saliency_floor must be > 0, got {saliency_floor}")
        self.levels = int(levels)
        # Saliency is normalised by max(peak, floor) so a flat, noisy thermal frame is not stretched into
        # fake saliency; 32 grey levels is about the contrast of a person against a cool background.
        self.saliency_floor = float(saliency_floor)
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))

    _check = staticmethod(check_fusion_inputs)

    def _fuse_base(self, base: np.ndarray, p: PresetParams) -> np.ndarray:
        tb, vb = base[..., 0], base[..., 1]
        weight: float | np.ndarray = p.thermal_weight
        if p.saliency_gain > 0:
            k = max(3, (min(tb.shape) // 4) | 1)  # local mean over about a quarter of the (coarse) frame
            sal = np.abs(tb - cv2.blur(tb, (k, k), borderType=cv2.BORDER_REPLICATE))
            sal *= p.saliency_gain / max(float(sal.max()), self.saliency_floor)
            weight = np.minimum(p.thermal_weight + (1.0 - p.thermal_weight) * sal, 1.0)
        return vb + weight * (tb - vb)

    def fuse(self, thermal: np.ndarray, visible: np.ndarray, preference: Preference) -> np.ndarray:
        thermal = self._check(thermal, visible)
        params = PRESET_PARAMS[preference.nearest_preset()]
        ycrcb = cv2.cvtColor(visible, cv2.COLOR_BGR2YCrCb)
        y = ycrcb[..., 0]
        if params.clahe:
            y = self._clahe.apply(np.ascontiguousarray(y))
        h, w = thermal.shape
        # Both sources in one 2-channel image: every pyrDown/pyrUp call then serves both at once.
        stack = np.empty((h, w, 2), np.float32)
        stack[..., 0], stack[..., 1] = thermal, y
        gauss = [stack]
        for _ in range(pyramid_levels(h, w, self.levels) - 1):
            gauss.append(cv2.pyrDown(gauss[-1]))
        fused = self._fuse_base(gauss[-1], params)
        for fine, coarse in zip(reversed(gauss[:-1]), reversed(gauss[1:])):
            size = (fine.shape[1], fine.shape[0])
            lap = fine - cv2.pyrUp(coarse, dstsize=size)
            lt, lv = lap[..., 0], lap[..., 1]
            pick = cv2.blur((np.abs(lt) > np.abs(lv)).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
            fused = cv2.pyrUp(fused, dstsize=size) + (lv + pick * (lt - lv))
        fused += 0.5  # round on the truncating store below
        np.clip(fused, 0.0, 255.0, out=fused)
        ycrcb[..., 0] = fused
        return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
