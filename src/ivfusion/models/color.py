"""RGB <-> YCbCr (BT.601 full range, as JPEG and OpenCV's YCrCb) on (B,3,H,W) tensors in [0, 1]."""

from __future__ import annotations

import torch

_KR, _KG, _KB = 0.299, 0.587, 0.114


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) luminance Y of (B,3,H,W) RGB."""
    return _KR * rgb[:, 0:1] + _KG * rgb[:, 1:2] + _KB * rgb[:, 2:3]


def rgb_to_ycbcr(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, b = rgb[:, 0:1], rgb[:, 2:3]
    y = luma(rgb)
    cb = (b - y) * (0.5 / (1.0 - _KB))
    cr = (r - y) * (0.5 / (1.0 - _KR))
    return y, cb, cr  # cb, cr centred on 0


def ycbcr_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    r = y + cr * (2.0 * (1.0 - _KR))
    b = y + cb * (2.0 * (1.0 - _KB))
    g = (y - _KR * r - _KB * b) / _KG
    return torch.cat([r, g, b], dim=1)
