"""Image-pair bags through ``rosbags``: rosbag2_py is not on PyPI, and the core must not need ROS to read a bag.

Messages are (de)serialised with the ROS 2 Jazzy typestore, so bags recorded by ``ros2 bag record`` on a robot
and bags written here are the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivfusion.bags.types import IMAGE, header_stamp_ns, jazzy_typestore
from ivfusion.errors import IvfusionError
from ivfusion.imaging.encodings import decode_image, encode_image
from ivfusion.sync import RGB, THERMAL, ApproximateTimePairer, SyncConfig


@dataclass(frozen=True)
class BagPair:
    """One thermal/RGB pair as stored in a bag: pixels, encodings and header stamps.

    When writing, ``log_time_ns`` is the bag's receive time (default: the header stamp); when reading,
    ``rgb_frame_id`` is the RGB header's frame_id.
    """

    thermal: np.ndarray
    thermal_encoding: str
    rgb: np.ndarray
    rgb_encoding: str
    thermal_stamp_ns: int
    rgb_stamp_ns: int
    log_time_ns: int | None = None
    rgb_frame_id: str = ""


BagWriteFrame = BagPair  # what write_image_bag takes; the same record read_image_pairs yields


def decode_image_msg(msg) -> np.ndarray:  # noqa: ANN001 - a sensor_msgs/Image deserialised by rosbags
    """The pixels of a deserialised ``sensor_msgs/Image`` (may be a view of ``msg.data``)."""
    return decode_image(msg.data, msg.width, msg.height, msg.step, msg.encoding, bool(msg.is_bigendian))


STORAGES = ("mcap", "sqlite3")


def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise IvfusionError(f"bag storage must be one of {list(plugins)}, got {storage!r}")
    return plugins[storage]


class ImageBagWriter:
    """A rosbag2 folder of ``sensor_msgs/Image`` topics, one message at a time, each with its own header
    stamp and log (receive) time, so streams may run at different rates or lose frames.

    Use as a context manager; refuses to overwrite an existing bag.
    """

    def __init__(self, path: str | Path, topics: Iterable[str], *, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import Writer

        self.path = Path(path)
        plugin = _storage_plugin(storage)
        if self.path.exists():
            raise IvfusionError(f"bag {self.path} already exists; remove it or choose another path")
        self._store = jazzy_typestore()
        self._types = tuple(self._store.types[n] for n in (IMAGE, "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._topics = list(topics)
        self._conns: dict[str, object] = {}
        self.counts: dict[str, int] = {t: 0 for t in self._topics}

    def __enter__(self) -> ImageBagWriter:
        self._writer.open()
        for topic in self._topics:
            self._conns[topic] = self._writer.add_connection(topic, IMAGE, typestore=self._store)
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def serialize(self, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> memoryview:
        """CDR bytes of the ``sensor_msgs/Image`` for ``array`` (what ``rclpy`` would put on the wire)."""
        Image, Header, Time = self._types
        data, step = encode_image(array, encoding)
        header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)
        msg = Image(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding,
                    is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8))
        return self._store.serialize_cdr(msg, IMAGE)

    def write(self, topic: str, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str,
              log_time_ns: int | None = None) -> None:
        if topic not in self._conns:
            raise IvfusionError(f"bag {self.path}: topic {topic} was not declared (have {self._topics})")
        raw = self.serialize(array, encoding, stamp_ns, frame_id)
        self._writer.write(self._conns[topic], stamp_ns if log_time_ns is None else log_time_ns, raw)
        self.counts[topic] += 1


def write_image_bag(
    path: str | Path,
    frames: Iterable[BagWriteFrame],
    *,
    thermal_topic: str = "/thermal/image_raw",
    rgb_topic: str = "/rgb/image_raw",
    thermal_frame_id: str = "thermal_optical_frame",
    rgb_frame_id: str = "rgb_optical_frame",
    storage: str = "mcap",
) -> int:
    """Write a rosbag2 folder; returns the number of pairs written. Refuses to overwrite an existing bag."""
    count = 0
    with ImageBagWriter(path, (thermal_topic, rgb_topic), storage=storage) as writer:
        for f in frames:
            t_log = f.log_time_ns if f.log_time_ns is not None else f.thermal_stamp_ns
            r_log = f.log_time_ns if f.log_time_ns is not None else f.rgb_stamp_ns
            writer.write(thermal_topic, f.thermal, f.thermal_encoding, f.thermal_stamp_ns, thermal_frame_id, t_log)
            writer.write(rgb_topic, f.rgb, f.rgb_encoding, f.rgb_stamp_ns, rgb_frame_id, r_log)
            count += 1
    return count


def read_image_pairs(
    path: str | Path,
    *,
    thermal_topic: str = "/thermal/image_raw",
    rgb_topic: str = "/rgb/image_raw",
    slop_ns: int = 50_000_000,
) -> Iterator[BagPair]:
    """Yield thermal/RGB pairs in bag order, paired by header stamp with the node's own pairer."""
    from rosbags.highlevel import AnyReader

    pairer: ApproximateTimePairer = ApproximateTimePairer(SyncConfig(queue_size=30, slop_ns=slop_ns))
    with AnyReader([Path(path)], default_typestore=jazzy_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in (thermal_topic, rgb_topic)]
        if {c.topic for c in conns} != {thermal_topic, rgb_topic}:
            raise IvfusionError(f"bag {path} needs topics {thermal_topic} and {rgb_topic}; it has "
                                f"{sorted({c.topic for c in reader.connections})}")
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stream = THERMAL if conn.topic == thermal_topic else RGB
            pair = pairer.add(stream, header_stamp_ns(msg), (decode_image_msg(msg), msg.encoding, msg.header.frame_id))
            if pair is not None:
                (t_img, t_enc, _), (r_img, r_enc, r_frame) = pair.thermal, pair.rgb
                yield BagPair(t_img, t_enc, r_img, r_enc, pair.thermal_stamp_ns, pair.rgb_stamp_ns, rgb_frame_id=r_frame)
