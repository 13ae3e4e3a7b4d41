"""The contract every fusion backend meets, so the node, the benchmarks and the evaluation can swap them.

A Protocol rather than a base class: the classical Laplacian baseline, the learned student network and its
ONNX / TensorRT exports share no code, only this call shape, and structural typing lets each live in its
own module (with its own heavy imports) without inheriting from anything here. The frame contract is fixed
here once so no backend has to guess: registration and AGC have already happened, and the output is what
the detector, trained on BGR colour images, consumes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ivfusion.fusion.preference import Preference


@runtime_checkable
class FusionBackend(Protocol):
    """Fuses one registered thermal/visible pair; ``name`` is what the node's parameter and logs use."""

    name: str

    def fuse(self, thermal: np.ndarray, visible: np.ndarray, preference: Preference) -> np.ndarray:
        """``thermal`` (H,W) uint8 registered to ``visible`` (H,W,3) uint8 BGR -> (H,W,3) uint8 BGR.

        The preference may change between calls (it is a run-time parameter), so backends read it per call
        instead of at construction.
        """
        ...


def check_fusion_inputs(thermal: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Validate the backend contract once for every backend; returns thermal as (H, W)."""
    if thermal.ndim == 3 and thermal.shape[2] == 1:
        thermal = thermal[..., 0]
    if thermal.dtype != np.uint8 or thermal.ndim != 2:
        raise ValueError(f"thermal must be (H,W) uint8, got {thermal.shape} {thermal.dtype}")
    if visible.dtype != np.uint8 or visible.ndim != 3 or visible.shape[2] != 3:
        raise ValueError(f"visible must be (H,W,3) uint8 BGR, got {visible.shape} {visible.dtype}")
    if thermal.shape != visible.shape[:2]:
        raise ValueError(f"thermal {thermal.shape} is not registered to visible {visible.shape[:2]}")
    return thermal
