"""``ivfusion bag from-pairs``: a camera-like bag from a pairs folder (``ir/`` + ``vi/``).

The folder is looped into a scene timeline: RGB message ``k`` is captured at ``k / rate`` and shows source
pair ``k``; thermal message ``j`` is captured at ``j / thermal_rate`` and shows the source pair nearest in
scene time, so two cameras at different rates see the same scene. Each stream then gets, independently:

* a header stamp = capture time (+ ``clock_offset_ms`` for thermal) + gaussian jitter (``jitter_ms`` std);
* a log (bag receive) time = header stamp + a transport delay of 1-3 ms, so replay timing follows the stamps;
* a seeded chance ``drop`` of never being written (a lost frame).

All randomness comes from ``seed``, one generator per stream and purpose, so changing one option does not
reshuffle the others. RGB is written as ``rgb8``; thermal as ``mono8`` or, with ``mono16``, as realistic
16-bit counts ``7000 + 8 * v`` plus +-2 counts of noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ivfusion.bags.images import STORAGES, ImageBagWriter
from ivfusion.bags.sidecar import FrameSource, FramesSidecar, write_sidecar
from ivfusion.errors import ConfigError
from ivfusion.sync import RGB, THERMAL

MS = 1_000_000
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000  # fixed, so a seed reproduces the bag bit for bit
MONO16_BASE, MONO16_GAIN, MONO16_NOISE = 7000, 8, 2


@dataclass(frozen=True)
class FromPairsOptions:
    frames: int | None = None  # RGB messages before drops; None = one pass over the folder
    rate: float = 10.0
    thermal_rate: float | None = None  # None = rate
    clock_offset_ms: float = 0.0
    jitter_ms: float = 0.0
    drop: float = 0.0
    mono16: bool = False
    thermal_size: tuple[int, int] | None = None  # (width, height)
    seed: int = 0
    storage: str = "mcap"
    thermal_topic: str = "/thermal/image_raw"
    rgb_topic: str = "/rgb/image_raw"
    thermal_frame_id: str = "thermal_optical_frame"
    rgb_frame_id: str = "rgb_optical_frame"
    start_ns: int = DEFAULT_START_NS

    def __post_init__(self) -> None:
        if self.frames is not None and self.frames < 1:
            raise ConfigError(f"--frames must be >= 1, got {self.frames}")
        for name in ("rate", "thermal_rate"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of Hz, got {value}")
        if not 0.0 <= self.drop < 1.0:
            raise ConfigError(f"--drop must be in [0, 1), got {self.drop}")
        if self.jitter_ms < 0:
            raise ConfigError(f"--jitter-ms must be >= 0, got {self.jitter_ms}")
        if self.storage not in STORAGES:
            raise ConfigError(f"--storage must be one of {list(STORAGES)}, got {self.storage!r}")
        if self.thermal_size is not None and min(self.thermal_size) < 1:
            raise ConfigError(f"--thermal-size must be positive, got {self.thermal_size}")


@dataclass(frozen=True)
class Scheduled:
    """One message of the generated bag."""

    stream: int  # THERMAL or RGB
    index: int  # position in its stream before drops
    source: int  # index into the looped folder sequence
    stamp_ns: int
    log_time_ns: int


def parse_size(text: str) -> tuple[int, int]:
    """``"640x512"`` -> (640, 512)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size must look like WIDTHxHEIGHT (e.g. 640x512), got {text!r}") from None
    if w < 1 or h < 1:
        raise ConfigError(f"size must be positive, got {text!r}")
    return w, h


def schedule(opts: FromPairsOptions, frames: int) -> list[Scheduled]:
    """Every message that is written (drops removed), sorted by log time."""
    thermal_rate = opts.thermal_rate or opts.rate
    duration_s = frames / opts.rate
    counts = (max(1, math.ceil(duration_s * thermal_rate - 1e-9)), frames)
    rates = (thermal_rate, opts.rate)
    offsets = (opts.clock_offset_ms, 0.0)
    out: list[Scheduled] = []
    for stream in (THERMAL, RGB):
        n, rate = counts[stream], rates[stream]
        jitter_rng = np.random.default_rng([opts.seed, stream, 1])
        drop_rng = np.random.default_rng([opts.seed, stream, 2])
        delay_rng = np.random.default_rng([opts.seed, stream, 3])
        jitter = jitter_rng.normal(0.0, opts.jitter_ms, n) if opts.jitter_ms > 0 else np.zeros(n)
        dropped = drop_rng.random(n) < opts.drop
        delays = delay_rng.uniform(1.0, 3.0, n)
        for i in range(n):
            if dropped[i]:
                continue
            capture_s = i / rate
            source = min(frames - 1, int(round(capture_s * opts.rate)))
            stamp = opts.start_ns + int(round((capture_s * 1e3 + offsets[stream] + jitter[i]) * MS))
            out.append(Scheduled(stream, i, source, stamp, stamp + int(round(delays[i] * MS))))
    out.sort(key=lambda m: (m.log_time_ns, m.stream))
    return out


def _resized_thermal(ir: np.ndarray, opts: FromPairsOptions) -> np.ndarray:
    if opts.thermal_size is not None and (ir.shape[1], ir.shape[0]) != opts.thermal_size:
        return cv2.resize(ir, opts.thermal_size, interpolation=cv2.INTER_LINEAR)
    return ir


def _thermal_image(ir: np.ndarray, opts: FromPairsOptions, noise_rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``ir`` already at the output size (``_resized_thermal``); mono8 as is, or 16-bit counts with fresh noise."""
    if not opts.mono16:
        return ir, "mono8"
    counts = ir.astype(np.uint16) * MONO16_GAIN + (MONO16_BASE - MONO16_NOISE)
    counts += noise_rng.integers(0, 2 * MONO16_NOISE + 1, ir.shape, dtype=np.uint16)
    return counts, "mono16"


def from_pairs(pairs_dir: str | Path, out_bag: str | Path, opts: FromPairsOptions,
               progress: Callable[[Iterator[Scheduled], int], Iterator[Scheduled]] | None = None) -> FramesSidecar:
    """Write the bag and its sidecar; returns the sidecar (message counts are its table sizes)."""
    from ivfusion.data import PairsFolder

    folder = PairsFolder(pairs_dir)
    root = str(folder.root.resolve())
    n_frames = opts.frames or len(folder)
    messages = schedule(opts, n_frames)

    @lru_cache(maxsize=64)
    def load(index: int):  # noqa: ANN202 - (PairSample, its thermal at the output size), once per folder pair
        sample = folder.load(index)
        return sample, _resized_thermal(sample.thermal, opts)

    noise_rng = np.random.default_rng([opts.seed, THERMAL, 4])
    sidecar = FramesSidecar(dataset_root=root, thermal_topic=opts.thermal_topic, rgb_topic=opts.rgb_topic,
                            options={k: v for k, v in asdict(opts).items() if k != "storage"} | {"frames": n_frames,
                                                                                                 "pairs_dir": root})
    topics = (opts.thermal_topic, opts.rgb_topic)
    frame_ids = (opts.thermal_frame_id, opts.rgb_frame_id)
    stream_iter: Iterator[Scheduled] = iter(messages)
    if progress is not None:
        stream_iter = progress(stream_iter, len(messages))
    with ImageBagWriter(out_bag, topics, storage=opts.storage) as writer:
        for m in stream_iter:
            sample, thermal = load(m.source % len(folder))  # keyed by folder pair: a looped folder is read once
            source = FrameSource(sample.stem, root)
            if m.stream == THERMAL:
                array, encoding = _thermal_image(thermal, opts, noise_rng)
                sidecar.thermal_frames[m.stamp_ns] = source
            else:
                array, encoding = sample.rgb, "rgb8"
                sidecar.frames[m.stamp_ns] = source
            writer.write(topics[m.stream], array, encoding, m.stamp_ns, frame_ids[m.stream], m.log_time_ns)
    write_sidecar(out_bag, sidecar)
    return sidecar
