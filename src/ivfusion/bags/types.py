"""Message types for bags: the ROS 2 Jazzy typestore plus the node's output types (vision_msgs, diagnostic_msgs).

vision_msgs is not in rosbags' Jazzy store, so its ``.msg`` definitions are registered from the project's
interface package (``interfaces/vision_msgs/msg``) or, in an installed tree, from ``<prefix>/share``.
Registered definitions are written into the bag with each connection, so any reader (``ros2 bag``,
Foxglove, rosbags' AnyReader) can decode the recorded messages without vision_msgs installed.
"""

from __future__ import annotations

import struct
import sys
from functools import lru_cache
from pathlib import Path

from ivfusion.errors import IvfusionError
from ivfusion.paths import REPO_ROOT

IMAGE = "sensor_msgs/msg/Image"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"


def _msg_dirs(package: str) -> list[Path]:
    dirs = [d for d in (REPO_ROOT / "interfaces" / package / "msg", Path(sys.prefix) / "share" / package / "msg")
            if d.is_dir()]
    if dirs:
        return dirs
    try:  # a sourced ROS install
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(package)) / "msg"
    except (ImportError, LookupError, OSError):
        return []
    return [share] if share.is_dir() else []


@lru_cache(maxsize=1)
def jazzy_typestore():
    """The stock ROS 2 Jazzy typestore: all an image bag needs (no vision_msgs .msg files required)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


@lru_cache(maxsize=1)
def typestore():
    """Jazzy types + vision_msgs + diagnostic_msgs (each registered only if the store lacks it)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)  # its own store: registering must not touch jazzy_typestore()
    for package, probe in (("vision_msgs", DETECTIONS), ("diagnostic_msgs", DIAGNOSTICS)):
        if probe in store.types:
            continue
        dirs = _msg_dirs(package)
        if not dirs:
            raise IvfusionError(f"no .msg definitions found for {package} (looked in interfaces/{package}/msg and "
                                f"{Path(sys.prefix) / 'share' / package / 'msg'})")
        types: dict = {}
        for path in sorted(dirs[0].glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        store.register(types)
    return store


def header_stamp_ns(msg) -> int:  # noqa: ANN001 - any deserialised message with a std_msgs/Header
    """The header stamp of a message deserialised by rosbags (``ivfusion.ros.messages.stamp_to_ns`` needs rclpy)."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def cdr_stamp_ns(raw: bytes | bytearray | memoryview) -> int:
    """The header stamp of a CDR-serialised message whose first field is a ``std_msgs/Header``."""
    little = raw[1] == 1  # encapsulation: 0x0001 CDR_LE, 0x0000 CDR_BE
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


def cdr_with_stamp(raw: bytes | bytearray | memoryview, stamp_ns: int) -> bytes:
    """A copy of a serialised header-first message with its header stamp replaced."""
    buf = bytearray(raw)
    little = buf[1] == 1
    struct.pack_into("<iI" if little else ">iI", buf, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return bytes(buf)
