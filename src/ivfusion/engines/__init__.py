"""Inference runtimes behind one front door: ONNX Runtime, TensorRT and PyTorch (CPU or CUDA).

ROS-free and model-agnostic on purpose: the student backend, the export CLI and the benchmarks all choose
and build runtimes here, so ``fusion.runtime: auto`` means the same thing in the node, in ``ivfusion fuse``
and in ``bench/``. Small modules, each importing its heavy dependency only when used:

* :mod:`~ivfusion.engines.select`: which runtimes exist on this machine, ``select_runtime("auto")`` with the
  reason every faster one was skipped;
* :mod:`~ivfusion.engines.ort`: ONNX Runtime sessions with execution-provider choice;
* :mod:`~ivfusion.engines.cache`: the on-disk engine cache (pure Python: key, lookup, invalidation);
* :mod:`~ivfusion.engines.trt`: TensorRT 10 engine build (FP16/INT8) and execution with torch CUDA buffers;
* :mod:`~ivfusion.engines.torch_cuda`: the PyTorch path (FP16, channels_last, optional CUDA graphs).
"""

from ivfusion.engines.select import PRECISIONS, RUNTIMES, RuntimeChoice, RuntimeOptions, select_runtime

__all__ = ["PRECISIONS", "RUNTIMES", "RuntimeChoice", "RuntimeOptions", "select_runtime"]
