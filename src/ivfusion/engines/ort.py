"""ONNX Runtime sessions: one place for session options and execution-provider choice.

The pip ``onnxruntime`` wheel has only the CPU provider; ``onnxruntime-gpu`` adds CUDA and (with TensorRT
libraries installed) TensorRT providers. :func:`providers_for` asks the installed build what it has, so the
same code uses the GPU where it exists and the CPU elsewhere, and ONNX Runtime's TensorRT provider caches its
engines in the same cache root as :mod:`ivfusion.engines.trt` (its own sub-folder, its own keying).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivfusion.errors import EngineError

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def available_providers() -> list[str]:
    """Providers of the installed ONNX Runtime build (empty when onnxruntime is not importable)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def trt_provider_options(precision: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """TensorRT EP options. The engine cache is always on (``cache_dir`` None = the project's cache root): ORT
    builds TensorRT engines when a session first runs, which takes minutes on a Jetson, and without a cache it
    did that again on every node start, inside the frame path."""
    from ivfusion.engines.cache import default_cache_dir

    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "ort_trt"
    return {"trt_fp16_enable": precision in ("fp16", "int8"), "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(path)}


def providers_for(*, gpu: bool = True, precision: str = "fp16", cache_dir: str | Path | None = None) -> list[Any]:
    """Ordered provider list: TensorRT EP, CUDA EP (when built in and ``gpu``), always ending with the CPU.

    ONNX Runtime tries them in order per node, so a partial GPU build still runs (on the CPU) rather than fail.
    """
    have = set(available_providers())
    out: list[Any] = []
    if gpu and TRT in have:
        opts = trt_provider_options(precision, cache_dir)
        Path(opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        out.append((TRT, opts))
    if gpu and CUDA in have:
        out.append((CUDA, {"device_id": 0}))
    out.append(CPU)
    return out


def make_session(path: str | Path, *, threads: int | None = None, providers: list[Any] | None = None):
    """An ``InferenceSession`` tuned for a node that shares its cores with a detector.

    ``threads``: intra-op threads (None = ONNX Runtime's default, one per core). Spinning is off: in the node
    the detector runs right after fusion on the same cores, and ORT's spin-waiting threads would keep burning
    them between calls and starve it (measured: 8 of 12 demo frames dropped).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise EngineError(f"ONNX file {path} does not exist")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers or [CPU])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
        raise EngineError(f"ONNX Runtime cannot load {path}: {exc}") from exc


def session_device(session) -> str:
    """``cuda`` when the session's first provider is a GPU one, else ``cpu`` (what diagnostics report)."""
    first = session.get_providers()[0] if session.get_providers() else CPU
    return "cuda" if first in (CUDA, TRT) else "cpu"
