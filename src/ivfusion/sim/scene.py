"""Procedural thermal + RGB street scene with ground-truth boxes, so demos and tests need no recorded data.

Not photorealistic, but it has what fusion and detection react to: a sky/road split with texture and
noise in visible, people and cars whose visible contrast can be weak (dark clothes, night) while they stay
warm in thermal, a mild thermal background gradient, and slow deterministic motion so trackers and
temporal AGC see change. Thermal is rendered full-frame onto the same field of view as RGB (at its own
resolution), which is what ``Registration``'s default full-frame mapping assumes.

Everything random is drawn from ``seed`` (layout, textures) or ``(seed, i)`` (noise placement), so the same
config and frame index give identical arrays on any machine. Per-frame work is only copying precomputed
backgrounds, a few cv2 drawing calls and saturating adds of precomputed noise, which keeps a 640x480 pair
around a millisecond or two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ivfusion.errors import ConfigError

Box = tuple[str, int, int, int, int]  # (class_name, x1, y1, x2, y2) in RGB pixels, inclusive-exclusive

_HORIZON = 0.42  # horizon height as a fraction of the image; objects stand below it
_NOISE_PAD = 32  # noise fields are this much larger so each frame can take a differently offset window

# Thermal levels on a 0..1 "apparent temperature" scale; mapped to 0..255 (8 bit) or raw counts (16 bit).
_T_SKY, _T_ROAD, _T_SKIN, _T_CLOTHES, _T_ENGINE, _T_WHEEL, _T_BODY, _T_GLASS = (
    0.18, 0.36, 0.86, 0.74, 0.95, 0.72, 0.45, 0.25)
_RAW_LOW, _RAW_HIGH = 7000, 9000  # realistic uncalibrated LWIR counts for a 16-bit core

_CLOTHES = ((40, 40, 45), (25, 35, 80), (120, 30, 30), (60, 70, 60), (150, 140, 120), (20, 20, 20))
_SKIN = ((230, 190, 160), (190, 140, 110), (120, 85, 60))
_PAINT = ((200, 200, 205), (30, 30, 35), (150, 20, 20), (20, 50, 120), (90, 95, 100))


@dataclass(frozen=True)
class SceneConfig:
    """Scene size (RGB and thermal), content, lighting and thermal bit depth."""

    width: int = 640
    height: int = 480
    thermal_width: int | None = None  # None: same as the RGB image
    thermal_height: int | None = None
    seed: int = 0
    n_people: int = 3
    n_cars: int = 2
    night: bool = False
    thermal_bits: int = 8

    def __post_init__(self) -> None:
        for name in ("width", "height", "thermal_width", "thermal_height"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ConfigError(f"SceneConfig.{name} must be >= 16 pixels, got {value}")
        if self.n_people < 0 or self.n_cars < 0:
            raise ConfigError(f"SceneConfig object counts must be >= 0, got n_people={self.n_people}, "
                              f"n_cars={self.n_cars}")
        if self.thermal_bits not in (8, 16):
            raise ConfigError(f"SceneConfig.thermal_bits must be 8 or 16, got {self.thermal_bits}")

    @property
    def thermal_size(self) -> tuple[int, int]:
        """(width, height) of the thermal image."""
        return (self.thermal_width or self.width, self.thermal_height or self.height)


@dataclass
class ScenePair:
    """One frame: thermal (h,w) uint8/uint16, rgb (H,W,3) uint8 in RGB order, boxes in RGB pixels."""

    thermal: np.ndarray
    rgb: np.ndarray
    boxes: list[Box] = field(default_factory=list)


@dataclass(frozen=True)
class _Object:
    kind: str  # "person" or "car"
    x0: float  # left edge at frame 0, as a fraction of the free horizontal range
    foot: float  # ground contact as a fraction of image height (lower = nearer = bigger)
    speed: float  # horizontal speed in fractions of the free range per frame
    colour: tuple[int, int, int]
    skin: tuple[int, int, int]
    facing: int  # cars: +1 engine on the right, -1 on the left


def _bounce(x: float) -> float:
    """Triangle wave in [0, 1]: objects walk to an edge and turn back, so they never leave the frame."""
    x = x % 2.0
    return 2.0 - x if x > 1.0 else x


class SceneGenerator:
    """Renders ``frame(i)`` for a fixed, seeded layout of people and cars."""

    def __init__(self, config: SceneConfig | None = None) -> None:
        self.config = cfg = config or SceneConfig()
        rng = np.random.default_rng(cfg.seed)
        objects = [self._random_object(rng, "car") for _ in range(cfg.n_cars)]
        objects += [self._random_object(rng, "person") for _ in range(cfg.n_people)]
        self._objects = sorted(objects, key=lambda o: o.foot)  # far first, so near objects occlude them
        self._rgb_bg = self._visible_background(rng)
        tw, th = cfg.thermal_size
        self._thermal_bg = self._to_thermal(self._thermal_background(rng, tw, th))
        vis_sigma = 14.0 if cfg.night else 5.0
        self._vis_noise = self._noise_pair(rng, (cfg.height, cfg.width, 3), vis_sigma, np.uint8)
        t_sigma = 0.012 * (255 if cfg.thermal_bits == 8 else _RAW_HIGH - _RAW_LOW)
        self._th_noise = self._noise_pair(rng, (th, tw), t_sigma, self._thermal_bg.dtype)

    # ----- layout and backgrounds (once) -----

    @staticmethod
    def _random_object(rng: np.random.Generator, kind: str) -> _Object:
        return _Object(
            kind=kind, x0=float(rng.uniform(0, 2)), foot=float(rng.uniform(0.6, 0.97)),
            speed=float(rng.uniform(0.002, 0.008) * rng.choice((-1, 1))) * (2.0 if kind == "car" else 1.0),
            colour=_PAINT[rng.integers(len(_PAINT))] if kind == "car" else _CLOTHES[rng.integers(len(_CLOTHES))],
            skin=_SKIN[rng.integers(len(_SKIN))], facing=int(rng.choice((-1, 1))),
        )

    def _visible_background(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.config.width, self.config.height
        hz = int(_HORIZON * h)
        t = np.linspace(0.0, 1.0, hz, dtype=np.float32)[:, None, None]
        top, bottom = np.array([90, 140, 210], np.float32), np.array([200, 215, 230], np.float32)
        bg = np.empty((h, w, 3), np.float32)
        bg[:hz] = top + t * (bottom - top)
        # Road: asphalt grey, brighter towards the viewer, with coarse texture blown up from a small field.
        rows = np.linspace(0.0, 1.0, h - hz, dtype=np.float32)[:, None, None]
        bg[hz:] = 95.0 + 30.0 * rows
        texture = cv2.resize(rng.normal(0, 9, (max(2, (h - hz) // 8), max(2, w // 8))).astype(np.float32),
                             (w, h - hz), interpolation=cv2.INTER_CUBIC)
        bg[hz:] += texture[..., None]
        bg[hz + 1 : hz + 3] = (120, 130, 110)  # kerb line at the horizon
        lane_y = hz + int(0.55 * (h - hz))
        for x in range(0, w, max(8, w // 8)):
            bg[lane_y : lane_y + max(2, h // 120), x : x + max(4, w // 16)] = (225, 225, 215)
        if self.config.night:
            bg *= 0.22
        return np.clip(bg, 0, 255).astype(np.uint8)

    def _thermal_background(self, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
        hz = int(_HORIZON * h)
        bg = np.empty((h, w), np.float32)
        bg[:hz] = np.linspace(_T_SKY - 0.06, _T_SKY + 0.04, hz, dtype=np.float32)[:, None]
        road = _T_ROAD + (0.06 if self.config.night else 0.0)  # asphalt gives back the day's heat at night
        bg[hz:] = np.linspace(road - 0.04, road + 0.04, h - hz, dtype=np.float32)[:, None]
        bg += 0.03 * np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]  # mild left-right gradient
        bg[hz:] += cv2.resize(rng.normal(0, 0.015, (max(2, (h - hz) // 16), max(2, w // 16))).astype(np.float32),
                              (w, h - hz), interpolation=cv2.INTER_CUBIC)
        return bg

    def _to_thermal(self, level: np.ndarray | float) -> np.ndarray:
        v = np.clip(np.asarray(level, np.float32), 0.0, 1.0)
        if self.config.thermal_bits == 8:
            return np.round(v * 255.0).astype(np.uint8)
        return np.round(_RAW_LOW + v * (_RAW_HIGH - _RAW_LOW)).astype(np.uint16)

    def _t(self, level: float) -> int:
        return int(self._to_thermal(level))

    @staticmethod
    def _noise_pair(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, dtype: np.dtype
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Zero-mean noise split into positive and negative parts, to apply with saturating cv2.add/subtract."""
        padded = (shape[0] + _NOISE_PAD, shape[1] + _NOISE_PAD) + shape[2:]
        n = np.round(rng.normal(0.0, sigma, padded)).astype(np.int32)
        return np.clip(n, 0, None).astype(dtype), np.clip(-n, 0, None).astype(dtype)

    # ----- per frame -----

    def _geometry(self, obj: _Object, i: int) -> tuple[int, int, int, int]:
        w, h = self.config.width, self.config.height
        scale = (obj.foot - _HORIZON) / (1.0 - _HORIZON)  # perspective: size grows towards the viewer
        if obj.kind == "person":
            bh, bw = 0.42 * h * scale, 0.16 * h * scale
        else:
            bh, bw = 0.26 * h * scale, 0.62 * h * scale
        bh, bw = max(bh, 6.0), min(max(bw, 4.0), w - 2.0)
        x1 = _bounce(obj.x0 + obj.speed * i) * (w - bw - 1)
        y2 = min(obj.foot * h, h - 1)
        return int(x1), int(max(y2 - bh, 0)), int(x1 + bw), int(y2)

    @staticmethod
    def _draw_person(img: np.ndarray, box: tuple[int, int, int, int], i: int, skin, clothes, legs) -> None:
        x1, y1, x2, y2 = box
        bw, bh = x2 - x1, y2 - y1
        cx = (x1 + x2) // 2
        r = max(1, int(0.075 * bh))
        cv2.circle(img, (cx, y1 + r), r, skin, -1, cv2.LINE_AA)
        torso_top, hip = y1 + 2 * r, y1 + int(0.56 * bh)
        cv2.ellipse(img, (cx, (torso_top + hip) // 2), (max(1, int(0.34 * bw)), max(1, (hip - torso_top) // 2 + 1)),
                    0, 0, 360, clothes, -1, cv2.LINE_AA)
        swing = int(0.18 * bw * np.sin(0.5 * i))  # walking: legs swing with the frame index
        thick = max(1, bw // 4)
        cv2.line(img, (cx - thick // 2, hip), (cx - thick // 2 + swing, y2 - thick // 2), legs, thick, cv2.LINE_AA)
        cv2.line(img, (cx + thick // 2, hip), (cx + thick // 2 - swing, y2 - thick // 2), legs, thick, cv2.LINE_AA)

    @staticmethod
    def _draw_car(img: np.ndarray, box: tuple[int, int, int, int], facing: int, body, glass, wheel, engine) -> None:
        x1, y1, x2, y2 = box
        bw, bh = x2 - x1, y2 - y1
        wr = max(1, int(0.2 * bh))
        base_top = y1 + int(0.42 * bh)
        cv2.rectangle(img, (x1, base_top), (x2, y2 - wr // 2), body, -1)
        cab = (x1 + int(0.22 * bw), x2 - int(0.22 * bw))
        cv2.rectangle(img, (cab[0], y1), (cab[1], base_top), body, -1)
        cv2.rectangle(img, (cab[0] + max(1, bw // 30), y1 + max(1, bh // 12)),
                      (cab[1] - max(1, bw // 30), base_top - 1), glass, -1)
        front = (x2 - int(0.2 * bw), x2) if facing > 0 else (x1, x1 + int(0.2 * bw))
        if engine is not None:  # only thermal shows the engine bay
            cv2.rectangle(img, (front[0], base_top + 1), (front[1], y2 - wr), engine, -1)
        for wx in (x1 + int(0.2 * bw), x2 - int(0.2 * bw)):
            cv2.circle(img, (wx, y2 - wr), wr, wheel, -1, cv2.LINE_AA)

    @staticmethod
    def _add_noise(img: np.ndarray, noise: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> None:
        dy, dx = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
        h, w = img.shape[:2]
        cv2.add(img, noise[0][dy : dy + h, dx : dx + w], dst=img)
        cv2.subtract(img, noise[1][dy : dy + h, dx : dx + w], dst=img)

    def frame(self, i: int) -> ScenePair:
        """The pair at frame index ``i``; pure function of (config, i)."""
        cfg = self.config
        rgb, thermal = self._rgb_bg.copy(), self._thermal_bg.copy()
        tw, th = cfg.thermal_size
        sx, sy = tw / cfg.width, th / cfg.height
        dim = 0.3 if cfg.night else 1.0
        boxes: list[Box] = []
        for obj in self._objects:
            box = self._geometry(obj, i)
            tbox = (int(box[0] * sx), int(box[1] * sy), int(box[2] * sx), int(box[3] * sy))
            if obj.kind == "person":
                c = tuple(int(v * dim) for v in obj.colour)
                self._draw_person(rgb, box, i, tuple(int(v * dim) for v in obj.skin), c, c)
                self._draw_person(thermal, tbox, i, self._t(_T_SKIN), self._t(_T_CLOTHES), self._t(_T_CLOTHES + 0.04))
            else:
                body = tuple(int(v * dim) for v in obj.colour)
                glass, tyre = (int(30 * dim),) * 3, (int(20 * dim),) * 3
                self._draw_car(rgb, box, obj.facing, body, glass, tyre, None)
                self._draw_car(thermal, tbox, obj.facing, self._t(_T_BODY), self._t(_T_GLASS),
                               self._t(_T_WHEEL), self._t(_T_ENGINE))
            boxes.append((obj.kind, *box))
        # Thermal optics are soft; blur before noise so noise stays per-pixel like a real FPA.
        cv2.GaussianBlur(thermal, (5, 5), 1.0, dst=thermal)
        rng = np.random.default_rng((cfg.seed, i))
        self._add_noise(rgb, self._vis_noise, rng)
        self._add_noise(thermal, self._th_noise, rng)
        return ScenePair(thermal=thermal, rgb=rgb, boxes=boxes)
