"""TensorRT 10 through its Python API: build an engine from ONNX (FP32/FP16/INT8), cache it, run it.

UNTESTED in the development workplace: TensorRT has no installable wheel there and no GPU was lent. The code
follows the TensorRT 10 API (``create_network(0)`` = explicit batch, ``build_serialized_network``, named I/O
tensors with ``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``); its tests run where
``tensorrt`` imports and skip elsewhere.

Buffers are torch CUDA tensors (no pycuda): torch's caching allocator makes per-frame output allocation cheap,
and the student's pre/post-processing already runs on them (:mod:`ivfusion.engines.torch_cuda`).
INT8 uses the legacy entropy calibrator (deprecated in TensorRT 10 in favour of explicit Q/DQ quantisation,
still supported) fed from a pairs folder; for a 0.1-GMAC network FP16 is the recommended precision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivfusion.engines.cache import CacheEntry, EngineCache, EngineKey, file_sha256
from ivfusion.errors import EngineError

_log = logging.getLogger(__name__)
WORKSPACE_BYTES = 1 << 30

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeProfile:
    """Per dynamic input: (min, opt, max) shapes of one TensorRT optimisation profile."""

    shapes: Mapping[str, tuple[Shape, Shape, Shape]]

    def describe(self) -> str:
        """Canonical text for the cache key: an engine built for other shapes is another engine."""
        return ";".join(f"{n}:{'/'.join('x'.join(map(str, s)) for s in mmo)}" for n, mmo in sorted(self.shapes.items()))


def student_profile(height: int = 512, width: int = 640, *, max_height: int = 1088, max_width: int = 1920,
                    text_dim: int = 384) -> ShapeProfile:
    """Batch 1, any H x W from 32 x 32 up to ``max``, tuned for ``height`` x ``width`` (the camera's size)."""
    def mmo(c: int) -> tuple[Shape, Shape, Shape]:
        return (1, c, 32, 32), (1, c, height, width), (1, c, max_height, max_width)

    fixed = (1, text_dim)
    return ShapeProfile({"thermal": mmo(1), "visible": mmo(3), "preference": (fixed, fixed, fixed)})


def trt_version() -> str:
    import tensorrt as trt

    return str(trt.__version__)


def gpu_name(device: int = 0) -> str:
    import torch

    if not torch.cuda.is_available():
        raise EngineError("TensorRT needs a CUDA device; torch sees none")
    return torch.cuda.get_device_name(device)


def engine_key(onnx_path: str | Path, precision: str, profile: ShapeProfile | None, *, extra: str = "") -> EngineKey:
    """The cache key of an engine for ``onnx_path`` on this machine (TensorRT version and GPU read live)."""
    desc = (profile.describe() if profile else "static") + (f";{extra}" if extra else "")
    return EngineKey(file_sha256(onnx_path), trt_version(), gpu_name(), precision, desc)


def build_serialized(onnx_path: str | Path, *, precision: str = "fp16", profile: ShapeProfile | None = None,
                     calibrator: Any = None, workspace_bytes: int = WORKSPACE_BYTES) -> bytes:
    """Parse ``onnx_path`` and build a serialised engine; raises EngineError with the parser's messages."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibrator is None:
            raise EngineError(f"INT8 engine for {onnx_path} needs calibration data (a pairs folder)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
    if profile is not None:
        opt = builder.create_optimization_profile()
        for name, (mn, best, mx) in profile.shapes.items():
            opt.set_shape(name, mn, best, mx)
        config.add_optimization_profile(opt)
        if precision == "int8":
            config.set_calibration_profile(opt)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path} ({precision}); see its log above")
    return bytes(plan)


def load_or_build(onnx_path: str | Path, cache: EngineCache, *, precision: str = "fp16",
                  profile: ShapeProfile | None = None, calibrator_factory: Callable[[], Any] | None = None,
                  ) -> tuple[CacheEntry, bool]:
    """(entry, built): reuse a valid cached engine, else build one, cache it and log the build time.

    Called at start-up (node construction, ``ivfusion export``), never from an image callback.
    """
    key = engine_key(onnx_path, precision, profile)
    entry = cache.lookup(key)
    if entry is not None:
        _log.info("TensorRT engine cache hit: %s (built in %.1f s)", entry.path, entry.build_s)
        return entry, False
    _log.warning("building TensorRT %s engine for %s (first start on this GPU/TensorRT; cached afterwards)",
                 precision, onnx_path)
    started = time.perf_counter()
    calibrator = calibrator_factory() if (precision == "int8" and calibrator_factory) else None
    plan = build_serialized(onnx_path, precision=precision, profile=profile, calibrator=calibrator)
    build_s = time.perf_counter() - started
    entry = cache.store(key, plan, build_s=build_s)
    _log.warning("TensorRT engine built in %.1f s -> %s", build_s, entry.path)
    return entry, True


def entropy_calibrator(batches: Iterable[Mapping[str, np.ndarray]], cache_file: str | Path) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``batches`` (dicts input name -> float32 array, batch 1).

    The calibration table is written to ``cache_file`` and reused on the next build of the same network.
    """
    import tensorrt as trt
    import torch

    cache_path = Path(cache_file)

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._it = iter(batches)
            self._alive: dict[str, torch.Tensor] = {}  # keeps device buffers alive while TensorRT reads them

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = next(self._it)
            except StopIteration:
                return None
            self._alive = {n: torch.from_numpy(np.ascontiguousarray(batch[n], np.float32)).cuda() for n in names}
            return [int(self._alive[n].data_ptr()) for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.exists() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_bytes(bytes(cache))

    return _Calibrator()


class TensorRTRunner:
    """A deserialised engine with one execution context; inputs and outputs are torch CUDA tensors."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, plan_path: str | Path, *, device: int = 0) -> None:
        import tensorrt as trt
        import torch

        self._trt, self._torch = trt, torch
        self.torch_device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self.engine is None:
            raise EngineError(f"TensorRT cannot deserialise {plan_path} (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        to_torch = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                    trt.int64: torch.int64, trt.bool: torch.bool, trt.int8: torch.int8}
        self.dtypes = {n: to_torch[self.engine.get_tensor_dtype(n)] for n in names}

    def run_torch(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Named CUDA tensors in (converted to the engine's dtypes), named CUDA tensors out."""
        torch = self._torch
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise EngineError(f"TensorRT engine inputs {missing} not given (have {sorted(feeds)})")
        keep = []
        for name in self.inputs:
            x = feeds[name].to(self.torch_device, self.dtypes[name]).contiguous()
            keep.append(x)
            if not self.context.set_input_shape(name, tuple(x.shape)):
                raise EngineError(f"TensorRT: input {name} shape {tuple(x.shape)} is outside the engine's profile")
            self.context.set_tensor_address(name, x.data_ptr())
        outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            outs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.torch_device)
            self.context.set_tensor_address(name, outs[name].data_ptr())
        stream = torch.cuda.current_stream(self.torch_device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineError("TensorRT execute_async_v3 failed")
        stream.synchronize()
        return outs

    def run(self, thermal: np.ndarray, visible: np.ndarray, preference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The student runner interface: float32 numpy in and out."""
        torch = self._torch
        feeds = {n: torch.from_numpy(np.ascontiguousarray(a, np.float32))
                 for n, a in zip(("thermal", "visible", "preference"), (thermal, visible, preference))}
        out = self.run_torch({n: feeds[n] for n in self.inputs})
        return out["fused"].float().cpu().numpy(), out["degradation"].float().cpu().numpy()

    def fuse_u8(self, thermal: np.ndarray, bgr: np.ndarray, preference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 frames in and out, pre/post-processing on the GPU around the engine."""
        from ivfusion.engines.torch_cuda import gpu_postprocess, gpu_preprocess

        torch = self._torch
        t, v = gpu_preprocess(thermal, bgr, self.torch_device, torch.float32)
        feeds = {"thermal": t, "visible": v, "preference": torch.from_numpy(preference)}
        out = self.run_torch({n: feeds[n] for n in self.inputs})
        return gpu_postprocess(out["fused"]), out["degradation"][0].float().cpu().numpy()
