"""A real ``ivfusion node`` in another process, and a plain rclpy harness node in this one."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy (ros-jazzy-rclpy wheels) not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs interfaces not built (make setup)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from ivfusion.bags.node_process import NodeProcess as PackageNodeProcess  # noqa: E402
from ivfusion.imaging.encodings import encode_image  # noqa: E402
from ivfusion.ros.messages import ns_to_stamp, stamp_to_ns  # noqa: E402

RGB_FRAME = "rgb_optical_frame"


def make_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, *, pad: int = 0,
               bigendian: bool = False) -> Image:
    """A sensor_msgs/Image as a driver would send it, optionally with ``pad`` bytes of row padding."""
    if bigendian:
        array = array.astype(array.dtype.newbyteorder(">"))
        data, step = array.tobytes(), array.shape[1] * array.dtype.itemsize * (1 if array.ndim == 2 else array.shape[2])
    else:
        data, step = encode_image(array, encoding)
    if pad:
        rows = np.frombuffer(data, np.uint8).reshape(array.shape[0], step)
        rows = np.concatenate([rows, np.full((array.shape[0], pad), 0xAB, np.uint8)], axis=1)
        data, step = rows.tobytes(), step + pad
    return Image(header=Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id), height=array.shape[0],
                 width=array.shape[1], encoding=encoding, is_bigendian=bigendian, step=step, data=data)


class Harness(Node):
    """Plays the cameras and a downstream consumer of the node's outputs."""

    def __init__(self, name: str, thermal_topic: str, rgb_topic: str, out_ns: str = "") -> None:
        super().__init__(name)
        self.pub_thermal = self.create_publisher(Image, thermal_topic, qos_profile_sensor_data)
        self.pub_rgb = self.create_publisher(Image, rgb_topic, qos_profile_sensor_data)
        self._cond = threading.Condition()
        self.fused: dict[int, Image] = {}
        self.annotated: dict[int, Image] = {}
        self.detections: dict[int, Detection2DArray] = {}
        self.diagnostics: list[Any] = []
        self.create_subscription(Image, f"{out_ns}/fused/image", self._store(self.fused), 50)
        self.create_subscription(Image, f"{out_ns}/fused/annotated", self._store(self.annotated), 50)
        self.create_subscription(Detection2DArray, f"{out_ns}/detections", self._store(self.detections), 50)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self._stamp = time.time_ns()

    def next_stamp(self) -> int:
        self._stamp += 100_000_000  # stamps only move forward: the node drops older pairs as stale
        return self._stamp

    def _store(self, table: dict[int, Any]) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self._cond:
                table[stamp_to_ns(msg.header.stamp)] = msg
                self._cond.notify_all()

        return callback

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._cond:
            for status in msg.status:
                self.diagnostics.append(status)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
        assert result, f"timed out after {timeout}s waiting for {what}"
        return result

    def wait_connected(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pub_thermal.get_subscription_count() and self.pub_rgb.get_subscription_count() and \
                    self.count_publishers_for_fused():
                return
            time.sleep(0.05)
        raise AssertionError("the ivfusion node never matched the harness publishers/subscribers")

    def count_publishers_for_fused(self) -> int:
        return sum(1 for sub in self.subscriptions if sub.topic_name.endswith("fused/image") and sub.get_publisher_count())

    def latest_status(self, since: int = 0) -> Any:
        """The newest ivfusion diagnostics status received after the first ``since`` statuses."""
        with self._cond:
            mine = [s for s in self.diagnostics[since:] if "fusion pipeline" in s.name]
        return mine[-1] if mine else None

    def wait_status(self, predicate: Callable[[Any, dict[str, str]], bool], timeout: float, what: str) -> Any:
        def check() -> Any:
            for status in reversed([s for s in self.diagnostics if "fusion pipeline" in s.name][-3:]):
                values = {kv.key: kv.value for kv in status.values}
                if predicate(status, values):
                    return status
            return None

        return self.wait(check, timeout, what)

    def send(self, thermal: Image, rgb: Image) -> None:
        self.pub_thermal.publish(thermal)
        self.pub_rgb.publish(rgb)


def values_of(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture(scope="session")
def ros_context() -> Iterator[SingleThreadedExecutor]:
    rclpy.init()
    executor = SingleThreadedExecutor()
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor
    executor.shutdown()
    rclpy.shutdown()


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


class NodeProcess(PackageNodeProcess):
    """The package's ``ivfusion node`` process (``ivfusion.bags.node_process``) on the test run's domain."""

    def __init__(self, params_file: Path, log: Path, ros_args: list[str] = ()) -> None:
        # tests/conftest.py sets ROS_DOMAIN_ID for the run; the harness's rclpy context uses the same one.
        super().__init__(log, [params_file], int(os.environ.get("ROS_DOMAIN_ID", "0")), list(ros_args))

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture(scope="module")
def node_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def start(params: dict[str, Any], ros_args: list[str] = (), name: str = "node") -> NodeProcess:
        tmp = tmp_path_factory.mktemp(name)
        proc = NodeProcess(write_params(tmp / "params.yaml", params), tmp / "node.log", list(ros_args))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
