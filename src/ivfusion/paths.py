"""Where third-party data lives: the shared folder is configurable and never copied into the repo."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "IVFUSION_SHARED"
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_root() -> Path:
    """``$IVFUSION_SHARED`` if set, else ``../shared`` beside the repository (or the working directory)."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env).expanduser()
    for base in (REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared"
        if candidate.is_dir():
            return candidate
    return REPO_ROOT.parent / "shared"


def default_detector_weights() -> Path:
    """The shared COCO YOLOv8n (OpenVINO INT8) detector."""
    return shared_root() / "weights" / "yolov8n_int8_openvino_model"
