from __future__ import annotations

import numpy as np
import pytest

from ivfusion.errors import ImageDecodeError
from ivfusion.fusion.factory import create_backend
from ivfusion.pipeline import FusionPipeline, PipelineConfig, RawImage
from ivfusion.registration.homography import Registration
from ivfusion.sim.scene import SceneConfig, SceneGenerator


def _pipeline(**kwargs) -> FusionPipeline:
    return FusionPipeline(create_backend("classical"), Registration.from_params([]), **kwargs)


def test_stages_timed_and_output_at_rgb_resolution() -> None:
    gen = SceneGenerator(SceneConfig(width=320, height=240, thermal_width=160, thermal_height=128, thermal_bits=16))
    pair = gen.frame(0)
    result = _pipeline(config=PipelineConfig(keep_inputs=True)).process(
        RawImage.from_array(pair.thermal, "mono16"), RawImage.from_array(pair.rgb, "rgb8"))
    assert result.fused.shape == (240, 320, 3) and result.fused.dtype == np.uint8
    assert set(result.timings_ms) == {"convert", "agc", "register", "fuse", "detect", "total"}
    assert result.detections == [] and result.backend == "classical"
    assert result.thermal.shape == (240, 320)


def test_preference_switch_changes_output_and_is_validated() -> None:
    pair = SceneGenerator(SceneConfig(width=160, height=120, night=True)).frame(0)
    pipe = _pipeline(preference="visual")
    args = (RawImage.from_array(pair.thermal, "mono8"), RawImage.from_array(pair.rgb, "rgb8"))
    visual = pipe.process(*args).fused.astype(int)
    assert pipe.set_preference("detection").preset == "detection"
    detection = pipe.process(*args).fused.astype(int)
    assert np.abs(detection - visual).mean() > 0.5
    with pytest.raises(Exception, match="empty"):
        pipe.set_preference("  ")
    assert pipe.preference.preset == "detection"


def test_bad_frame_names_the_camera() -> None:
    good = RawImage.from_array(np.zeros((8, 8, 3), np.uint8), "rgb8")
    bad = RawImage(b"\x00" * 10, 8, 8, 8, "mono8")
    with pytest.raises(ImageDecodeError, match="thermal image: .*length"):
        _pipeline().process(bad, good)


def test_agc_state_is_per_encoding() -> None:
    """Smoothed 16-bit count bounds must not leak into float frames (or the reverse)."""
    pipe = _pipeline()
    rgb = RawImage.from_array(np.full((64, 64, 3), 60, np.uint8), "rgb8")
    counts = np.full((64, 64), 7500, np.uint16)
    counts[16:48, 16:48] = 9000
    for _ in range(5):
        pipe.process(RawImage.from_array(counts, "mono16"), rgb)
    kelvin = (counts.astype(np.float32) / 30.0)
    out = pipe.process(RawImage.from_array(kelvin, "32FC1"), rgb).fused
    assert out[20:44, 20:44].mean() > out[:8, :8].mean() + 20


class _Broken:
    name = "broken"

    def fuse(self, thermal, visible, preference):
        raise RuntimeError("device lost")


def test_failing_backend_falls_back_for_good() -> None:
    pipe = FusionPipeline(_Broken(), Registration.from_params([]), fallback=create_backend("classical"))
    args = (RawImage.from_array(np.zeros((16, 16), np.uint8), "mono8"),
            RawImage.from_array(np.zeros((16, 16, 3), np.uint8), "rgb8"))
    result = pipe.process(*args)
    assert result.fused.shape == (16, 16, 3) and result.backend == "classical"
    assert pipe.backend.name == "classical" and "device lost" in pipe.fallback_reason
    assert pipe.process(*args).backend == "classical"


def test_failing_backend_without_fallback_raises() -> None:
    pipe = FusionPipeline(_Broken(), Registration.from_params([]))
    with pytest.raises(RuntimeError, match="device lost"):
        pipe.process(RawImage.from_array(np.zeros((8, 8), np.uint8), "mono8"),
                     RawImage.from_array(np.zeros((8, 8, 3), np.uint8), "rgb8"))
