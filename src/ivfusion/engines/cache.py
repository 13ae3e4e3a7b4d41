"""On-disk cache of built engines (TensorRT plans, Ultralytics ``.engine`` files), keyed so a stale one is never used.

A TensorRT engine is only valid for the exact network, TensorRT version, GPU model and precision it was
built for, and building one takes from seconds (the student) to minutes (a detector, INT8 calibration). So
the node builds once, outside the image callback, and every later start loads the cached file. The key is
everything that invalidates an engine: the SHA-256 of the ONNX file, the TensorRT version, the GPU name, the
precision, and a free-form ``profile`` (input-shape profile, workspace, anything else the builder was told).

Pure Python and no TensorRT import, so the key, lookup and invalidation logic is tested for real on any
machine. Each entry is a folder ``<root>/<slug>/`` holding ``engine.plan`` and ``meta.json`` (the full key,
the plan's size and SHA-256, the build time). ``meta.json`` is written last and both files are replaced
atomically, so a build killed half-way leaves an entry that :meth:`EngineCache.lookup` rejects rather than a
truncated plan that would crash the deserialiser. Limit: only the ``.onnx`` file is hashed; a model with
external data files must be re-exported (new hash) when its weights change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ivfusion.errors import EngineError

PLAN_NAME = "engine.plan"
META_NAME = "meta.json"
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$IVFUSION_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/ivfusion/engines`` (``~/.cache/...``)."""
    env = os.environ.get("IVFUSION_ENGINE_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ivfusion" / "engines"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (detector ONNX files are tens of MB)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as exc:
        raise EngineError(f"cannot hash {path}: {exc}") from exc
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:40] or "unknown"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. Two keys are equal iff the same engine may be reused."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    precision: str  # fp32 | fp16 | int8
    profile: str = ""  # input-shape profile and builder settings, e.g. "thermal:1x1x512x640;ws=1GiB"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.onnx_sha256):
            raise EngineError(f"engine key: onnx_sha256 must be 64 hex digits, got {self.onnx_sha256!r}")
        if self.precision not in ("fp32", "fp16", "int8"):
            raise EngineError(f"engine key: precision must be fp32, fp16 or int8, got {self.precision!r}")

    @property
    def digest(self) -> str:
        """Stable hash of the whole key (a folder name must not depend on dict order or a Python hash seed)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def slug(self) -> str:
        """Folder name: readable at a glance (``ls`` shows which GPU and precision), unique by the digest."""
        return (f"{self.onnx_sha256[:12]}-trt{_slug(self.trt_version)}-{_slug(self.gpu_name)}-{self.precision}"
                f"-{self.digest[:8]}")


@dataclass(frozen=True)
class CacheEntry:
    path: Path  # the engine file
    key: EngineKey
    build_s: float
    created: float  # Unix time


class EngineCache:
    """Engines under ``root``: :meth:`lookup` a key, :meth:`store` a freshly built plan, :meth:`invalidate` one."""

    def __init__(self, root: str | Path | None = None, *, plan_name: str = PLAN_NAME) -> None:
        """``plan_name``: the engine file's name in each entry (Ultralytics needs the ``.engine`` suffix)."""
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.plan_name = plan_name

    def entry_dir(self, key: EngineKey) -> Path:
        return self.root / key.slug

    def lookup(self, key: EngineKey) -> CacheEntry | None:
        """The valid entry for ``key``, or None. An entry that is incomplete, corrupt or for another key is removed."""
        d = self.entry_dir(key)
        if not d.exists():
            return None
        reason = None
        try:
            meta = json.loads((d / META_NAME).read_text())
            plan = d / self.plan_name
            if meta.get("format") != CACHE_FORMAT:
                reason = f"cache format {meta.get('format')!r}"
            elif EngineKey(**meta["key"]) != key:
                reason = "key mismatch"
            elif not plan.is_file() or plan.stat().st_size != meta["size"]:
                reason = "engine file missing or truncated"
            elif file_sha256(plan) != meta["sha256"]:
                reason = "engine file corrupt (SHA-256 differs)"
        except (OSError, ValueError, KeyError, TypeError, EngineError) as exc:
            reason = f"unreadable metadata ({type(exc).__name__}: {exc})"
        if reason is not None:
            self.invalidate(key)
            return None
        return CacheEntry(d / self.plan_name, key, float(meta.get("build_s", 0.0)), float(meta.get("created", 0.0)))

    def store(self, key: EngineKey, plan: bytes, *, build_s: float) -> CacheEntry:
        """Write ``plan`` for ``key`` atomically (temp file + rename; metadata last) and return its entry."""
        if not plan:
            raise EngineError(f"refusing to cache an empty engine for {key.slug}")
        d = self.entry_dir(key)
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / META_NAME).unlink(missing_ok=True)  # the entry is invalid until the new metadata lands
            _atomic_write(d / self.plan_name, plan)
            created = time.time()
            meta = {"format": CACHE_FORMAT, "key": asdict(key), "size": len(plan),
                    "sha256": hashlib.sha256(plan).hexdigest(), "build_s": build_s, "created": created}
            _atomic_write(d / META_NAME, (json.dumps(meta, indent=2) + "\n").encode())
        except OSError as exc:
            raise EngineError(f"cannot write engine cache entry {d}: {exc}") from exc
        return CacheEntry(d / self.plan_name, key, build_s, created)

    def invalidate(self, key: EngineKey) -> bool:
        """Remove the entry for ``key``; True if there was one."""
        d = self.entry_dir(key)
        if not d.exists():
            return False
        shutil.rmtree(d, ignore_errors=True)
        return True

    def entries(self) -> list[CacheEntry]:
        """Every entry with readable metadata (for ``ls``-style reports and pruning old TensorRT versions)."""
        out = []
        for meta_path in sorted(self.root.glob(f"*/{META_NAME}")):
            try:
                meta = json.loads(meta_path.read_text())
                out.append(CacheEntry(meta_path.parent / self.plan_name, EngineKey(**meta["key"]),
                                      float(meta.get("build_s", 0.0)), float(meta.get("created", 0.0))))
            except (OSError, ValueError, KeyError, TypeError, EngineError):
                continue
        return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
