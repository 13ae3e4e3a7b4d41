"""Test-wide environment: offline Ultralytics, a private DDS domain per run, loopback-only discovery."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo"))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"  # honoured by pre-Jazzy distros; Jazzy uses the line above
if "IVFUSION_TEST_DOMAIN" not in os.environ:
    # One domain per test run, so parallel runs (or a developer's live robot graph) never cross-talk.
    os.environ["IVFUSION_TEST_DOMAIN"] = str(random.Random(os.getpid()).randint(1, 100))
os.environ["ROS_DOMAIN_ID"] = os.environ["IVFUSION_TEST_DOMAIN"]


@pytest.fixture(scope="session")
def shared_root() -> Path:
    from ivfusion.paths import shared_root as resolve

    return resolve()


@pytest.fixture(scope="session")
def detector_weights(shared_root: Path) -> str:
    """The shared COCO detector when present, else an untrained model built from Ultralytics' yaml (offline)."""
    path = shared_root / "weights" / "yolov8n_int8_openvino_model"
    return str(path) if path.exists() else "yolov8n.yaml"
