"""Every node parameter in one declaration table: name, default, description, range, and whether it may change live.

One table instead of scattered ``declare_parameter``/``get_parameter`` chains, so the README's parameter
table, the validation and the descriptors cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ivfusion.engines.select import PRECISIONS, RUNTIMES
from ivfusion.errors import ConfigError
from ivfusion.fusion.factory import BACKENDS, default_backend
from ivfusion.fusion.preference import parse_preference

_TYPES = {
    bool: (Parameter.Type.BOOL, ParameterType.PARAMETER_BOOL),
    int: (Parameter.Type.INTEGER, ParameterType.PARAMETER_INTEGER),
    float: (Parameter.Type.DOUBLE, ParameterType.PARAMETER_DOUBLE),
    str: (Parameter.Type.STRING, ParameterType.PARAMETER_STRING),
    "double[]": (Parameter.Type.DOUBLE_ARRAY, ParameterType.PARAMETER_DOUBLE_ARRAY),
    "int[]": (Parameter.Type.INTEGER_ARRAY, ParameterType.PARAMETER_INTEGER_ARRAY),
    "string[]": (Parameter.Type.STRING_ARRAY, ParameterType.PARAMETER_STRING_ARRAY),
}


def _one_of(*choices: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"must be one of {list(choices)}, got {value!r}")

    check.choices = choices  # type: ignore[attr-defined]
    return check


def _preference(value: Any) -> None:
    parse_preference(value)


def _homography(value: Any) -> None:
    if len(value) not in (0, 9):
        raise ConfigError(f"needs 9 values (row-major 3x3) or none, got {len(value)}")


def _size(value: Any) -> None:
    if len(value) not in (0, 2) or any(v <= 0 for v in value):
        raise ConfigError(f"needs [width, height] with positive values or [], got {list(value)}")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    type: Any  # a Python type, or "double[]" / "int[]" / "string[]"
    description: str
    dynamic: bool = False  # may change while the node runs
    range: tuple[float, float] | None = None
    check: Callable[[Any], None] | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("preference", "balanced", str,
              "What the fused image is for: detection, visual, balanced, low_light, fog, or free text",
              dynamic=True, check=_preference),
    ParamSpec("fusion.backend", default_backend(), str,
              "Fusion backend: student = learned network (ONNX Runtime when models/student/student.onnx exists, "
              "else PyTorch; classical if it cannot load or fails), classical = Laplacian-pyramid baseline",
              dynamic=True, check=_one_of(*BACKENDS)),
    ParamSpec("fusion.model_dir", "", str,
              "Student weights folder (config.json + model.safetensors [+ student.onnx]); empty = the shipped "
              "models/student. Read when the student backend is (re)created"),
    ParamSpec("fusion.runtime", "auto", str,
              "Student inference runtime: auto = fastest available (tensorrt, torch on CUDA, onnxruntime, torch on CPU), "
              "or one of them first; unavailable or failing runtimes fall back to the next (WARN on /diagnostics)",
              check=_one_of(*RUNTIMES)),
    ParamSpec("fusion.precision", "fp16", str,
              "GPU precision of the student (tensorrt, torch CUDA): fp16, fp32, or int8 (TensorRT, prebuilt engine "
              "only); CPU runtimes run fp32", check=_one_of(*PRECISIONS)),
    ParamSpec("fusion.engine_cache", "", str,
              "TensorRT engine cache folder; empty = $IVFUSION_ENGINE_CACHE or ~/.cache/ivfusion/engines"),
    ParamSpec("fusion.cuda_graphs", False, bool, "PyTorch CUDA runtime: replay captured CUDA graphs per input size"),
    ParamSpec("qos.reliability", "best_effort", str,
              "Subscription reliability: best_effort (sensor-data QoS) or reliable", check=_one_of("best_effort", "reliable")),
    ParamSpec("qos.depth", 5, int, "Subscription and publisher history depth", range=(1, 100)),
    ParamSpec("sync.queue_size", 10, int, "Unpaired frames kept per stream", range=(1, 1000)),
    ParamSpec("sync.slop", 0.05, float, "Largest thermal/RGB stamp difference that still pairs [s]", range=(0.0, 10.0)),
    ParamSpec("sync.max_age", 2.0, float, "Unpaired frames older than this behind the newest are dropped [s]",
              range=(0.001, 60.0)),
    ParamSpec("agc.low_percentile", 1.0, float, "16-bit thermal AGC lower clip percentile", range=(0.0, 100.0)),
    ParamSpec("agc.high_percentile", 99.0, float, "16-bit thermal AGC upper clip percentile", range=(0.0, 100.0)),
    ParamSpec("agc.smoothing", 0.9, float, "Temporal EMA factor on the AGC bounds (0 = none)", range=(0.0, 0.999)),
    ParamSpec("registration.homography", [], "double[]",
              "Row-major 3x3 thermal-to-RGB pixel homography; empty = map the thermal frame onto the RGB frame",
              check=_homography),
    ParamSpec("registration.thermal_size", [], "int[]", "[w, h] the homography was calibrated at", check=_size),
    ParamSpec("registration.rgb_size", [], "int[]", "[w, h] the homography was calibrated at", check=_size),
    ParamSpec("registration.calibration_file", "", str, "Calibration YAML (overrides registration.homography)"),
    ParamSpec("detector.enabled", True, bool, "Run the detector on the fused frame"),
    ParamSpec("detector.weights", "", str,
              "Ultralytics weights (.onnx/.engine/OpenVINO dir/.pt/.yaml); empty = shared COCO YOLOv8n"),
    ParamSpec("detector.conf", 0.25, float, "Detection confidence threshold", dynamic=True, range=(0.0, 1.0)),
    ParamSpec("detector.iou", 0.45, float, "NMS IoU threshold", dynamic=True, range=(0.0, 1.0)),
    ParamSpec("detector.classes", [], "string[]", "Class names to keep; empty keeps all"),
    ParamSpec("detector.imgsz", 640, int, "Detector input size (multiple of 32)", range=(32, 4096)),
    ParamSpec("detector.device", "cpu", str, "Torch device for .pt/.yaml models (cpu, cuda:0)"),
    ParamSpec("detector.trust_pickled_weights", False, bool, "Allow .pt checkpoints (pickles run code on load)"),
    ParamSpec("publish_annotated", False, bool, "Also publish fused/annotated with boxes drawn", dynamic=True),
    ParamSpec("diagnostics_period", 1.0, float, "Seconds between /diagnostics messages", range=(0.05, 60.0)),
    ParamSpec("input_timeout", 2.0, float, "A topic silent this long is reported stale [s]", range=(0.05, 600.0)),
    ParamSpec("max_image_pixels", 50_000_000, int, "Larger images are rejected as absurd", range=(1, 1_000_000_000)),
)

BY_NAME = {spec.name: spec for spec in PARAMS}


def validate(spec: ParamSpec, value: Any) -> None:
    """Raise ConfigError naming the parameter if ``value`` is unacceptable for it."""
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        raise ConfigError(f"{spec.name}={value!r} is outside [{spec.range[0]}, {spec.range[1]}]")
    if spec.check is not None:
        try:
            spec.check(value)
        except ConfigError as exc:
            raise ConfigError(f"{spec.name}: {exc}") from exc


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(
        name=spec.name, type=_TYPES[spec.type][1], description=spec.description, read_only=not spec.dynamic
    )
    choices = getattr(spec.check, "choices", None)
    if choices:
        d.additional_constraints = "one of: " + ", ".join(choices)
    if spec.range is not None:
        lo, hi = spec.range
        if spec.type is int:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        elif spec.type is float:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d


def declare_all(node: Node) -> dict[str, Any]:
    """Declare every parameter (overrides from a params file apply) and return validated values.

    Raises ConfigError for an invalid startup value: a misconfigured node should fail loudly at launch,
    unlike bad *frames*, which are skipped.
    """
    values: dict[str, Any] = {}
    for spec in PARAMS:
        ptype = _TYPES[spec.type][0]
        if isinstance(spec.default, list):
            # rclpy infers [] as a byte array, so declare by type: a params-file override initialises it,
            # otherwise it stays "not set" and means the (empty) default.
            node.declare_parameter(spec.name, ptype, _descriptor(spec))
            try:
                value = node.get_parameter(spec.name).value
            except ParameterUninitializedException:
                value = spec.default
        else:
            value = node.declare_parameter(spec.name, spec.default, _descriptor(spec)).value
        value = list(value) if isinstance(spec.default, list) else value
        validate(spec, value)
        values[spec.name] = value
    return values
