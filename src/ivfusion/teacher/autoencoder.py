"""Image <-> latent codecs for the teacher's latent diffusion.

Two codecs share one interface (``encode``: (B,1,H,W) luminance in [0,1] -> (B,C,H/f,W/f) latents of roughly
unit scale; ``decode``: the inverse; ``channels``, ``factor``):

* ``UnshuffleCodec`` -- space-to-depth (``pixel_unshuffle``) by ``factor``, then a fixed affine map to [-1, 1].
  Exact, free, and needs no training, so every latent-diffusion step costs what a ``factor``x smaller image
  costs while the decoder can never blur the fused detail. Default for the CPU runs (docs/teacher.md has the
  measurement that decided it).
* ``KLCodec`` -- a small diffusers ``AutoencoderKL`` built from a config (never downloaded); the classic LDM
  choice, kept so a GPU run can swap it in by config. ``scripts/teacher_codec_probe.py`` trains one (L1 + KL)
  to measure whether that fits the CPU budget.

Only the luminance is modelled: the student (and the teacher) keep the visible chroma (docs/student.md).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ivfusion.errors import ConfigError


class Codec(Protocol):
    channels: int
    factor: int

    def encode(self, y: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


class UnshuffleCodec(nn.Module):
    """``pixel_unshuffle`` "latents": (B,1,H,W) -> (B, factor^2, H/factor, W/factor), values 2y - 1."""

    def __init__(self, *, factor: int = 4) -> None:
        super().__init__()
        if factor < 1:
            raise ConfigError(f"codec.factor must be >= 1, got {factor}")
        self.factor, self.channels = factor, factor * factor
        self.config: dict[str, Any] = {"kind": "unshuffle", "factor": factor}

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(y * 2.0 - 1.0, self.factor)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (F.pixel_shuffle(z, self.factor) + 1.0) / 2.0


def tiny_autoencoder_config(latent_channels: int = 4, widths: tuple[int, ...] = (16, 32, 64)) -> dict[str, Any]:
    """A ~0.3 M-parameter AutoencoderKL for 1-channel images; downsamples by 2^(len(widths)-1)."""
    n = len(widths)
    return {
        "in_channels": 1, "out_channels": 1, "latent_channels": latent_channels,
        "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": list(widths), "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 128,
        "mid_block_add_attention": False,
    }


class KLCodec(nn.Module):
    """A diffusers ``AutoencoderKL`` (built from ``vae_config``) with a fixed latent ``scaling_factor``."""

    def __init__(self, *, vae_config: dict[str, Any] | None = None, scaling_factor: float = 1.0) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        cfg = dict(vae_config or tiny_autoencoder_config())
        self.vae = AutoencoderKL.from_config(cfg)
        self.scaling_factor = float(scaling_factor)
        self.channels = int(cfg["latent_channels"])
        self.factor = 2 ** (len(cfg["block_out_channels"]) - 1)
        self.config = {"kind": "kl", "vae_config": cfg, "scaling_factor": self.scaling_factor}

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        # the posterior mean: a deterministic code (the diffusion adds its own noise)
        return self.vae.encode(y * 2.0 - 1.0).latent_dist.mean * self.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.vae.decode(z / self.scaling_factor).sample + 1.0) / 2.0


def build_codec(config: dict[str, Any]) -> UnshuffleCodec | KLCodec:
    """``{"kind": "unshuffle", "factor": 4}`` or ``{"kind": "kl", "vae_config": {...}, "scaling_factor": s}``."""
    args = {k: v for k, v in config.items() if k != "kind"}
    kind = config.get("kind", "unshuffle")
    if kind == "unshuffle":
        return UnshuffleCodec(**args)
    if kind == "kl":
        return KLCodec(**args)
    raise ConfigError(f"codec.kind must be 'unshuffle' or 'kl', got {kind!r}")
