"""Backend names → instances. Explicit, no import-for-side-effect registry."""

from __future__ import annotations

from ivfusion.errors import ConfigError
from ivfusion.fusion.base import FusionBackend

BACKENDS = ("classical",)


def create_backend(name: str) -> FusionBackend:
    if name == "classical":
        from ivfusion.fusion.classical import LaplacianPyramidFusion

        return LaplacianPyramidFusion()
    raise ConfigError(f"unknown fusion backend {name!r}; available: {', '.join(BACKENDS)}")
