"""Multiply-accumulate count of Conv2d/Linear layers with forward hooks (elementwise ops and resizes not counted)."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass on ``inputs`` (batch 1 expected): Conv2d = out elements x Cin/groups x kh x kw,
    Linear = out elements x in_features."""
    total = 0

    def conv_hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear_hook(mod: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * mod.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total
