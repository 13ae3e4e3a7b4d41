"""The detector -> ONNX / TensorRT ``.engine`` through Ultralytics' own exporter, checked against PyTorch.

Ultralytics' exporter is used rather than a hand-written ``torch.onnx.export`` so the file carries Ultralytics'
metadata (class names, stride, imgsz) and ``YOLO(path)`` / the node's ``detector.weights`` load it like any
other weights. The source must be a PyTorch model (``.pt`` checkpoint, opt-in because it is a pickle, or a
``.yaml`` config for an untrained model); the shared OpenVINO model cannot be re-exported.

``.engine`` files are cached like the student's engines (:class:`~ivfusion.engines.cache.EngineCache`, keyed by
the source file's hash, TensorRT version, GPU and precision), so a second export on the same machine is a
lookup. TensorRT is not installable in the development workplace: that path is untested there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ivfusion.errors import ConfigError, DetectorError, EngineError

DETECTOR_OPSET = 17


def _load_torch_yolo(weights: str, trust_pickled: bool):
    from ultralytics import YOLO

    if weights.endswith(".pt") and not trust_pickled:
        raise DetectorError(f"{weights} is a pickled checkpoint; loading it runs arbitrary code. Pass "
                            "--trust-pickled-weights if you trust the file")
    if not weights.endswith((".pt", ".yaml", ".yml")):
        raise ConfigError(f"export detector: {weights} is not a PyTorch model (.pt or .yaml); Ultralytics exports "
                          "only from PyTorch")
    return YOLO(weights, task="detect")


def export_detector_onnx(weights: str, out_dir: str | Path, *, imgsz: int = 640, dynamic: bool = False,
                         trust_pickled: bool = False) -> tuple[Path, object]:
    """(ONNX path, the Ultralytics model it came from) -- the model for :func:`check_detector_onnx`, since a
    ``.yaml`` source is a fresh random initialisation each time it is loaded.

    Opset 17, no onnxslim (not installed, and nothing may be fetched at run time).
    """
    model = _load_torch_yolo(weights, trust_pickled)
    produced = Path(model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=False,
                                 opset=DETECTOR_OPSET, verbose=False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{Path(weights).stem}_{imgsz}{'_dynamic' if dynamic else ''}.onnx"
    if produced.resolve() != target.resolve():
        shutil.move(str(produced), target)
    import onnx

    onnx.checker.check_model(onnx.load(str(target)))
    return target, model


def check_detector_onnx(model, onnx_path: str | Path, *, imgsz: int = 640, seed: int = 0) -> tuple[float, float]:
    """(max abs error, max abs error / max |reference|) of the raw head output, ONNX Runtime vs PyTorch.

    Compared before NMS (the (1, 4 + classes, anchors) tensor), where a difference is not hidden by thresholds.
    """
    import torch

    from ivfusion.engines.ort import make_session

    net = model.model.eval()  # the ultralytics.YOLO's DetectionModel
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        ref = net(x)
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    session = make_session(onnx_path, threads=1)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != ref.shape:
        raise EngineError(f"{onnx_path}: output shape {got.shape} differs from PyTorch's {ref.shape}")
    err = float(np.abs(got - ref).max())
    return err, err / max(float(np.abs(ref).max()), 1e-12)


def cached_detector_engine(weights: str, *, imgsz: int = 640, half: bool = True, cache_dir: str | Path | None = None,
                           trust_pickled: bool = False) -> tuple[Path, bool, float]:
    """(path of a cached Ultralytics ``.engine``, built now?, build seconds): built once per GPU/TensorRT/precision."""
    import time

    from ivfusion.engines.cache import EngineCache, EngineKey, file_sha256
    from ivfusion.engines.select import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason is not None:  # checked first: Ultralytics would otherwise try to pip-install TensorRT
        raise EngineError(f"cannot build a TensorRT detector engine: {reason}")
    from ivfusion.engines.trt import gpu_name, trt_version

    source = Path(weights)
    if not source.is_file():
        raise DetectorError(f"detector engine: {weights} must be a weights file (its hash keys the cache)")
    cache = EngineCache(cache_dir, plan_name="model.engine")
    key = EngineKey(file_sha256(source), trt_version(), gpu_name(), "fp16" if half else "fp32",
                    f"ultralytics;imgsz={imgsz}")
    entry = cache.lookup(key)
    if entry is not None:
        return entry.path, False, entry.build_s
    model = _load_torch_yolo(str(source), trust_pickled)
    started = time.perf_counter()
    produced = Path(model.export(format="engine", imgsz=imgsz, half=half, device=0, verbose=False))
    build_s = time.perf_counter() - started
    entry = cache.store(key, produced.read_bytes(), build_s=build_s)
    return entry.path, True, build_s
