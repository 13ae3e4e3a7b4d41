"""The real ``ivfusion node`` in its own process, as a robot would run it, for replays and soak tests.

``python -m ivfusion.cli node --params-file ...`` with a log file, a resident-memory sampler (psutil) and a
clean stop: SIGINT (rclpy's shutdown path), then SIGTERM, then SIGKILL, always.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivfusion.paths import REPO_ROOT


def private_domain_id(env: dict[str, str] | None = None) -> int:
    """``$ROS_DOMAIN_ID`` when the user set one, else a random id in 101..200 (the tests use 1..100)."""
    env = os.environ if env is None else env
    value = env.get("ROS_DOMAIN_ID", "").strip()
    if value:
        return int(value)
    return random.Random(os.getpid() ^ time.time_ns()).randint(101, 200)


@dataclass
class MemorySample:
    t_s: float  # time.monotonic()
    rss_mb: float
    cpu_percent: float


@dataclass
class NodeProcess:
    """Starts on construction; ``stop()`` is idempotent and returns the exit code."""

    log_path: Path
    params_files: list[Path]
    domain_id: int
    ros_args: list[str] = field(default_factory=list)
    sample_period_s: float = 1.0
    env_overrides: dict[str, str | None] = field(default_factory=dict)  # None removes the variable
    samples: list[MemorySample] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = dict(os.environ)
        for key, value in self.env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        env["ROS_DOMAIN_ID"] = str(self.domain_id)
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        env["PYTHONUNBUFFERED"] = "1"
        src = str(REPO_ROOT / "src")
        if (REPO_ROOT / "src" / "ivfusion").is_dir():
            env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "ivfusion.cli", "node"]
        if self.params_files:
            cmd += ["--params-file", str(self.params_files[0])]
        extra = [a for p in self.params_files[1:] for a in ("--params-file", str(p))] + list(self.ros_args)
        if extra:
            cmd += ["--ros-args", *extra]
        self.command = cmd
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.started = time.monotonic()
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="node-rss", daemon=True)
        self._sampler.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _sample(self) -> None:
        try:
            import psutil
        except ImportError:  # memory sampling is optional
            return
        try:
            proc = psutil.Process(self.proc.pid)
            proc.cpu_percent(None)
            while not self._stop_sampling.wait(self.sample_period_s):
                with proc.oneshot():
                    rss = proc.memory_info().rss / 2**20
                    cpu = proc.cpu_percent(None)
                self.samples.append(MemorySample(time.monotonic(), rss, cpu))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL; returns the exit code (negative = killed by that signal)."""
        self._stop_sampling.set()
        if self.alive():
            for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    self.proc.send_signal(sig)
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        self._sampler.join(2.0)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode
