"""Unsupervised fusion losses against the CLEAN sources, with per-sample (per-preference) weights.

All images are (B,1,H,W) luminance or (B,3,H,W) RGB in [0, 1]. ``PreferenceWeights`` holds one row per sample,
so one batch can mix presets; the intent of each preset is in ``config/train/student.yaml``.

* intensity: L1 to a saliency-weighted max of the sources: target = w A + (1 - w) V with
  A = thermal_mix T + (1 - thermal_mix) max(T, V) and w = clip(t0 + gain * saliency(T), 0, 1) (t0 = thermal
  emphasis; thermal_mix > 0 lets a preference pull the background towards the thermal image, which a pure
  max cannot: where T < V, max(T, V) = V for every preset), w = 1 inside detector boxes, and the L1
  weighted by (1 + box_weight * box) so that targets the detector found in either band keep their contrast;
* gradient: L1 between Sobel magnitudes of F and max(|grad T|, |grad V|) (texture from whichever sees it);
* SSIM: ssim_t (1 - SSIM(F, T)) + ssim_v (1 - SSIM(F, V)) (structure; ssim_v is "natural contrast");
* colour: 1 - cosine similarity of fused and visible RGB per pixel (hue fidelity of the kept chroma);
* SCD: 1 - (corr(F - V, T) + corr(F - T, V)) / 2 per sample (the SCD metric, differentiable): a weighted
  average of the sources keeps each one's *share* but not what it adds over the other, and an image that
  copies one source scores high MI/VIF while SCD exposes it; weight ``scd`` (0 = off, stage 1 and 2);
* degradation: BCE of the auto head against the known synthetic labels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ivfusion.models.student import box_mean  # the same separable box filter as the student's detail layer

SALIENCY_KERNEL = 31
SALIENCY_FLOOR = 32.0 / 255.0


@dataclass(frozen=True)
class PresetLoss:
    """Loss knobs of one preference (see the module docstring)."""

    t0: float = 0.4
    sal_gain: float = 0.8
    box_weight: float = 0.0
    thermal_mix: float = 0.0
    intensity: float = 1.0
    gradient: float = 5.0
    ssim_t: float = 0.5
    ssim_v: float = 0.5
    color: float = 0.2
    scd: float = 0.0

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(PresetLoss))

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([getattr(self, n) for n in self.names()], dtype=torch.float32)


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    return g.abs().sum(dim=1, keepdim=True)


def saliency(t: torch.Tensor) -> torch.Tensor:
    """|T - local mean| normalised per image by max(peak, floor) (a flat, noisy frame is not stretched)."""
    k = min(SALIENCY_KERNEL, (min(t.shape[2:]) // 2) * 2 - 1) if min(t.shape[2:]) > 2 else 1
    local = box_mean(t, k)
    sal = (t - local).abs()
    peak = sal.amax(dim=(2, 3), keepdim=True).clamp(min=SALIENCY_FLOOR)
    return sal / peak


def intensity_target(t: torch.Tensor, v: torch.Tensor, t0: torch.Tensor, gain: torch.Tensor,
                     box: torch.Tensor | None = None, thermal_mix: torch.Tensor | None = None) -> torch.Tensor:
    w = (t0.view(-1, 1, 1, 1) + gain.view(-1, 1, 1, 1) * saliency(t)).clamp(0.0, 1.0)
    if box is not None:
        w = torch.maximum(w, box)
    a = torch.maximum(t, v)
    if thermal_mix is not None:
        m = thermal_mix.view(-1, 1, 1, 1)
        a = m * t + (1.0 - m) * a
    return w * a + (1.0 - w) * v


def gradient_loss(fused: torch.Tensor, thermal: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |Sobel(fused) - max(Sobel(thermal), Sobel(visible))| -> (B,): the stronger source's edges
    kept (what Qabf measures)."""
    return (sobel_magnitude(fused) - torch.maximum(sobel_magnitude(thermal), sobel_magnitude(vis))).abs().mean(
        dim=(1, 2, 3))


def _gauss_1d(size: int = 11, sigma: float = 1.5, device=None, dtype=None) -> torch.Tensor:
    ax = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def _gauss_filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every channel."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-sample mean SSIM (Wang et al. 2004; 11x11 Gaussian, sigma 1.5, 'valid' windows) -> (B,)."""
    size = 11 if min(x.shape[2:]) >= 11 else max(1, (min(x.shape[2:]) // 2) * 2 - 1)
    g = _gauss_1d(size, device=x.device, dtype=x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    m = _gauss_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), g)
    mx, my = m[:, 0:1], m[:, 1:2]
    sxx, syy, sxy = m[:, 2:3] - mx * mx, m[:, 3:4] - my * my, m[:, 4:5] - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def color_loss(fused_rgb: torch.Tensor, vis_rgb: torch.Tensor) -> torch.Tensor:
    """Per-sample mean (1 - cos) between RGB vectors -> (B,)."""
    a, b = fused_rgb + 1e-3, vis_rgb + 1e-3
    cos = (a * b).sum(dim=1) / ((a * a).sum(dim=1) * (b * b).sum(dim=1)).sqrt()
    return (1.0 - cos).mean(dim=(1, 2))


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample Pearson correlation over all pixels -> (B,) (MATLAB corr2, as the SCD metric uses)."""
    a = a - a.mean(dim=(1, 2, 3), keepdim=True)
    b = b - b.mean(dim=(1, 2, 3), keepdim=True)
    return (a * b).sum(dim=(1, 2, 3)) / ((a * a).sum(dim=(1, 2, 3)) * (b * b).sum(dim=(1, 2, 3)) + 1e-12).sqrt()


def scd_loss(fused: torch.Tensor, thermal: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """1 - SCD / 2 per sample -> (B,); 0 when the fused image holds all of what each source adds."""
    return 1.0 - 0.5 * (_corr(fused - vis, thermal) + _corr(fused - thermal, vis))


def fusion_loss(fused_y: torch.Tensor, fused_rgb: torch.Tensor, thermal: torch.Tensor, vis_y: torch.Tensor,
                vis_rgb: torch.Tensor, weights: torch.Tensor, box: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss (scalar) and its parts; ``weights`` (B, len(PresetLoss.names())) rows of PresetLoss values."""
    names = PresetLoss.names()
    w = {n: weights[:, i] for i, n in enumerate(names)}
    target = intensity_target(thermal, vis_y, w["t0"], w["sal_gain"], box, w["thermal_mix"])
    pix = (fused_y - target).abs()
    if box is not None:
        pix = pix * (1.0 + w["box_weight"].view(-1, 1, 1, 1) * box)
    l_int = pix.mean(dim=(1, 2, 3))
    l_grad = gradient_loss(fused_y, thermal, vis_y)
    l_ssim_t = 1.0 - ssim(fused_y, thermal)
    l_ssim_v = 1.0 - ssim(fused_y, vis_y)
    l_col = color_loss(fused_rgb, vis_rgb)
    l_scd = scd_loss(fused_y, thermal, vis_y)
    per_sample = (w["intensity"] * l_int + w["gradient"] * l_grad + w["ssim_t"] * l_ssim_t + w["ssim_v"] * l_ssim_v
                  + w["color"] * l_col + w["scd"] * l_scd)
    parts = {"int": l_int.mean(), "grad": l_grad.mean(), "ssim_t": l_ssim_t.mean(), "ssim_v": l_ssim_v.mean(),
             "color": l_col.mean(), "scd": l_scd.mean()}
    return per_sample.mean(), parts


def degradation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels)
