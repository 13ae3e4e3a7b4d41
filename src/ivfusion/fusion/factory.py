"""Backend names → instances. Explicit, no import-for-side-effect registry.

``student`` is the learned network (ONNX Runtime when ``models/student/student.onnx`` exists, else PyTorch);
``classical`` is the Laplacian-pyramid baseline that is always available. ``default_backend()`` is ``student``
when the shipped weights exist, else ``classical``; asking for ``student`` where it cannot load (no weights,
no runtime) falls back to ``classical`` with a warning unless ``fallback=False``. ``options`` choose the
student's inference runtime (``fusion.runtime`` etc.; :mod:`ivfusion.engines.select`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ivfusion.engines.select import RuntimeOptions
from ivfusion.errors import ConfigError, EngineError
from ivfusion.fusion.base import FusionBackend

BACKENDS = ("student", "classical")
_log = logging.getLogger(__name__)


def default_backend() -> str:
    from ivfusion.fusion.student import weights_available

    return "student" if weights_available() else "classical"


def create_backend(name: str, *, fallback: bool = True, options: RuntimeOptions | None = None,
                   model_dir: str | Path | None = None) -> FusionBackend:
    """``model_dir``: the student's folder (None or "" = the shipped ``models/student``), so a candidate student
    (a new training or distillation run) runs in the node without replacing the shipped one."""
    if name == "classical":
        from ivfusion.fusion.classical import LaplacianPyramidFusion

        return LaplacianPyramidFusion()
    if name == "student":
        from ivfusion.fusion.student import DEFAULT_MODEL_DIR, StudentFusion

        try:
            # one intra-op thread: in the node the detector needs the other core (docs/benchmarks.md)
            return StudentFusion(model_dir or DEFAULT_MODEL_DIR, options=options or RuntimeOptions(threads=1))
        except (ConfigError, EngineError, ImportError, OSError) as exc:
            if not fallback:
                raise
            _log.warning("fusion backend 'student' unavailable (%s); falling back to 'classical'", exc)
            return create_backend("classical")
    raise ConfigError(f"unknown fusion backend {name!r}; available: {', '.join(BACKENDS)}")
