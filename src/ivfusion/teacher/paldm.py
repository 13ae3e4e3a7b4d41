"""PALDM: a latent diffusion model of the fused luminance, conditioned on the sources, a property code and a
preference embedding; after IDPO fine-tuning (``ivfusion.teacher.idpo``) the same class is the PCLDM.

Parts (diffusers, all built from configs, nothing downloaded):

* a codec (``ivfusion.teacher.autoencoder``) maps luminance to latents;
* a ``UNet2DConditionModel`` predicts from ``cat(noisy fused latent, IR latent, VI latent)`` (concatenation
  conditioning, as SR3 / LDM super-resolution do): the sources are always visible to the network;
* a conditioner turns the property code (2 signed levels, ``properties.code_vector``) and a 384-d preference
  embedding (the student's MiniLM space) into one vector, fed twice: added to the timestep embedding
  (``class_embed_type="projection"``: global control, e.g. brightness of the thermal side) and as two
  cross-attention tokens (spatial control, where attention layers exist). The preference projection starts at
  zero, so PALDM ignores preferences until IDPO teaches it to use them;
* a ``DDIMScheduler`` for training noise (``add_noise``) and for sampling with a configurable number of steps.

Files: ``config.json`` (the constructor arguments) + ``model.safetensors`` + ``scheduler_config.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ivfusion.errors import ConfigError
from ivfusion.models.pretrained import CONFIG_NAME, constructor_args, load_pretrained, write_pretrained
from ivfusion.teacher.autoencoder import build_codec
from ivfusion.teacher.properties import STANDARD, code_vector

FORMAT_VERSION = 1
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def default_unet_config(latent_channels: int, cond_dim: int) -> dict[str, Any]:
    """A small two-level UNet (32x32 latents -> 16x16), cross-attention only at the coarse level (cheap on CPU)."""
    return {
        "sample_size": 32,
        "in_channels": 3 * latent_channels,
        "out_channels": latent_channels,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [64, 128],
        "layers_per_block": 1,
        "norm_num_groups": 16,
        "cross_attention_dim": cond_dim,
        "attention_head_dim": 4,
        "class_embed_type": "projection",
        "projection_class_embeddings_input_dim": cond_dim,
    }


class PALDM(nn.Module):
    """Conditional latent diffusion of fused luminance (PALDM; a PCLDM after IDPO). Config = constructor args."""

    def __init__(self, *, codec: dict[str, Any] | None = None, unet: dict[str, Any] | None = None, cond_dim: int = 64,
                 text_dim: int = 384, prediction_type: str = "sample", num_train_timesteps: int = 1000,
                 beta_schedule: str = "squaredcos_cap_v2", residual: bool = True) -> None:
        super().__init__()
        from diffusers import UNet2DConditionModel

        if prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"teacher: prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        codec_cfg = dict(codec or {"kind": "unshuffle", "factor": 4})
        self.codec = build_codec(codec_cfg)
        c = self.codec.channels
        unet_cfg = {**default_unet_config(c, cond_dim), **(unet or {})}
        if unet_cfg["in_channels"] != 3 * c or unet_cfg["out_channels"] != c:
            raise ConfigError(f"teacher: unet in/out channels must be {3 * c}/{c} for a {c}-channel codec")
        self.unet = UNet2DConditionModel.from_config(unet_cfg)
        self.code_mlp = nn.Sequential(nn.Linear(2, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.pref_proj = nn.Linear(text_dim, cond_dim)
        nn.init.zeros_(self.pref_proj.weight)
        nn.init.zeros_(self.pref_proj.bias)
        self.text_dim, self.prediction_type = text_dim, prediction_type
        self.config: dict[str, Any] = {
            "codec": codec_cfg, "unet": unet_cfg, "cond_dim": cond_dim, "text_dim": text_dim,
            "prediction_type": prediction_type, "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule, "residual": residual,
        }
        self.residual = residual
        self.scheduler = self.make_scheduler()
        self.register_buffer("alphas_cumprod", self.scheduler.alphas_cumprod.clone().float(), persistent=False)

    # ------------------------------------------------------------------------------------------ pieces
    def make_scheduler(self):
        """A fresh DDIM scheduler (they are stateful while sampling); trailing spacing suits few steps."""
        from diffusers import DDIMScheduler

        bounded = self.config["codec"].get("kind", "unshuffle") == "unshuffle" and not self.config["residual"]
        return DDIMScheduler(num_train_timesteps=self.config["num_train_timesteps"],
                             beta_schedule=self.config["beta_schedule"], prediction_type=self.prediction_type,
                             clip_sample=bounded,
                             clip_sample_range=1.0, set_alpha_to_one=False, timestep_spacing="trailing")

    @property
    def device(self) -> torch.device:
        return self.pref_proj.weight.device

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (codec factor x UNet downsampling)."""
        return self.codec.factor * 2 ** (len(self.config["unet"]["block_out_channels"]) - 1)

    def condition(self, code: torch.Tensor, preference: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) code indices + (B, text_dim) embeddings (None = no preference) -> (class vector, 2 tokens)."""
        c_code = self.code_mlp(code_vector(code).to(self.pref_proj.weight.dtype))
        if preference is None:
            c_pref = torch.zeros_like(c_code)
        else:
            if preference.shape != (code.shape[0], self.text_dim):
                raise ConfigError(f"teacher: preference must be (B, {self.text_dim}), got {tuple(preference.shape)}")
            c_pref = self.pref_proj(preference)
        return c_code + c_pref, torch.stack([c_code, c_pref], dim=1)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, z_ir: torch.Tensor, z_vi: torch.Tensor,
                code: torch.Tensor, preference: torch.Tensor | None = None) -> torch.Tensor:
        """The UNet's prediction (``prediction_type``) for noisy fused latents given source latents and conditions."""
        cls, tokens = self.condition(code, preference)
        x = torch.cat([noisy, z_ir, z_vi], dim=1)
        return self.unet(x, timesteps, encoder_hidden_states=tokens, class_labels=cls).sample

    def encode_sources(self, thermal: torch.Tensor, vis_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.codec.encode(thermal), self.codec.encode(vis_y)

    def to_latent(self, y: torch.Tensor, z_ir: torch.Tensor, z_vi: torch.Tensor) -> torch.Tensor:
        """What is diffused: the fused latent, or (``residual``) its difference from the sources' mean latent.

        Why residual: the fused image is mostly a per-pixel mix of the sources, so the residual is small and
        carries the property (which side, how much detail); measured sharper after the same CPU steps
        (docs/teacher.md).
        """
        z = self.codec.encode(y)
        return z - 0.5 * (z_ir + z_vi) if self.residual else z

    def from_latent(self, z: torch.Tensor, z_ir: torch.Tensor, z_vi: torch.Tensor) -> torch.Tensor:
        """Inverse of ``to_latent``: diffused latent -> luminance in [0, 1]."""
        return self.codec.decode(z + 0.5 * (z_ir + z_vi) if self.residual else z).clamp(0.0, 1.0)

    def target_for(self, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the UNet must output for clean latents ``z0`` noised with ``noise`` at ``timesteps``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return z0
        return self.scheduler.get_velocity(z0, noise, timesteps)

    def predicted_x0(self, pred: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        if self.prediction_type == "sample":
            return pred
        if self.prediction_type == "epsilon":
            return (noisy - (1 - ab).sqrt() * pred) / ab.sqrt()
        return ab.sqrt() * noisy - (1 - ab).sqrt() * pred

    # ----------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, thermal: torch.Tensor, vis_y: torch.Tensor, code: torch.Tensor | int = STANDARD.index,
               preference: torch.Tensor | None = None, *, steps: int = 10, eta: float = 0.0,
               generator: torch.Generator | None = None, shared_noise: bool = False,
               guidance: float = 1.0, negative: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM: (B,1,H,W) thermal and visible luminance in [0,1] -> fused luminance (B,1,H,W) in [0,1].

        Any H, W: inputs are reflect-padded to ``multiple`` and the output is cropped back. ``shared_noise``:
        one initial noise for the whole batch, so candidates of one pair differ only by their conditions.
        ``guidance``: classifier-free guidance on the preference (1 = none; see :meth:`guided`), away from the
        zero embedding or from ``negative`` (another preference's embedding, same shape as ``preference``).
        """
        if steps < 1:
            raise ConfigError(f"teacher: DDIM steps must be >= 1, got {steps}")
        if guidance != 1.0 and preference is None:
            raise ConfigError("teacher: guidance needs a preference to guide towards")
        b, _, h, w = thermal.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            thermal, vis_y = (F.pad(x, (0, pw, 0, ph), mode=mode) for x in (thermal, vis_y))
        if isinstance(code, int):
            code = torch.full((b,), code, dtype=torch.long, device=thermal.device)
        if code.shape != (b,):
            raise ConfigError(f"teacher: one property code per image wanted ({b}), got shape {tuple(code.shape)}")
        z_ir, z_vi = self.encode_sources(thermal, vis_y)
        scheduler = self.make_scheduler()
        scheduler.set_timesteps(steps, device=thermal.device)
        shape = (1, *z_ir.shape[1:]) if shared_noise else z_ir.shape
        z = torch.randn(shape, generator=generator, dtype=z_ir.dtype).to(thermal.device)  # same draw on CPU and GPU
        z = z.expand_as(z_ir).contiguous()
        for t in scheduler.timesteps:
            pred = self.guided(z, t.expand(b), z_ir, z_vi, code, preference, guidance, negative)
            z = scheduler.step(pred, t, z, eta=eta, generator=generator).prev_sample
        return self.from_latent(z, z_ir, z_vi)[:, :, :h, :w]

    def guided(self, noisy: torch.Tensor, timesteps: torch.Tensor, z_ir: torch.Tensor, z_vi: torch.Tensor,
               code: torch.Tensor, preference: torch.Tensor | None, guidance: float = 1.0,
               negative: torch.Tensor | None = None) -> torch.Tensor:
        """The prediction, pushed ``guidance`` times as far from the unconditional one as the preference takes it.

        Why: one model trained on two preferences' pairs gave a blend of the two (docs/teacher.md, IDPO v9); with
        the preference dropped to the zero embedding for part of training (``train.preference_dropout``), the
        zero embedding learns that blend and ``guidance`` > 1 moves each preference away from it. The prediction
        is linear in the model output for every ``prediction_type``, so guiding it guides the DDIM step.

        ``negative``: guide away from another preference instead of the zero embedding (a negative prompt). What the
        two preferences share (IDPO v13: the grain both rewards add, which costs MI and SSIM) cancels in the
        difference, so only what sets ``preference`` apart is amplified.
        """
        if negative is not None and (preference is None or negative.shape != preference.shape):
            raise ConfigError("teacher: a negative preference needs a preference of the same shape")
        if guidance == 1.0:
            return self(noisy, timesteps, z_ir, z_vi, code, preference)
        away = torch.zeros_like(preference) if negative is None else negative
        both = self(torch.cat([noisy, noisy]), torch.cat([timesteps, timesteps]), torch.cat([z_ir, z_ir]),
                    torch.cat([z_vi, z_vi]), torch.cat([code, code]), torch.cat([preference, away]))
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    def training_noise(self, like: torch.Tensor, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise shaped like ``like``, one timestep per sample), drawn from a CPU ``generator`` and moved to
        ``like``'s device, so a seed gives the same draw on CPU and GPU."""
        noise = torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)
        t = torch.randint(0, self.config["num_train_timesteps"], (like.shape[0],), generator=generator)
        return noise, t.to(like.device)

    # ------------------------------------------------------------------------------------------- files
    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write config, weights and scheduler config. ``dtype=torch.float16`` halves the file for shipping
        (``from_pretrained`` loads it into float32 parameters)."""
        directory = write_pretrained(directory, self, "PALDM", FORMAT_VERSION, dtype)
        self.scheduler.save_pretrained(directory)  # scheduler_config.json: the sampler that goes with the weights
        return directory

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PALDM:
        return cls(**constructor_args(cls, config, "teacher"))

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> PALDM:
        from ivfusion.teacher.adapters import ADAPTERS_CONFIG  # that module builds on this one

        folder = Path(directory)
        if (folder / ADAPTERS_CONFIG).exists() and not (folder / CONFIG_NAME).exists():  # models/teacher/pcldm
            raise ConfigError(f"teacher: {folder} holds preference adapters linked to a PALDM, not a PALDM; load it "
                              "with ivfusion.teacher.adapters.load_teacher (which takes either kind)")
        model = load_pretrained(cls, folder, "teacher", FORMAT_VERSION, map_location)
        return model.eval()
