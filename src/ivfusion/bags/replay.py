"""``ivfusion bag replay``: play a bag into the real node process and record everything it sends back.

The node runs as ``ivfusion node`` in its own process (private ``ROS_DOMAIN_ID`` unless one is set, loopback
discovery unless configured). This process waits for discovery and for the detector to leave ``loading``,
then republishes the bag's thermal/RGB messages **as the recorded CDR bytes** (``Publisher.publish(bytes)``
is rclpy's raw publish), so header stamps, frame ids, encodings and padding reach the node exactly as
recorded. Timing follows the bag's log times divided by ``speed``; ``speed=0`` is as fast as possible with
flow control: after each message that completes a pair (the node's own pairing policy, replayed here), wait
for that pair's ``fused/image`` or a timeout.

``fused/image``, ``detections`` and ``/diagnostics`` are recorded, as received, into an MCAP rosbag2 folder
``OUT/outputs`` (file ``outputs.mcap``) with the receive wall time as log time. Send and receive monotonic
times go to ``inputs.csv``/``outputs.csv``, the node's statuses to ``diagnostics.jsonl``, its memory to
``node_rss.csv``, and the run's facts to ``replay.json``; :mod:`ivfusion.bags.report` turns those into the
report.

After the last message a *flush pair* (the last thermal and RGB messages re-stamped ``sync.max_age + 1 s``
later) makes the node's pairer expire every frame still waiting for a partner, so its final diagnostics
count each input frame exactly once (paired, or a pairing miss). Its output is recorded but left out of
every statistic (``replay.json`` names its stamp).
"""

from __future__ import annotations

import csv
import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivfusion.bags.node_process import NodeProcess, private_domain_id
from ivfusion.bags.sidecar import read_sidecar
from ivfusion.bags.types import DETECTIONS, DIAGNOSTICS, IMAGE, cdr_stamp_ns, cdr_with_stamp, typestore
from ivfusion.errors import IvfusionError
from ivfusion.sync import RGB, THERMAL, ApproximateTimePairer, SyncConfig

STREAMS = ("thermal", "rgb")
OUT_TOPICS = {"fused": "/fused/image", "detections": "/detections", "diagnostics": "/diagnostics"}
STATUS_MARK = "fusion pipeline"  # the node's DiagnosticStatus name ends with it
# Fast DDS's default shared-memory segment (512 KB) cannot hold a 640x480 rgb8 image (921,600 bytes): a
# best-effort image that size from another process falls back to fragmented UDP and is mostly lost (measured
# here: 0-16 of 40 delivered at 10 Hz). The segment belongs to the *writer*, so the replay's participant (the
# camera drivers' stand-in) gets a 32 MB one, as a camera driver for large images should; the node keeps the
# stock configuration. ``--stock-dds`` turns this off.
LARGE_SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor><transport_id>ivfusion_shm_32mb</transport_id><type>SHM</type>
      <segment_size>33554432</segment_size></transport_descriptor>
    <transport_descriptor><transport_id>ivfusion_udp</transport_id><type>UDPv4</type></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="ivfusion_replay" is_default_profile="true">
    <rtps>
      <userTransports><transport_id>ivfusion_shm_32mb</transport_id><transport_id>ivfusion_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def _configure_dds(out: Path, stock: bool) -> tuple[str, dict[str, str | None]]:
    """Environment of this process's DDS participant (read when rclpy creates it); returns a description and
    the environment changes the node process must not inherit."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rmw = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if stock or rmw != "rmw_fastrtps_cpp":
        return f"{rmw}, stock settings", {}
    for var in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        if os.environ.get(var):
            return f"{rmw}, the user's profile {os.environ[var]}", {}
    path = out / "fastdds_replay.xml"
    path.write_text(LARGE_SHM_PROFILE)
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(path)
    return (f"{rmw}; replay publisher: 32 MB shared-memory segment ({path.name}); node: stock settings",
            {"FASTRTPS_DEFAULT_PROFILES_FILE": None})


@dataclass
class ReplayOptions:
    bag: Path
    out: Path
    thermal_topic: str | None = None  # None: the sidecar's, else /thermal/image_raw
    rgb_topic: str | None = None
    speed: float = 1.0
    params_file: Path | None = None
    preference: str | None = None
    weights: str | None = None
    labels_root: Path | None = None
    max_frames: int | None = None  # RGB messages
    timeout_s: float = 2.0  # speed 0: longest wait for one output
    startup_timeout_s: float = 180.0
    record_images: bool = True  # False: fused images are timed but not written (soak runs)
    metrics: bool = True
    metrics_every: int = 1
    grid_frames: int = 4
    progress: bool = True
    domain_id: int | None = None
    rss_period_s: float = 1.0
    stock_dds: bool = False  # True: no large shared-memory segment for the replay's publishers


@dataclass
class _Sent:
    stream: int
    stamp_ns: int
    log_ns: int
    sent_mono_ns: int
    sent_wall_ns: int


@dataclass
class _Received:
    topic: str  # fused | detections
    stamp_ns: int
    recv_mono_ns: int
    recv_wall_ns: int


@dataclass
class _Status:
    recv_mono_ns: int
    level: int
    message: str
    values: dict[str, str]


@dataclass
class _Shared:
    """What the ROS callbacks fill in; guarded by ``cond``."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    received: list[_Received] = field(default_factory=list)
    fused_stamps: set[int] = field(default_factory=set)
    detection_stamps: set[int] = field(default_factory=set)
    statuses: list[_Status] = field(default_factory=list)


@dataclass(frozen=True)
class NodeSettings:
    """What the replay must know of the node's parameters (from its params files, defaults otherwise)."""

    sync: SyncConfig
    diagnostics_period_s: float = 1.0
    reliable_inputs: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # every parameter the files set, dotted names


def node_settings(params_files: list[Path]) -> NodeSettings:
    """The node's sync, diagnostics period and input QoS from its params files (later files win)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    for path in params_files:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        for section in doc.values():
            if isinstance(section, dict) and "ros__parameters" in section:
                walk("", section["ros__parameters"])
    config = SyncConfig(queue_size=int(flat.get("sync.queue_size", 10)),
                        slop_ns=int(float(flat.get("sync.slop", 0.05)) * 1e9),
                        max_age_ns=int(float(flat.get("sync.max_age", 2.0)) * 1e9))
    return NodeSettings(config, float(flat.get("diagnostics_period", 1.0)),
                        str(flat.get("qos.reliability", "best_effort")) == "reliable", flat)


class _Recorder(threading.Thread):
    """Writes (topic, log time, CDR bytes) to the outputs bag off the executor thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="replay-recorder", daemon=True)
        from rosbags.rosbag2 import StoragePlugin, Writer

        store = typestore()
        self.path = path
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conns = {
            OUT_TOPICS["fused"]: self._writer.add_connection(OUT_TOPICS["fused"], IMAGE, typestore=store),
            OUT_TOPICS["detections"]: self._writer.add_connection(OUT_TOPICS["detections"], DETECTIONS,
                                                                  typestore=store),
            OUT_TOPICS["diagnostics"]: self._writer.add_connection(OUT_TOPICS["diagnostics"], DIAGNOSTICS,
                                                                   typestore=store),
        }
        self.queue: queue.Queue[tuple[str, int, bytes] | None] = queue.Queue()
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        while (item := self.queue.get()) is not None:
            topic, log_ns, raw = item
            try:
                self._writer.write(self._conns[topic], log_ns, raw)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - reported after the run, never kills the replay
                self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.join(30)
        self._writer.close()


class _RosSide:
    """rclpy in a private context: raw publishers for the inputs, raw subscriptions for the outputs."""

    def __init__(self, domain_id: int, thermal_topic: str, rgb_topic: str, shared: _Shared,
                 recorder: _Recorder, record_images: bool, reliable_inputs: bool) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("ivfusion_replay", context=self.context)
        self.shared, self._recorder, self._record_images = shared, recorder, record_images
        # As a camera driver would: sensor-data QoS, or reliable when the node asks for reliable inputs (a
        # reliable writer to a best-effort reader loses large fragmented images on Fast DDS).
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10 if reliable_inputs else 5,
                             reliability=ReliabilityPolicy.RELIABLE if reliable_inputs else
                             ReliabilityPolicy.BEST_EFFORT)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = (self.node.create_publisher(Image, thermal_topic, pub_qos),
                     self.node.create_publisher(Image, rgb_topic, pub_qos))
        self.subs = [
            self.node.create_subscription(Image, OUT_TOPICS["fused"], self._output("fused"), out_qos, raw=True),
            self.node.create_subscription(Detection2DArray, OUT_TOPICS["detections"], self._output("detections"),
                                          out_qos, raw=True),
        ]
        self._deserialize, self._diag_type = deserialize_message, DiagnosticArray
        self.subs.append(self.node.create_subscription(DiagnosticArray, OUT_TOPICS["diagnostics"], self._on_diag,
                                                       50, raw=True))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, name="replay-executor", daemon=True)
        self._spin.start()

    def _output(self, kind: str):  # noqa: ANN202
        topic = OUT_TOPICS[kind]

        def callback(raw: bytes) -> None:
            mono, wall = time.monotonic_ns(), time.time_ns()
            stamp = cdr_stamp_ns(raw)
            if kind != "fused" or self._record_images:
                self._recorder.queue.put((topic, wall, raw))
            with self.shared.cond:
                self.shared.received.append(_Received(kind, stamp, mono, wall))
                (self.shared.fused_stamps if kind == "fused" else self.shared.detection_stamps).add(stamp)
                self.shared.cond.notify_all()

        return callback

    def _on_diag(self, raw: bytes) -> None:
        mono, wall = time.monotonic_ns(), time.time_ns()
        self._recorder.queue.put((OUT_TOPICS["diagnostics"], wall, raw))
        msg = self._deserialize(raw, self._diag_type)
        for status in msg.status:
            if STATUS_MARK not in status.name:
                continue
            level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
            values = {kv.key: kv.value for kv in status.values}
            with self.shared.cond:
                self.shared.statuses.append(_Status(mono, level, status.message, values))
                self.shared.cond.notify_all()

    def matched(self) -> bool:
        return all(p.get_subscription_count() for p in self.pubs) and all(
            s.get_publisher_count() for s in self.subs[:1] + self.subs[2:])

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            self._rclpy.shutdown(context=self.context)


def _bag_messages(bag: Path, topics: tuple[str, str]) -> tuple[Any, list[Any], dict[str, int]]:
    from rosbags.highlevel import AnyReader

    reader = AnyReader([bag], default_typestore=typestore())
    reader.open()
    try:
        if not reader.is2:
            raise IvfusionError(f"bag {bag}: replay needs a rosbag2 bag (CDR messages); this is a ROS 1 bag")
        conns = [c for c in reader.connections if c.topic in topics]
        missing = set(topics) - {c.topic for c in conns}
        if missing:
            raise IvfusionError(f"bag {bag} has no topic {sorted(missing)}; it has "
                                f"{sorted({c.topic for c in reader.connections})} (use --thermal-topic/--rgb-topic)")
        bad = [c for c in conns if c.msgtype != IMAGE]
        if bad:
            raise IvfusionError(f"bag {bag}: {bad[0].topic} is {bad[0].msgtype}, not {IMAGE}")
    except IvfusionError:
        reader.close()
        raise
    counts = {t: sum(c.msgcount for c in conns if c.topic == t) for t in topics}
    return reader, conns, counts


def _limit(messages: Iterator[tuple[int, int, int, bytes]], max_rgb: int | None,
           slop_ns: int) -> Iterator[tuple[int, int, int, bytes]]:
    """(stream, log ns, stamp ns, raw) up to the ``max_rgb``-th RGB message, plus thermal frames that may still
    pair with it."""
    rgb_seen, last_rgb_stamp = 0, None
    for stream, log_ns, stamp, raw in messages:
        if max_rgb is not None and rgb_seen >= max_rgb:
            if stream == RGB or last_rgb_stamp is None or stamp > last_rgb_stamp + slop_ns:
                return
        elif stream == RGB:
            rgb_seen += 1
            last_rgb_stamp = stamp
        yield stream, log_ns, stamp, raw


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def run_replay(opts: ReplayOptions) -> dict[str, Any]:
    """Play, record and write the raw run files; returns the run facts (also ``OUT/replay.json``)."""
    from tqdm import tqdm

    if opts.speed < 0:
        raise IvfusionError(f"--speed must be >= 0 (0 = as fast as the node allows), got {opts.speed}")
    bag = Path(opts.bag)
    if not bag.exists():
        raise IvfusionError(f"bag {bag} does not exist")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "outputs").exists():
        raise IvfusionError(f"{out / 'outputs'} already exists; choose an empty --out folder")
    sidecar = read_sidecar(bag)
    thermal_topic = opts.thermal_topic or (sidecar.thermal_topic if sidecar and sidecar.thermal_topic else
                                           "/thermal/image_raw")
    rgb_topic = opts.rgb_topic or (sidecar.rgb_topic if sidecar and sidecar.rgb_topic else "/rgb/image_raw")
    topics = (thermal_topic, rgb_topic)

    params_files = [Path(opts.params_file)] if opts.params_file else []
    overrides: dict[str, Any] = {}
    if opts.preference is not None:
        overrides["preference"] = opts.preference
    if opts.weights is not None:
        overrides["detector"] = {"weights": str(opts.weights)}
    if overrides:
        override_file = out / "replay_params.yaml"
        override_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": overrides}}))
        params_files.append(override_file)
    settings = node_settings(params_files)
    sync_config, diag_period = settings.sync, settings.diagnostics_period_s

    reader, conns, counts = _bag_messages(bag, topics)
    domain_id = opts.domain_id if opts.domain_id is not None else private_domain_id()
    remaps = ["-r", f"thermal/image_raw:={thermal_topic}", "-r", f"rgb/image_raw:={rgb_topic}"]
    shared = _Shared()
    sent: list[_Sent] = []
    facts: dict[str, Any] = {
        "bag": str(bag.resolve()), "thermal_topic": thermal_topic, "rgb_topic": rgb_topic, "speed": opts.speed,
        "domain_id": domain_id, "sync": asdict(sync_config), "diagnostics_period_s": diag_period,
        "reliable_inputs": settings.reliable_inputs, "node_params": settings.params,
        "bag_messages": counts, "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "sidecar": bool(sidecar), "errors": [],
    }
    facts["dds"], node_env = _configure_dds(out, opts.stock_dds)
    recorder: _Recorder | None = None
    node: NodeProcess | None = None
    ros: _RosSide | None = None
    try:
        recorder = _Recorder(out / "outputs")
        recorder.start()
        node = NodeProcess(out / "node.log", params_files, domain_id, remaps, sample_period_s=opts.rss_period_s,
                           env_overrides=node_env)
        facts["node_command"] = node.command
        ros = _RosSide(domain_id, thermal_topic, rgb_topic, shared, recorder, opts.record_images,
                       settings.reliable_inputs)
        detector_state = _wait_ready(ros, node, shared, opts.startup_timeout_s)
        facts["detector_at_start"] = detector_state
        facts["ready_after_s"] = time.monotonic() - node.started
        last_raw = _play(opts, reader, conns, topics, ros, node, shared, sent, sync_config, facts, tqdm)
        _flush_and_settle(ros, shared, sent, last_raw, sync_config, diag_period, facts, detector_state)
    except KeyboardInterrupt:
        facts["errors"].append("interrupted by the user")
    except IvfusionError as exc:
        facts["errors"].append(str(exc))
    finally:  # the node process is always stopped, whatever happened
        reader.close()
        if node is not None:
            facts["node_alive_at_end"] = node.alive()
            facts["node_exit_code"] = node.stop()
        if ros is not None:
            ros.close()
        if recorder is not None:
            recorder.close()
            if recorder.error is not None:
                facts["errors"].append(f"recording failed: {recorder.error}")
    facts["recorded_messages"] = recorder.written if recorder is not None else 0
    _write_run_files(out, node, sent, shared, facts)
    return facts


def _wait_ready(ros: _RosSide, node: NodeProcess, shared: _Shared, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        if not node.alive():
            raise IvfusionError(f"the node exited with code {node.proc.returncode} during start-up; its log "
                                f"ends:\n{node.log_tail()}")
        with shared.cond:
            if shared.statuses:
                state = shared.statuses[-1].values.get("detector", "unknown")
        if state not in ("unknown", "loading") and ros.matched():
            return state
        time.sleep(0.05)
    raise IvfusionError(f"the node was not ready within {timeout_s:.0f} s (detector: {state}, topics matched: "
                        f"{ros.matched()}); its log ends:\n{node.log_tail()}")


def _play(opts: ReplayOptions, reader: Any, conns: list[Any], topics: tuple[str, str], ros: _RosSide,
          node: NodeProcess, shared: _Shared, sent: list[_Sent], sync_config: SyncConfig, facts: dict[str, Any],
          tqdm: Any) -> dict[int, bytes]:
    """Publish the bag's messages; returns the last raw message of each stream (for the flush pair)."""
    stream_of = {c.id: (THERMAL if c.topic == topics[THERMAL] else RGB) for c in conns}
    messages = ((stream_of[c.id], log_ns, cdr_stamp_ns(raw), raw)
                for c, log_ns, raw in reader.messages(connections=conns))
    limited = _limit(messages, opts.max_frames, sync_config.slop_ns)
    total = sum(facts["bag_messages"].values())
    if opts.max_frames is not None:
        total = min(total, 2 * opts.max_frames * max(1, round(facts["bag_messages"][topics[THERMAL]] /
                                                             max(1, facts["bag_messages"][topics[RGB]]))))
    pairer: ApproximateTimePairer[None] = ApproximateTimePairer(sync_config)
    waited_for: int | None = None
    last_raw: dict[int, bytes] = {}
    timeouts = 0
    first_log: int | None = None
    t0 = time.monotonic_ns()
    bar = tqdm(total=total, desc=f"replay x{opts.speed:g}", unit="msg", disable=not opts.progress)
    try:
        for i, (stream, log_ns, stamp, raw) in enumerate(limited):
            if first_log is None:
                first_log = log_ns
            if opts.speed > 0:
                target = t0 + (log_ns - first_log) / opts.speed
                while (delay := target - time.monotonic_ns()) > 0:
                    time.sleep(min(delay / 1e9, 0.05))
            data = raw if isinstance(raw, bytes) else bytes(raw)
            sent.append(_Sent(stream, stamp, log_ns, time.monotonic_ns(), time.time_ns()))
            ros.pubs[stream].publish(data)
            last_raw[stream] = data
            bar.update(1)
            if opts.speed == 0:
                pair = pairer.add(stream, stamp, None)
                if pair is not None and (waited_for is None or pair.rgb_stamp_ns > waited_for):
                    timeout = opts.timeout_s if waited_for is not None else max(opts.timeout_s, 30.0)
                    waited_for = pair.rgb_stamp_ns
                    with shared.cond:
                        if not shared.cond.wait_for(lambda s=waited_for: s in shared.fused_stamps, timeout):
                            timeouts += 1
            if i % 20 == 0 and not node.alive():
                raise IvfusionError(f"the node died during the replay (exit code {node.proc.returncode})")
    finally:
        bar.close()
        facts["play_s"] = (time.monotonic_ns() - t0) / 1e9
        facts["flow_control_timeouts"] = timeouts
        facts["t0_mono_ns"] = t0
    return last_raw


def _flush_and_settle(ros: _RosSide, shared: _Shared, sent: list[_Sent], last_raw: dict[int, bytes],
                      sync_config: SyncConfig, diag_period: float, facts: dict[str, Any], detector_state: str) -> None:
    """Wait for the last outputs, send the flush pair, then take the node's final diagnostics."""
    if not sent:
        raise IvfusionError("the bag had no messages to replay")
    # Outputs stop arriving: the node is idle (no output for a second after the last input).
    quiet_ns, deadline = 1_000_000_000, time.monotonic() + 30.0
    while time.monotonic() < deadline:
        with shared.cond:
            last_out = shared.received[-1].recv_mono_ns if shared.received else 0
        if time.monotonic_ns() - max(last_out, sent[-1].sent_mono_ns) >= quiet_ns:
            break
        time.sleep(0.05)
    if THERMAL not in last_raw or RGB not in last_raw:
        raise IvfusionError("the replay sent no thermal or no RGB message; nothing can pair")
    flush_stamp = max(m.stamp_ns for m in sent) + sync_config.max_age_ns + 1_000_000_000
    facts["flush_stamp_ns"] = flush_stamp
    for stream in (THERMAL, RGB):
        ros.pubs[stream].publish(cdr_with_stamp(last_raw[stream], flush_stamp))
    with shared.cond:
        got = shared.cond.wait_for(lambda: flush_stamp in shared.fused_stamps, 10.0)
        if got and detector_state == "ready":
            shared.cond.wait_for(lambda: flush_stamp in shared.detection_stamps, 5.0)
    facts["flush_output_received"] = bool(got)
    # Final diagnostics: the first status whose `published` counts every fused image received (the flush one
    # included), i.e. one produced after the node published its last output.
    with shared.cond:
        n_fused = len(shared.fused_stamps)

        def final() -> _Status | None:
            for st in reversed(shared.statuses):
                if int(st.values.get("published", -1)) >= n_fused:
                    return st
            return None

        status = shared.cond.wait_for(final, 3 * diag_period + 2.0)
        if status is None and shared.statuses:
            status = shared.statuses[-1]
            facts["errors"].append("no diagnostics after the last output; the final counters may be early")
    facts["final_diagnostics"] = status.values if status else {}
    facts["final_level"] = status.level if status else None
    facts["final_message"] = status.message if status else ""


def _write_run_files(out: Path, node: NodeProcess | None, sent: list[_Sent], shared: _Shared,
                     facts: dict[str, Any]) -> None:
    _write_csv(out / "inputs.csv", ["stream", "stamp_ns", "bag_log_ns", "sent_mono_ns", "sent_wall_ns"],
               [[STREAMS[m.stream], m.stamp_ns, m.log_ns, m.sent_mono_ns, m.sent_wall_ns] for m in sent])
    with shared.cond:
        received = list(shared.received)
        statuses = list(shared.statuses)
    _write_csv(out / "outputs.csv", ["topic", "stamp_ns", "recv_mono_ns", "recv_wall_ns"],
               [[r.topic, r.stamp_ns, r.recv_mono_ns, r.recv_wall_ns] for r in received])
    with open(out / "diagnostics.jsonl", "w") as f:
        for st in statuses:
            f.write(json.dumps({"recv_mono_ns": st.recv_mono_ns, "level": st.level, "message": st.message,
                                "values": st.values}) + "\n")
    _write_csv(out / "node_rss.csv", ["t_mono_s", "rss_mb", "cpu_percent"],
               [[f"{s.t_s:.3f}", f"{s.rss_mb:.2f}", f"{s.cpu_percent:.1f}"] for s in (node.samples if node else [])])
    facts["node_started_mono_s"] = node.started if node else None
    (out / "replay.json").write_text(json.dumps(facts, indent=1, default=str))
