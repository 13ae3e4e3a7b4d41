"""Synthetic degradations of the *inputs* (the losses keep looking at the clean sources: LURE's decoupling).

Each degradation is a pure function of the image and a ``numpy.random.Generator``, so a seed reproduces a
sample exactly. :func:`degrade_pair` draws an independent subset per pair and returns the multi-label vector
(order :data:`ivfusion.models.student.DEGRADATIONS`) that trains the ``auto`` degradation head.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ivfusion.models.student import DEGRADATIONS


def _f(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def vis_low_light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma darkening and exposure cut, then signal-dependent shot + read noise (a dark, noisy frame)."""
    x = _f(rgb) ** rng.uniform(1.4, 2.6) * rng.uniform(0.12, 0.45)
    shot, read = rng.uniform(0.005, 0.03), rng.uniform(0.005, 0.03)
    x = x + rng.standard_normal(x.shape).astype(np.float32) * np.sqrt(shot * x + read**2)
    return _u8(x)


def vis_glare(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Over-exposure (gain) plus a bright radial glare blob (headlights, sun)."""
    h, w = rgb.shape[:2]
    x = _f(rgb) * rng.uniform(1.3, 2.2)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    radius = rng.uniform(0.1, 0.4) * max(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)) * rng.uniform(0.5, 1.0)
    return _u8(x + blob[..., None])


def vis_haze(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering I = J t + A (1 - t), transmission falling towards the top (far away)."""
    h = rgb.shape[0]
    t_far, t_near = rng.uniform(0.15, 0.45), rng.uniform(0.5, 0.85)
    t = np.linspace(t_far, t_near, h, dtype=np.float32)[:, None, None]
    airlight = rng.uniform(0.7, 1.0)
    return _u8(_f(rgb) * t + airlight * (1.0 - t))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def vis_blur(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _blur(rgb, rng.uniform(1.0, 3.0))


def vis_jpeg(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(8, 35))])
    if not ok:
        return rgb
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(rgb.shape)


def ir_stripe(thermal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fixed-pattern noise of uncooled microbolometers: per-column offsets and gains, weaker per-row offsets."""
    h, w = thermal.shape
    x = thermal.astype(np.float32)
    col = rng.normal(0.0, rng.uniform(3.0, 12.0), size=(1, w)).astype(np.float32)
    gain = rng.normal(1.0, rng.uniform(0.0, 0.05), size=(1, w)).astype(np.float32)
    row = rng.normal(0.0, rng.uniform(0.0, 3.0), size=(h, 1)).astype(np.float32)
    noise = rng.normal(0.0, rng.uniform(1.0, 4.0), size=(h, w)).astype(np.float32)
    return np.clip(x * gain + col + row + noise + 0.5, 0, 255).astype(np.uint8)


def ir_low_contrast(thermal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = thermal.astype(np.float32)
    mean = float(x.mean())
    return np.clip(mean + (x - mean) * rng.uniform(0.25, 0.6) + rng.uniform(-20, 20) + 0.5, 0, 255).astype(np.uint8)


def ir_blur(thermal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _blur(thermal, rng.uniform(1.0, 2.5))


VISIBLE_OPS = {"vis_low_light": vis_low_light, "vis_glare": vis_glare, "vis_haze": vis_haze, "vis_blur": vis_blur,
               "vis_jpeg": vis_jpeg}
THERMAL_OPS = {"ir_stripe": ir_stripe, "ir_low_contrast": ir_low_contrast, "ir_blur": ir_blur}
assert tuple(VISIBLE_OPS) + tuple(THERMAL_OPS) == DEGRADATIONS


@dataclass(frozen=True)
class DegradationConfig:
    """Probability that a pair is degraded at all, and of each degradation given that it is."""

    prob: float = 0.6
    per_op: float = 0.3
    max_ops: int = 2


def apply(name: str, thermal: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One named degradation (for robustness evaluation)."""
    if name in VISIBLE_OPS:
        return thermal, VISIBLE_OPS[name](rgb, rng)
    if name in THERMAL_OPS:
        return THERMAL_OPS[name](thermal, rng), rgb
    raise KeyError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")


def degrade_pair(thermal: np.ndarray, rgb: np.ndarray, rng: np.random.Generator,
                 config: DegradationConfig = DegradationConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Randomly degraded (thermal, rgb) and the float32 multi-label vector of what was applied."""
    labels = np.zeros(len(DEGRADATIONS), np.float32)
    if rng.random() >= config.prob:
        return thermal, rgb, labels
    chosen = [i for i in range(len(DEGRADATIONS)) if rng.random() < config.per_op]
    if not chosen:
        chosen = [int(rng.integers(len(DEGRADATIONS)))]
    rng.shuffle(chosen)
    chosen = sorted(chosen[: config.max_ops])  # fixed order: visible ops, then thermal
    for i in chosen:
        thermal, rgb = apply(DEGRADATIONS[i], thermal, rgb, rng)
        labels[i] = 1.0
    return thermal, rgb, labels
