"""The ``ivfusion`` node: a thin ROS layer over :class:`ivfusion.pipeline.FusionPipeline`.

Callbacks only validate headers, pair by stamp and hand the newest pair to a worker thread, so they never
block; the worker fuses, detects and publishes with the RGB header copied onto every output (frame_id and
stamp preserved). Bad frames are logged (throttled), counted and reported on /diagnostics, then skipped.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ivfusion.detection import Detector, DetectorConfig
from ivfusion.detection.draw import draw_detections
from ivfusion.engines.select import RuntimeOptions
from ivfusion.errors import ConfigError, ImageDecodeError, IvfusionError
from ivfusion.fusion.factory import create_backend
from ivfusion.imaging.agc import AGCConfig
from ivfusion.imaging.encodings import check_layout
from ivfusion.pipeline import FusionPipeline, PipelineConfig
from ivfusion.registration.homography import Registration
from ivfusion.ros import messages
from ivfusion.ros.params import BY_NAME, declare_all, validate
from ivfusion.runtime.stats import RateMeter, StageTimer
from ivfusion.runtime.worker import LatestWinsWorker
from ivfusion.sync import RGB, THERMAL, ApproximateTimePairer, SyncConfig

NODE_NAME = "ivfusion"
TOPICS = ("thermal/image_raw", "rgb/image_raw")
LOG_THROTTLE_S = 2.0


@dataclass(frozen=True)
class _Frame:
    msg: Image
    arrival: float  # time.monotonic() at the callback


class IvfusionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.p = declare_all(self)
        self._bad_inputs: Counter[str] = Counter()
        self._last_problem: tuple[float, str] | None = None
        self._detector_state = "disabled"
        self._detector_error = ""
        self._rates = (RateMeter(), RateMeter())
        self._out_rate = RateMeter()
        self._timer = StageTimer()
        self._detector: Detector | None = None

        self._pipeline = FusionPipeline(
            backend=self._create_backend(self.p["fusion.backend"]),
            registration=self._registration(),
            config=PipelineConfig(agc=self._agc_config(), max_pixels=self.p["max_image_pixels"]),
            preference=self.p["preference"],
            fallback=create_backend("classical"),
        )
        self._pairer: ApproximateTimePairer[_Frame] = ApproximateTimePairer(
            SyncConfig(
                queue_size=self.p["sync.queue_size"],
                slop_ns=int(self.p["sync.slop"] * 1e9),
                max_age_ns=int(self.p["sync.max_age"] * 1e9),
            )
        )
        self._worker: LatestWinsWorker = LatestWinsWorker(self._process, on_error=self._on_worker_error)

        depth = self.p["qos.depth"]
        reliability = (
            ReliabilityPolicy.BEST_EFFORT if self.p["qos.reliability"] == "best_effort" else ReliabilityPolicy.RELIABLE
        )
        sub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability)
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        group = MutuallyExclusiveCallbackGroup()  # the pairer is single-threaded by design
        self.create_subscription(Image, TOPICS[THERMAL], lambda m: self._on_image(THERMAL, m), sub_qos,
                                 callback_group=group)
        self.create_subscription(Image, TOPICS[RGB], lambda m: self._on_image(RGB, m), sub_qos, callback_group=group)
        self._pub_fused = self.create_publisher(Image, "fused/image", pub_qos)
        self._pub_annotated = self.create_publisher(Image, "fused/annotated", pub_qos)
        self._pub_detections = self.create_publisher(Detection2DArray, "detections", pub_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.p["diagnostics_period"], self._publish_diagnostics)

        self.add_on_set_parameters_callback(self._validate_update)
        self.add_post_set_parameters_callback(self._apply_update)
        if self.p["detector.enabled"]:
            self._detector_state = "loading"
            threading.Thread(target=self._load_detector, name="ivfusion-detector-load", daemon=True).start()
        self.get_logger().info(
            f"ready: backend={self._pipeline.backend.name}{self._runtime_text()} preference={self._pipeline.preference.text!r} "
            f"sync slop={self.p['sync.slop']}s qos={self.p['qos.reliability']}"
        )

    # ---------------------------------------------------------------- set-up helpers
    def _registration(self) -> Registration:
        path = self.p["registration.calibration_file"]
        if path:
            return Registration.from_yaml(path)
        return Registration.from_params(
            self.p["registration.homography"],
            thermal_size=tuple(self.p["registration.thermal_size"]) or None,
            rgb_size=tuple(self.p["registration.rgb_size"]) or None,
        )

    def _create_backend(self, name: str) -> Any:
        """Build a fusion backend (engines are built or loaded here, never in an image callback) and log its runtime.

        Skipped runtimes are logged at WARN once: on a robot, ``auto`` landing on the CPU usually means a missing
        TensorRT install or driver, which should be visible without reading diagnostics.
        """
        options = RuntimeOptions(runtime=self.p["fusion.runtime"], precision=self.p["fusion.precision"],
                                 engine_cache=self.p["fusion.engine_cache"], threads=1,
                                 cuda_graphs=self.p["fusion.cuda_graphs"])
        backend = create_backend(name, options=options, model_dir=self.p["fusion.model_dir"])
        notes = getattr(backend, "runtime_notes", [])
        if notes:
            self.get_logger().warning(f"fusion runtime {backend.describe()} (requested {options.runtime}); skipped: "
                                      + "; ".join(notes))
        build_s = getattr(backend, "engine_build_s", None)
        if build_s is not None:
            self.get_logger().warning(f"built the TensorRT engine for the student in {build_s:.1f} s (cached now)")
        return backend

    def _runtime_text(self) -> str:
        describe = getattr(self._pipeline.backend, "describe", None)
        return f" runtime={describe()}" if describe else ""

    def _agc_config(self) -> AGCConfig:
        return AGCConfig(
            low_percentile=self.p["agc.low_percentile"],
            high_percentile=self.p["agc.high_percentile"],
            smoothing=self.p["agc.smoothing"],
        )

    def _load_detector(self) -> None:
        try:
            config = DetectorConfig(
                weights=self.p["detector.weights"], conf=self.p["detector.conf"], iou=self.p["detector.iou"],
                classes=tuple(self.p["detector.classes"]), imgsz=self.p["detector.imgsz"],
                device=self.p["detector.device"], trust_pickled_weights=self.p["detector.trust_pickled_weights"],
            )
            started = time.perf_counter()
            detector = Detector(config)
        except (IvfusionError, OSError) as exc:
            self._detector_state, self._detector_error = "failed", str(exc)
            self.get_logger().error(f"detector unavailable, publishing fused images only: {exc}")
            return
        self._detector = detector
        self._pipeline.detector = detector.detect
        self._detector_state = "ready"
        self.get_logger().info(
            f"detector ready: {detector.source} ({len(detector.names)} classes, "
            f"loaded in {time.perf_counter() - started:.1f}s)"
        )

    # ---------------------------------------------------------------- callbacks (never block)
    def _on_image(self, stream: int, msg: Image) -> None:
        now = time.monotonic()
        self._rates[stream].tick(now)
        try:
            check_layout(msg.width, msg.height, msg.step, msg.encoding, len(msg.data), self.p["max_image_pixels"])
        except ImageDecodeError as exc:
            self._report_bad_input(f"{TOPICS[stream]}: {exc}", key=f"{TOPICS[stream]}: invalid layout")
            return
        stamp = messages.stamp_to_ns(msg.header.stamp)
        pair = self._pairer.add(stream, stamp, _Frame(msg, now))  # callbacks share one exclusive group
        if pair is not None:
            self._worker.submit(pair.rgb_stamp_ns, pair)

    # ---------------------------------------------------------------- worker thread
    def _process(self, pair: Any) -> None:
        try:
            result = self._pipeline.process(messages.image_to_raw(pair.thermal.msg), messages.image_to_raw(pair.rgb.msg))
        except ImageDecodeError as exc:
            self._report_bad_input(str(exc), key="undecodable pixels")
            return
        t0 = time.perf_counter()
        header = pair.rgb.msg.header
        self._pub_fused.publish(messages.array_to_image(result.fused, "bgr8", header))
        if self._pipeline.detector is not None:
            self._pub_detections.publish(messages.detections_to_msg(result.detections, header))
        if self.p["publish_annotated"]:
            annotated = draw_detections(result.fused, result.detections)
            self._pub_annotated.publish(messages.array_to_image(annotated, "bgr8", header))
        timings = dict(result.timings_ms)
        timings["publish"] = (time.perf_counter() - t0) * 1e3
        timings["end_to_end"] = (time.monotonic() - max(pair.thermal.arrival, pair.rgb.arrival)) * 1e3
        self._timer.add_all(timings)
        self._out_rate.tick()

    def _on_worker_error(self, pair: Any, exc: BaseException) -> None:
        self._report_bad_input(f"processing failed: {type(exc).__name__}: {exc}", key="processing error")

    def _report_bad_input(self, message: str, *, key: str) -> None:
        self._bad_inputs[key] += 1
        self._last_problem = (time.monotonic(), message)
        self.get_logger().warning(f"skipping frame: {message}", throttle_duration_sec=LOG_THROTTLE_S)

    # ---------------------------------------------------------------- parameters
    def _validate_update(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            spec = BY_NAME.get(param.name)
            if spec is None:
                continue
            value = list(param.value) if isinstance(spec.default, list) else param.value
            try:
                validate(spec, value)
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_update(self, params: list[Parameter]) -> None:
        for param in params:
            self.p[param.name] = param.value
            if param.name == "preference":
                pref = self._pipeline.set_preference(param.value)
                self.get_logger().info(f"preference -> {pref.text!r}" + (" (free text)" if pref.is_free_text else ""))
            elif param.name == "fusion.backend":
                self._pipeline.set_backend(self._create_backend(param.value))
            elif param.name in ("detector.conf", "detector.iou") and self._detector is not None:
                field = param.name.split(".")[1]
                self._detector.config = dataclasses.replace(self._detector.config, **{field: param.value})

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        level, problems = DiagnosticStatus.OK, []
        timeout = self.p["input_timeout"]
        for stream, topic in enumerate(TOPICS):
            silent = self._rates[stream].seconds_since_last(now)
            if silent is None:
                problems.append(f"no data on {topic} yet")
            elif silent > timeout:
                problems.append(f"{topic} silent for {silent:.1f}s")
        if problems:
            level = DiagnosticStatus.WARN
        if self._last_problem is not None and now - self._last_problem[0] < max(timeout, 2 * self.p["diagnostics_period"]):
            level = DiagnosticStatus.WARN
            problems.append(f"bad input: {self._last_problem[1]}")
        if self._pipeline.fallback_reason:
            level = max(level, DiagnosticStatus.WARN)
            problems.append(self._pipeline.fallback_reason)
        backend = self._pipeline.backend
        runtime_fallback = getattr(backend, "fallback_reason", None)
        requested = self.p["fusion.runtime"]
        runtime_now = getattr(backend, "runtime", None)
        runtime_text = backend.describe() if hasattr(backend, "describe") else ""
        if runtime_fallback:
            level = max(level, DiagnosticStatus.WARN)
            problems.append(f"fusion runtime: {runtime_fallback}")
        elif runtime_now is not None and requested != "auto" and runtime_now != requested:
            level = max(level, DiagnosticStatus.WARN)
            problems.append(f"fusion runtime {requested} unavailable, using {runtime_text}")
        if self._detector_state == "failed":
            level = DiagnosticStatus.ERROR
            problems.append(f"detector failed: {self._detector_error}")
        sync, work = self._pairer.stats, self._worker.stats
        values: dict[str, object] = {
            "backend": self._pipeline.backend.name,
            "fusion_runtime": runtime_text,
            "fusion_runtime_requested": requested,
            "fusion_runtime_skipped": "; ".join(getattr(backend, "runtime_notes", [])),
            "fusion_model_dir": str(getattr(backend, "model_dir", "")),  # which student weights (fusion.model_dir)
            "preference": self._pipeline.preference.text,
            "detector": self._detector_state,
            "rate_in_thermal_hz": self._rates[THERMAL].rate(now),
            "rate_in_rgb_hz": self._rates[RGB].rate(now),
            "rate_out_hz": self._out_rate.rate(now),
            "frames_in_thermal": sync.received[THERMAL],
            "frames_in_rgb": sync.received[RGB],
            "pairs": sync.paired,
            "pairing_misses": sync.misses,
            "pending_thermal": self._pairer.pending(THERMAL),  # waiting for a partner: not yet paired or missed
            "pending_rgb": self._pairer.pending(RGB),
            "dropped_superseded": work.superseded,
            "dropped_stale": work.stale,
            "processing_failures": work.failed,
            "published": self._out_rate.count,
            "bad_inputs": sum(self._bad_inputs.values()),
        }
        for key, count in sorted(self._bad_inputs.items()):
            values[f"bad_input[{key}]"] = count
        for stage, pct in self._timer.summary().items():
            for name, ms in pct.items():
                values[f"latency_{stage}_{name}_ms"] = ms
        message = "; ".join(problems) if problems else "fusing"
        status = messages.diagnostic_status(f"{self.get_name()}: fusion pipeline", self.get_fully_qualified_name(),
                                            level, message, values)
        self._pub_diag.publish(messages.diagnostic_array(self.get_clock().now().to_msg(), [status]))

    def destroy_node(self) -> None:
        self._worker.stop()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ivfusion_node`` executable and of ``ivfusion node``: ROS arguments pass through."""
    import rclpy
    from rclpy.exceptions import InvalidParameterValueException
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=argv)
    node: IvfusionNode | None = None
    try:
        node = IvfusionNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigError, IvfusionError, InvalidParameterValueException) as exc:
        # A misconfigured node should fail at launch with the parameter named, not limp along.
        print(f"[ivfusion] configuration error: {exc}", flush=True)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
