"""One frame pair in, fused frame + detections out: convert → AGC → register → fuse → detect.

This is the whole perception job without ROS, shared by the node, the demo, evaluation and benchmarks, so
each of them measures and runs exactly the same code. Each stage is timed; the node reports the timings in
its diagnostics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ivfusion.detection import Detection
from ivfusion.errors import ImageDecodeError
from ivfusion.fusion.base import FusionBackend
from ivfusion.fusion.preference import Preference, parse_preference
from ivfusion.imaging.agc import AGCConfig, ThermalAGC
from ivfusion.imaging.encodings import decode_image, to_bgr8, to_mono8
from ivfusion.registration.homography import Registration

_RAW_THERMAL = {"mono16", "16UC1", "32FC1"}


@dataclass(frozen=True)
class RawImage:
    """An image as a camera driver publishes it (the fields of sensor_msgs/Image that matter here)."""

    data: Any  # bytes-like: bytes, memoryview, array.array('B'), or a uint8 ndarray
    width: int
    height: int
    step: int
    encoding: str
    is_bigendian: bool = False

    @classmethod
    def from_array(cls, array: np.ndarray, encoding: str) -> RawImage:
        from ivfusion.imaging.encodings import encode_image

        data, step = encode_image(array, encoding)
        return cls(data, array.shape[1], array.shape[0], step, encoding)


@dataclass
class FrameResult:
    fused: np.ndarray  # (H, W, 3) uint8 BGR at the RGB resolution
    detections: list[Detection]
    timings_ms: dict[str, float]
    preference: Preference
    backend: str
    thermal: np.ndarray | None = None  # registered 8-bit thermal, for reports
    visible: np.ndarray | None = None  # visible frame as BGR


@dataclass
class PipelineConfig:
    agc: AGCConfig = field(default_factory=AGCConfig)
    max_pixels: int = 50_000_000
    keep_inputs: bool = False  # FrameResult carries the converted inputs (demo, reports)


class FusionPipeline:
    """Holds the stateful parts (AGC history, registration cache, backend, detector) for one camera pair.

    ``detector`` may be None (detection disabled, or its weights failed to load): the pipeline still fuses.
    ``preference`` and ``backend`` can be swapped while frames are being processed; each frame reads both
    once under a lock, so a frame is never fused with half of an update.
    """

    def __init__(
        self,
        backend: FusionBackend,
        registration: Registration,
        detector: Callable[[np.ndarray], list[Detection]] | None = None,
        config: PipelineConfig | None = None,
        preference: str | Preference = "balanced",
        fallback: FusionBackend | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self.registration = registration
        self.detector = detector
        # One AGC history per encoding: smoothed bounds in 16-bit counts mean nothing for float Kelvin.
        self._agc: dict[str, ThermalAGC] = {}
        self._lock = threading.Lock()
        self._backend = backend
        self._fallback = fallback
        self.fallback_reason: str | None = None  # set once the primary backend failed and the fallback took over
        self._preference = preference if isinstance(preference, Preference) else parse_preference(preference)

    @property
    def preference(self) -> Preference:
        return self._preference

    @property
    def backend(self) -> FusionBackend:
        return self._backend

    def set_preference(self, value: str | Preference) -> Preference:
        pref = value if isinstance(value, Preference) else parse_preference(value)
        with self._lock:
            self._preference = pref
        return pref

    def set_backend(self, backend: FusionBackend) -> None:
        with self._lock:
            self._backend = backend
            self.fallback_reason = None

    def process(self, thermal: RawImage, rgb: RawImage) -> FrameResult:
        """Raises ImageDecodeError for input that cannot be used; the caller skips the frame."""
        with self._lock:
            backend, preference = self._backend, self._preference
        t: dict[str, float] = {}
        t0 = time.perf_counter()

        rgb_img = self._decode(rgb, "rgb")
        visible = to_bgr8(rgb_img, rgb.encoding)
        thermal_img = self._decode(thermal, "thermal")
        t1 = time.perf_counter()
        t["convert"] = (t1 - t0) * 1e3

        if thermal.encoding in _RAW_THERMAL:
            agc = self._agc.get(thermal.encoding)
            if agc is None:
                agc = self._agc.setdefault(thermal.encoding, ThermalAGC(self.config.agc))
            thermal8 = agc(thermal_img)
        else:
            thermal8 = to_mono8(thermal_img, thermal.encoding)
        t2 = time.perf_counter()
        t["agc"] = (t2 - t1) * 1e3

        registered = self.registration.warp(thermal8, visible.shape[:2])
        t3 = time.perf_counter()
        t["register"] = (t3 - t2) * 1e3

        fused, used = self._fuse(backend, registered, visible, preference)
        t4 = time.perf_counter()
        t["fuse"] = (t4 - t3) * 1e3

        detections = self.detector(fused) if self.detector is not None else []
        t5 = time.perf_counter()
        t["detect"] = (t5 - t4) * 1e3
        t["total"] = (t5 - t0) * 1e3

        keep = self.config.keep_inputs
        return FrameResult(
            fused, detections, t, preference, used,
            thermal=registered if keep else None, visible=visible if keep else None,
        )

    def _fuse(self, backend: FusionBackend, thermal: np.ndarray, visible: np.ndarray,
              preference: Preference) -> tuple[np.ndarray, str]:
        """A backend that fails at run time (a GPU lost, a runtime error) hands over to the fallback for good."""
        try:
            return backend.fuse(thermal, visible, preference), backend.name
        except Exception as exc:
            fallback = self._fallback
            if fallback is None or fallback is backend:
                raise
            with self._lock:
                if self._backend is backend:
                    self._backend = fallback
                    self.fallback_reason = f"{backend.name} failed ({type(exc).__name__}: {exc}); using {fallback.name}"
            return fallback.fuse(thermal, visible, preference), fallback.name

    def _decode(self, raw: RawImage, which: str) -> np.ndarray:
        try:
            return decode_image(
                raw.data, raw.width, raw.height, raw.step, raw.encoding, raw.is_bigendian,
                max_pixels=self.config.max_pixels,
            )
        except ImageDecodeError as exc:
            raise ImageDecodeError(f"{which} image: {exc}") from exc
