"""Which runtime runs a model here: ``auto`` picks the fastest available one and says why it skipped the others.

Order for ``auto`` (fastest first, where the machine has it): TensorRT (needs the ``tensorrt`` module, a CUDA
GPU and an ONNX export), PyTorch on CUDA (FP16), ONNX Runtime (GPU providers when built in, else CPU; on the
2-core dev CPU it runs the student 2x faster than PyTorch), PyTorch on the CPU. An explicit request goes first
and is followed by the ``auto`` order as fallbacks, so a runtime that is missing at start, or fails at run time,
hands over to the next instead of stopping the node. Every skip carries its reason, which the node logs at
WARN and shows on ``/diagnostics``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from ivfusion.errors import ConfigError, EngineError

RUNTIMES = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp16", "fp32", "int8")
# (runtime, device) in auto order; device None = whatever the runtime finds (ONNX Runtime providers)
_AUTO_ORDER: tuple[tuple[str, str | None], ...] = (("tensorrt", "cuda"), ("torch", "cuda"), ("onnxruntime", None),
                                                   ("torch", "cpu"))


@dataclass(frozen=True)
class RuntimeOptions:
    """What the user asked for (node parameters ``fusion.runtime``, ``fusion.precision``, ``fusion.engine_cache``)."""

    runtime: str = "auto"
    precision: str = "fp16"  # GPU runtimes only; CPU runtimes always run fp32
    engine_cache: str = ""  # "" = engines.cache.default_cache_dir()
    threads: int | None = None  # CPU intra-op threads
    cuda_graphs: bool = False  # PyTorch CUDA path: replay captured graphs (fixed input size per graph)

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class RuntimeChoice:
    name: str  # tensorrt | onnxruntime | torch
    device: str  # cuda | cpu
    skipped: tuple[str, ...] = field(default=())  # why each runtime ahead of this one was not used

    @property
    def label(self) -> str:
        return f"{self.name} ({self.device})"


def cuda_unavailable_reason() -> str | None:
    """None when PyTorch sees a CUDA device, else why not (no GPU, CPU-only build)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA device visible to torch {torch.__version__}"
    return None


def tensorrt_unavailable_reason() -> str | None:
    """None when the TensorRT Python API imports and a CUDA device exists for its buffers."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python module is not installed"
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # a broken install raises OSError/ImportError from its shared libraries
        return f"tensorrt fails to import ({type(exc).__name__}: {exc})"
    return cuda_unavailable_reason()


def _ort_device() -> tuple[str | None, str | None]:
    """(device, reason-if-unavailable) of ONNX Runtime."""
    from ivfusion.engines.ort import CUDA, TRT, available_providers

    have = available_providers()
    if not have:
        return None, "onnxruntime is not installed"
    return ("cuda" if (CUDA in have or TRT in have) and cuda_unavailable_reason() is None else "cpu"), None


def _unavailable(name: str, device: str | None, onnx_path: Path | None) -> tuple[str, str | None]:
    if name in ("tensorrt", "onnxruntime") and (onnx_path is None or not Path(onnx_path).exists()):
        return device or "cpu", f"no ONNX export ({onnx_path or 'none given'}; run `ivfusion export student`)"
    if name == "tensorrt":
        return "cuda", tensorrt_unavailable_reason()
    if name == "onnxruntime":
        dev, reason = _ort_device()
        return dev or "cpu", reason
    if device == "cuda":
        return "cuda", cuda_unavailable_reason()
    return "cpu", None if importlib.util.find_spec("torch") else "torch is not installed"


def runtime_candidates(requested: str = "auto", *, onnx_path: str | Path | None = None) -> list[RuntimeChoice]:
    """Available runtimes in the order to try them (the first is the choice, the rest are run-time fallbacks)."""
    return _plan(requested, onnx_path)[0]


def _plan(requested: str, onnx_path: str | Path | None) -> tuple[list[RuntimeChoice], list[str]]:
    if requested not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {requested!r}")
    order = list(_AUTO_ORDER)
    if requested != "auto":
        order = [o for o in order if o[0] == requested] + [o for o in order if o[0] != requested]
    path = Path(onnx_path) if onnx_path else None
    out: list[RuntimeChoice] = []
    skipped: list[str] = []
    for name, device in order:  # the (name, device) pairs are distinct: ONNX Runtime resolves to one device
        dev, reason = _unavailable(name, device, path)
        if reason is not None:
            skipped.append(f"{name} ({dev}): {reason}")
            continue
        out.append(RuntimeChoice(name, dev, tuple(skipped)))
    return out, skipped


def select_runtime(requested: str = "auto", *, onnx_path: str | Path | None = None) -> RuntimeChoice:
    """The runtime to use for ``requested``; raises EngineError naming every reason when none is available."""
    found, skipped = _plan(requested, onnx_path)
    if not found:
        raise EngineError(f"no inference runtime available for {requested!r}: " + "; ".join(skipped))
    return found[0]
