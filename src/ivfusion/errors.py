"""Explicit errors that name the thing that is wrong (topic, encoding, path, parameter)."""

from __future__ import annotations


class IvfusionError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageDecodeError(IvfusionError):
    """A raw image buffer cannot be turned into an array (bad encoding, size, step or values)."""


class CalibrationError(IvfusionError):
    """A registration homography or calibration file is missing or malformed."""


class ConfigError(IvfusionError):
    """A configuration value (parameter, YAML key) is out of range or of the wrong type."""


class DetectorError(IvfusionError):
    """The detector's weights are missing, corrupt or cannot run."""


class EngineError(IvfusionError):
    """An inference runtime (TensorRT engine, ONNX Runtime provider, CUDA) cannot be built, loaded or run."""
