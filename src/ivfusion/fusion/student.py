"""The learned student as a :class:`~ivfusion.fusion.base.FusionBackend`, on TensorRT, ONNX Runtime or PyTorch.

One front door: ``StudentFusion(model_dir, runtime="auto")`` takes the first available runtime in
:mod:`ivfusion.engines.select`'s order (TensorRT, PyTorch CUDA, ONNX Runtime, PyTorch CPU; ONNX-based ones
need ``student.onnx`` beside the weights, checked against the folder's config on load) and keeps the others
as fallbacks: a runtime that fails at run time (a lost GPU, an engine error) hands over to the next one, with
the reason in :attr:`StudentFusion.fallback_reason`, instead of taking the node down. All runtimes take the
same inputs: thermal (1,1,H,W) and visible RGB (1,3,H,W) as float32 in [0,1], and the preference's 384-d
embedding (presets from ``presets.safetensors``; free text through the sentence encoder, loaded on first use).
On CUDA, conversion and scaling run on the GPU around the network (``fuse_u8``), so only uint8 crosses the bus.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ivfusion.engines.select import RUNTIMES, RuntimeChoice, RuntimeOptions, runtime_candidates
from ivfusion.errors import ConfigError, EngineError
from ivfusion.fusion.base import check_fusion_inputs
from ivfusion.fusion.preference import Preference
from ivfusion.paths import REPO_ROOT

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "student"
ONNX_NAME = "student.onnx"
__all__ = ["DEFAULT_MODEL_DIR", "ONNX_NAME", "RUNTIMES", "StudentFusion", "StudentRunner", "weights_available"]
_log = logging.getLogger(__name__)


def weights_available(model_dir: str | Path = DEFAULT_MODEL_DIR) -> bool:
    d = Path(model_dir)
    return (d / "config.json").exists() and (d / "model.safetensors").exists()


class StudentRunner(Protocol):
    """What every runtime offers the backend; GPU runners add ``fuse_u8`` (uint8 in/out, pre/post on the GPU)."""

    name: str
    device: str

    def run(self, thermal: np.ndarray, visible: np.ndarray, preference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ...


class StudentFusion:
    """Fuses with the student network on the runtime ``runtime`` (auto, tensorrt, onnxruntime, torch) picks."""

    name = "student"

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, runtime: str = "auto", threads: int | None = None,
                 *, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions(runtime=runtime, threads=threads)  # validates the runtime name
        self.model_dir = Path(model_dir)
        if not weights_available(self.model_dir):
            raise ConfigError(f"student weights not found in {self.model_dir} (config.json + model.safetensors)")
        self.onnx_path = self.model_dir / ONNX_NAME
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model: Any = None  # the PyTorch network, loaded only for the torch runtime (or presets without a file)
        self._pending: list[RuntimeChoice] = runtime_candidates(self.options.runtime, onnx_path=self.onnx_path)
        if not self._pending:
            raise ConfigError(f"student: no runtime available in {self.model_dir} for {self.options.runtime!r}")
        self.runtime_notes: list[str] = list(self._pending[0].skipped)  # why faster runtimes were skipped
        self.fallback_reason: str | None = None  # set when a runtime failed at run time and the next took over
        self.engine_build_s: float | None = None  # TensorRT build time when this start built the engine
        self._runner: StudentRunner = self._load_next()
        presets = _load_presets(self.model_dir)
        if presets is None:  # no cached file: the network's own (loads PyTorch once)
            presets = {k: v.numpy() for k, v in self._torch_model().preset_embeddings.items()}
        # shaped once here, not per frame: (1, 384) float32, what every runtime takes
        self._presets = {k: np.ascontiguousarray(v.reshape(1, -1), np.float32) for k, v in presets.items()}

    @property
    def runtime(self) -> str:
        """Name of the runtime in use now (tensorrt, onnxruntime, torch)."""
        return self._runner.name

    @property
    def device(self) -> str:
        return self._runner.device

    def describe(self) -> str:
        """One line for logs and diagnostics, e.g. ``onnxruntime (cpu)``."""
        return f"{self._runner.name} ({self._runner.device})"

    # ------------------------------------------------------------------------------------------ runtimes
    def _torch_model(self) -> Any:
        if self._model is None:
            from ivfusion.models.student import StudentFusionNet

            self._model = StudentFusionNet.from_pretrained(self.model_dir)
        return self._model

    def _load_next(self) -> StudentRunner:
        """Load the first remaining candidate that loads; each failure is recorded as a note and skipped."""
        while self._pending:
            choice = self._pending.pop(0)
            try:
                return self._load(choice)
            except (ConfigError, EngineError, ImportError, OSError, RuntimeError) as exc:
                note = f"{choice.label}: failed to load ({type(exc).__name__}: {exc})"
                _log.warning("student runtime %s", note)
                self.runtime_notes.append(note)
        raise ConfigError(f"student: no runtime could load ({'; '.join(self.runtime_notes)})")

    def _load(self, choice: RuntimeChoice) -> StudentRunner:
        opts = self.options
        if choice.name == "onnxruntime":
            from ivfusion.engines.ort import providers_for
            from ivfusion.export.onnx import OnnxStudent

            providers = providers_for(gpu=choice.device == "cuda", precision=opts.precision,
                                      cache_dir=opts.engine_cache or None)
            return OnnxStudent(self.onnx_path, threads=opts.threads, providers=providers)
        if choice.name == "tensorrt":
            from ivfusion.engines.cache import EngineCache
            from ivfusion.engines.trt import TensorRTRunner, load_or_build, student_profile

            if opts.precision == "int8":  # calibration data is an offline step, not a node start-up one
                entry, built = _cached_int8_engine(self.onnx_path, EngineCache(opts.engine_cache or None)), False
            else:
                entry, built = load_or_build(self.onnx_path, EngineCache(opts.engine_cache or None),
                                             precision=opts.precision, profile=student_profile())
            if built:
                self.engine_build_s = entry.build_s
            return TensorRTRunner(entry.path)
        from ivfusion.engines.torch_cuda import TorchRunner

        return TorchRunner(self._torch_model(), device=choice.device, precision=opts.precision,
                           cuda_graphs=opts.cuda_graphs, threads=opts.threads)

    # ------------------------------------------------------------------------------------------ embedding
    def embedding(self, preference: Preference) -> np.ndarray:
        """(1, 384) float32: the cached preset embedding, or the encoded free text (LRU of 64 texts)."""
        if preference.preset is not None:
            if preference.preset not in self._presets:
                raise ConfigError(f"student: {self.model_dir} has no cached embedding for preset {preference.preset!r}")
            return self._presets[preference.preset]
        text = preference.text
        with self._lock:
            if text in self._text_cache:
                self._text_cache.move_to_end(text)
                return self._text_cache[text]
        from ivfusion.models.text import shared_encoder

        vec = shared_encoder().encode([text]).numpy().astype(np.float32)
        with self._lock:
            self._text_cache[text] = vec
            while len(self._text_cache) > 64:
                self._text_cache.popitem(last=False)
        return vec

    # ------------------------------------------------------------------------------------------- fusion
    def fuse_array(self, thermal: np.ndarray, visible: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Lower level: the embedding given directly (interpolating presets, distillation experiments)."""
        return self.fuse_and_estimate(thermal, visible, embedding)[0]

    def fuse_and_estimate(self, thermal: np.ndarray, visible: np.ndarray,
                          embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fused (H,W,3) uint8 BGR, degradation probabilities (len(DEGRADATIONS),)) from one network pass."""
        thermal = check_fusion_inputs(thermal, visible)
        while True:
            runner = self._runner
            try:
                return self._run(runner, thermal, visible, embedding)
            except Exception as exc:  # a runtime failing at run time: hand over to the next one if any
                with self._lock:
                    if self._runner is runner:  # another thread may have switched already
                        reason = f"{runner.name} ({runner.device}) failed at run time ({type(exc).__name__}: {exc})"
                        try:
                            self._runner = self._load_next()
                        except ConfigError:
                            raise exc from None
                        self.fallback_reason = f"{reason}; using {self.describe()}"
                        _log.warning("student: %s", self.fallback_reason)

    @staticmethod
    def _run(runner: StudentRunner, thermal: np.ndarray, visible: np.ndarray,
             embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if runner.device == "cuda" and hasattr(runner, "fuse_u8"):
            return runner.fuse_u8(thermal, visible, embedding)  # type: ignore[attr-defined]
        t = thermal.astype(np.float32)[None, None]
        t /= 255.0
        # BGR -> RGB and HWC -> CHW in one strided copy (no cv2.cvtColor, no second contiguous copy)
        rgb = visible[:, :, ::-1].transpose(2, 0, 1).astype(np.float32, order="C")[None]
        rgb /= 255.0
        out, deg = runner.run(t, rgb, embedding)
        # RGB planes -> interleaved BGR (cv2.merge), then x255 + round + saturate to uint8 in one SIMD pass:
        # 0.25 ms at 640x512 against 0.95 ms for transpose/scale/clip/astype in numpy (docs/benchmarks.md)
        planes = out[0]
        return cv2.convertScaleAbs(cv2.merge([planes[2], planes[1], planes[0]]), alpha=255.0), deg[0]

    def fuse(self, thermal: np.ndarray, visible: np.ndarray, preference: Preference) -> np.ndarray:
        return self.fuse_array(thermal, visible, self.embedding(preference))


def _cached_int8_engine(onnx_path: Path, cache: Any) -> Any:
    """An INT8 engine must already be in the cache (``ivfusion export student --engine --precision int8``)."""
    from ivfusion.engines.trt import engine_key, student_profile

    entry = cache.lookup(engine_key(onnx_path, "int8", student_profile()))
    if entry is None:
        raise EngineError(f"no cached INT8 engine for {onnx_path} in {cache.root}; build it with `ivfusion export "
                          "student --engine --precision int8 --calibration PAIRS_DIR`")
    return entry


def _load_presets(model_dir: Path) -> dict[str, np.ndarray] | None:
    """The cached preset embeddings, or None when the folder has no ``presets.safetensors``."""
    path = model_dir / "presets.safetensors"
    if not path.exists():
        return None
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))
