"""Property codes and the latent fusion prior: the targets that make PALDM's candidates differ in known ways.

A property code is (thermal contribution, visible detail), each in {less, standard, more}: 9 codes, index
``3 * thermal + detail``. Each code has a parametric fusion of the sources (pixel space, luminance in [0, 1]):

    w      = clip(t0 + g * saliency(T), 0, 1)            how much of the thermal side a pixel takes
    A      = m T + (1 - m) max(T, V)                     the thermal side (m > 0 also darkens/brightens background)
    base   = w A + (1 - w) V
    target = clip(base + k * D, 0, 1)                    D = choose-max-abs 5x5 high-pass of T and V

with (t0, m) set by the thermal level and the detail gain k by the detail level (k < 0 smooths, k > 0
sharpens). It is the student's intensity target (``ivfusion.training.losses``) with a thermal *and* a detail
axis, re-implemented here so the teacher's targets do not move when the student's loss is tuned. Encoded by the
codec it is the "latent fusion prior" that PALDM is trained to sample from (DPOFusion's PALDM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ivfusion.errors import ConfigError
from ivfusion.models.student import box_mean

LEVELS: tuple[str, ...] = ("less", "standard", "more")
NUM_CODES = len(LEVELS) ** 2
SALIENCY_KERNEL, SALIENCY_FLOOR, DETAIL_KERNEL = 31, 32.0 / 255.0, 5

#: Plain-language description of each level, used by the ``text`` oracle (prompt -> nearest code).
THERMAL_TEXT = {
    "less": "mostly the visible camera image, thermal information kept subtle",
    "standard": "a balanced mix of thermal and visible information",
    "more": "hot objects and people bright and high contrast from the thermal camera",
}
DETAIL_TEXT = {
    "less": "smooth and soft, low noise, little texture",
    "standard": "natural amount of texture and edges",
    "more": "sharp edges and fine texture details",
}


@dataclass(frozen=True)
class PropertyCode:
    thermal: str = "standard"
    detail: str = "standard"

    def __post_init__(self) -> None:
        for axis, level in (("thermal", self.thermal), ("detail", self.detail)):
            if level not in LEVELS:
                raise ConfigError(f"property code: {axis} level must be one of {LEVELS}, got {level!r}")

    @property
    def index(self) -> int:
        return 3 * LEVELS.index(self.thermal) + LEVELS.index(self.detail)

    @property
    def name(self) -> str:
        return f"T-{self.thermal}/D-{self.detail}"

    @property
    def text(self) -> str:
        return f"{THERMAL_TEXT[self.thermal]}; {DETAIL_TEXT[self.detail]}"

    @staticmethod
    def from_index(index: int) -> PropertyCode:
        if not 0 <= index < NUM_CODES:
            raise ConfigError(f"property code index must be in [0, {NUM_CODES}), got {index}")
        return PropertyCode(LEVELS[index // 3], LEVELS[index % 3])


ALL_CODES: tuple[PropertyCode, ...] = tuple(PropertyCode.from_index(i) for i in range(NUM_CODES))
STANDARD = PropertyCode()


@dataclass(frozen=True)
class PriorConfig:
    """Knobs of the parametric prior per level (less, standard, more)."""

    t0: tuple[float, float, float] = (0.0, 0.4, 0.8)
    thermal_mix: tuple[float, float, float] = (0.0, 0.2, 0.6)
    sal_gain: float = 0.8
    detail_gain: tuple[float, float, float] = (-0.7, 0.0, 1.0)

    @classmethod
    def from_dict(cls, raw: dict | None) -> PriorConfig:
        """From a YAML ``prior`` section (lists become the tuples the dataclass holds)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in (raw or {}).items()})

    def __post_init__(self) -> None:
        for name in ("t0", "thermal_mix", "detail_gain"):
            if len(getattr(self, name)) != len(LEVELS):
                raise ConfigError(f"prior.{name} needs {len(LEVELS)} values (less, standard, more)")


def code_vector(index: torch.Tensor) -> torch.Tensor:
    """(B,) code indices -> (B, 2) signed levels in {-1, 0, 1}: (thermal, detail); what the UNet is fed."""
    return torch.stack([index // 3, index % 3], dim=1).float() - 1.0


def saliency(t: torch.Tensor) -> torch.Tensor:
    """|T - local mean| normalised per image by max(peak, floor), as the student's loss does."""
    k = min(SALIENCY_KERNEL, max(1, (min(t.shape[2:]) // 2) * 2 - 1))
    sal = (t - box_mean(t, k)).abs()
    return sal / sal.amax(dim=(2, 3), keepdim=True).clamp(min=SALIENCY_FLOOR)


def detail_layer(t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per pixel, the larger-magnitude 5x5 high-pass of T and of V."""
    k = min(DETAIL_KERNEL, max(1, (min(t.shape[2:]) // 2) * 2 - 1))
    ht, hv = t - box_mean(t, k), v - box_mean(v, k)
    return torch.where(ht.abs() > hv.abs(), ht, hv)


def fusion_prior(t: torch.Tensor, v: torch.Tensor, index: torch.Tensor,
                 cfg: PriorConfig = PriorConfig()) -> torch.Tensor:
    """Target fused luminance (B,1,H,W) for thermal T and visible luminance V (B,1,H,W) at code ``index`` (B,)."""
    if t.shape != v.shape or t.dim() != 4 or t.shape[1] != 1:
        raise ConfigError("fusion_prior wants (B,1,H,W) thermal and visible of one shape, "
                          f"got {tuple(t.shape)}, {tuple(v.shape)}")
    ti, di = (index // 3).long(), (index % 3).long()
    as_col = lambda values, i: torch.tensor(values, dtype=t.dtype, device=t.device)[i].view(-1, 1, 1, 1)  # noqa: E731
    w = (as_col(cfg.t0, ti) + cfg.sal_gain * saliency(t)).clamp(0.0, 1.0)
    m = as_col(cfg.thermal_mix, ti)
    a = m * t + (1.0 - m) * torch.maximum(t, v)
    base = w * a + (1.0 - w) * v
    return (base + as_col(cfg.detail_gain, di) * detail_layer(t, v)).clamp(0.0, 1.0)
