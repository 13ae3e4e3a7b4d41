"""The PyTorch runtime: CPU as the reference, CUDA with FP16, channels_last and optional CUDA graphs.

On a GPU the uint8 frames are uploaded as they are (4x fewer bytes than float32) and conversion, BGR<->RGB,
scaling and rounding run on the device around the network (:func:`gpu_preprocess`, :func:`gpu_postprocess`),
so only uint8 crosses the bus in both directions; the TensorRT runner reuses the same two functions.

CUDA graphs remove the per-kernel launch overhead that dominates a 0.1-GMAC network: a graph is captured per
input size (at most :data:`MAX_GRAPHS`, newest kept) with static input/output buffers and replayed per frame.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from ivfusion.errors import EngineError

MAX_GRAPHS = 4


def gpu_preprocess(thermal: np.ndarray, bgr: np.ndarray, device: Any, dtype: Any) -> tuple[Any, Any]:
    """uint8 (H,W) thermal + (H,W,3) BGR on the host -> (1,1,H,W), (1,3,H,W) RGB in [0,1] on ``device``."""
    import torch

    th = torch.from_numpy(thermal).to(device, non_blocking=True)
    vi = torch.from_numpy(bgr).to(device, non_blocking=True)
    t = th.to(dtype).div_(255.0)[None, None]
    rgb = vi.flip(-1).permute(2, 0, 1).to(dtype).div_(255.0)[None].contiguous()
    return t, rgb


def gpu_postprocess(rgb: Any) -> np.ndarray:
    """(1,3,H,W) RGB in [0,1] on the device -> (H,W,3) uint8 BGR on the host, rounded like the CPU path."""
    import torch

    out = rgb[0].flip(0).permute(1, 2, 0).float().mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return out.contiguous().cpu().numpy()


def to_channels_last(model: Any) -> Any:
    """NHWC for the 4-D weights only. ``Module.to(memory_format=channels_last)`` also converts 5-D tensors and
    fails on them (the student's bilateral-grid ``depth_index`` buffer is 5-D), which silently dropped the CUDA
    runtime to the CPU fallback until this was run on a GPU."""
    import torch

    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


class TorchRunner:
    """A StudentFusionNet on ``device``: ``run`` on float arrays, ``fuse_u8`` on uint8 frames (GPU pre/post)."""

    name = "torch"

    def __init__(self, model: Any, *, device: str = "cpu", precision: str = "fp16", channels_last: bool | None = None,
                 cuda_graphs: bool = False, threads: int | None = None) -> None:
        import torch

        self._torch = torch
        self.torch_device = torch.device(device)
        self.device = self.torch_device.type
        if self.device == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"torch runtime: device {device!r} requested but no CUDA device is visible")
        if self.device == "cpu" and threads:
            torch.set_num_threads(threads)
        on_gpu = self.device == "cuda"
        self.dtype = torch.float16 if on_gpu and precision in ("fp16", "int8") else torch.float32
        self.precision = "fp16" if self.dtype == torch.float16 else "fp32"
        model = model.eval().to(self.torch_device, dtype=self.dtype)
        if channels_last if channels_last is not None else on_gpu:  # NHWC convolutions use tensor cores in FP16
            model = to_channels_last(model)
        self.model = model
        self.cuda_graphs = bool(cuda_graphs and on_gpu)
        self._graphs: OrderedDict[tuple[int, ...], tuple[Any, tuple[Any, ...], tuple[Any, Any]]] = OrderedDict()

    def _forward(self, t: Any, v: Any, e: Any) -> tuple[Any, Any]:
        out = self.model(t, v, e)
        return out.rgb, self._torch.sigmoid(out.degradation_logits)

    def _graphed(self, t: Any, v: Any, e: Any) -> tuple[Any, Any]:
        torch = self._torch
        key = tuple(t.shape) + tuple(v.shape) + tuple(e.shape)
        entry = self._graphs.get(key)
        if entry is None:
            static = (t.clone(), v.clone(), e.clone())
            side = torch.cuda.Stream(self.torch_device)
            side.wait_stream(torch.cuda.current_stream(self.torch_device))
            with torch.cuda.stream(side):  # warm-up off the capture, as the CUDA-graphs docs require
                for _ in range(3):
                    self._forward(*static)
            torch.cuda.current_stream(self.torch_device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self._forward(*static)
            entry = (graph, static, outputs)
            self._graphs[key] = entry
            while len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        graph, static, outputs = entry
        for dst, src in zip(static, (t, v, e)):
            dst.copy_(src)
        graph.replay()
        return outputs

    def run_torch(self, t: Any, v: Any, e: Any) -> tuple[Any, Any]:
        """Tensors already on the device and in ``dtype`` -> (rgb, degradation probabilities) on the device."""
        with self._torch.inference_mode():
            if self.cuda_graphs:
                return self._graphed(t, v, e)
            return self._forward(t, v, e)

    def run(self, thermal: np.ndarray, visible: np.ndarray, preference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 numpy in, float32 numpy out: the interface every student runner shares."""
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.torch_device, self.dtype)
                for a in (thermal, visible, preference)]
        rgb, deg = self.run_torch(*args)
        return rgb.float().cpu().numpy(), deg.float().cpu().numpy()

    def fuse_u8(self, thermal: np.ndarray, bgr: np.ndarray, preference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 frames in and out with pre/post-processing on the GPU (only meant for ``device == "cuda"``)."""
        with self._torch.inference_mode():
            t, v = gpu_preprocess(thermal, bgr, self.torch_device, self.dtype)
            e = self._torch.from_numpy(preference).to(self.torch_device, self.dtype)
            rgb, deg = self.run_torch(t, v, e)
            return gpu_postprocess(rgb), deg[0].float().cpu().numpy()
