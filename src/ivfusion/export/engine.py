"""Student ONNX -> TensorRT engine in the engine cache (``onnx_to_engine``), with INT8 calibration from pairs.

Untested in the development workplace (no TensorRT there). The node builds FP16/FP32 engines itself on first
start; INT8 needs calibration images, so it is built offline here and the node only loads it from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ivfusion.engines.cache import CacheEntry, EngineCache


def calibration_batches(pairs_dir: str | Path, embedding: np.ndarray, *, size: tuple[int, int] = (512, 640),
                        limit: int = 64) -> Iterator[dict[str, np.ndarray]]:
    """Student inputs from a pairs folder (``ir/`` + ``vi/``), resized to ``size`` (H, W), one pair per batch."""
    import cv2

    from ivfusion.data.pairs import PairsFolder

    folder = PairsFolder(pairs_dir)
    h, w = size
    for i in range(min(limit, len(folder))):
        sample = folder.load(i)
        t = cv2.resize(sample.thermal, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[None, None] / 255.0
        v = cv2.resize(sample.rgb, (w, h), interpolation=cv2.INTER_AREA).transpose(2, 0, 1).astype(np.float32)[None] / 255.0
        yield {"thermal": t, "visible": v, "preference": np.asarray(embedding, np.float32).reshape(1, -1)}


def onnx_to_engine(onnx_path: str | Path, *, precision: str = "fp16", cache_dir: str | Path | None = None,
                   calibration_dir: str | Path | None = None, embedding: np.ndarray | None = None,
                   size: tuple[int, int] = (512, 640)) -> tuple[CacheEntry, bool]:
    """Build (or find) the student's engine in the cache; (entry, built now?)."""
    from ivfusion.engines.trt import entropy_calibrator, load_or_build, student_profile
    from ivfusion.errors import EngineError

    factory, engines = None, EngineCache(cache_dir)
    if precision == "int8":
        if calibration_dir is None or embedding is None:
            raise EngineError("INT8 needs --calibration PAIRS_DIR (and a preset embedding to calibrate with)")
        table = engines.root / "calibration" / f"{Path(onnx_path).stem}.table"
        factory = lambda: entropy_calibrator(calibration_batches(calibration_dir, embedding, size=size), table)  # noqa: E731
    return load_or_build(onnx_path, engines, precision=precision, profile=student_profile(*size),
                         calibrator_factory=factory)
