"""The learned student as a :class:`~ivfusion.fusion.base.FusionBackend`, on PyTorch or ONNX Runtime.

One front door: ``StudentFusion(model_dir, runtime="auto")`` picks ONNX Runtime when ``student.onnx`` lies
beside the weights (checked against the folder's config on load) and PyTorch otherwise. Both take the same
inputs: thermal (1,1,H,W) and visible RGB (1,3,H,W) as float32 in [0,1], and the preference's 384-d embedding
(presets from ``presets.safetensors``; free text through the sentence encoder, loaded on first use).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ivfusion.errors import ConfigError
from ivfusion.fusion.base import check_fusion_inputs
from ivfusion.fusion.preference import Preference
from ivfusion.paths import REPO_ROOT

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "student"
ONNX_NAME = "student.onnx"
RUNTIMES = ("auto", "torch", "onnxruntime")


def weights_available(model_dir: str | Path = DEFAULT_MODEL_DIR) -> bool:
    d = Path(model_dir)
    return (d / "config.json").exists() and (d / "model.safetensors").exists()


class StudentFusion:
    """Fuses with the student network; ``runtime``: auto (ONNX Runtime if the .onnx exists), torch, onnxruntime."""

    name = "student"

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, runtime: str = "auto", threads: int | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"student runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.model_dir = Path(model_dir)
        if not weights_available(self.model_dir):
            raise ConfigError(f"student weights not found in {self.model_dir} (config.json + model.safetensors)")
        onnx_path = self.model_dir / ONNX_NAME
        if runtime == "auto":
            runtime = "onnxruntime" if onnx_path.exists() else "torch"
        self.runtime = runtime
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        if runtime == "onnxruntime":
            from ivfusion.export.onnx import OnnxStudent

            self._ort = OnnxStudent(onnx_path, threads=threads)
            self._presets = _load_presets(self.model_dir)
        else:
            import torch

            from ivfusion.models.student import StudentFusionNet

            if threads:
                torch.set_num_threads(threads)
            self._model = StudentFusionNet.from_pretrained(self.model_dir)
            self._presets = {k: v.numpy() for k, v in self._model.preset_embeddings.items()}
        # shaped once here, not per frame: (1, 384) float32, what both runtimes take
        self._presets = {k: np.ascontiguousarray(v.reshape(1, -1), np.float32) for k, v in self._presets.items()}

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
        t = thermal.astype(np.float32)[None, None]
        t /= 255.0
        # BGR -> RGB and HWC -> CHW in one strided copy (no cv2.cvtColor, no second contiguous copy)
        rgb = visible[:, :, ::-1].transpose(2, 0, 1).astype(np.float32, order="C")[None]
        rgb /= 255.0
        if self.runtime == "onnxruntime":
            out, deg = self._ort.run(t, rgb, embedding)
        else:
            import torch

            with torch.inference_mode():
                o = self._model(torch.from_numpy(t), torch.from_numpy(rgb), torch.from_numpy(embedding))
                out, deg = o.rgb.numpy(), torch.sigmoid(o.degradation_logits).numpy()
        bgr = np.ascontiguousarray(out[0, ::-1].transpose(1, 2, 0))  # RGB -> BGR, CHW -> HWC
        bgr *= 255.0
        bgr += 0.5
        return np.clip(bgr, 0, 255, out=bgr).astype(np.uint8), deg[0]

    def fuse(self, thermal: np.ndarray, visible: np.ndarray, preference: Preference) -> np.ndarray:
        return self.fuse_array(thermal, visible, self.embedding(preference))


def _load_presets(model_dir: Path) -> dict[str, np.ndarray]:
    path = model_dir / "presets.safetensors"
    if not path.exists():
        raise ConfigError(f"student: {path} is missing (preset embeddings)")
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))
