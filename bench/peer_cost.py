"""Network cost at equal resolution: the student vs a SeAFusion-class full-resolution CNN (MACs, params, CPU ms).

    OMP_NUM_THREADS=1 .venv/bin/python bench/peer_cost.py [--size 640x512] [--runs 5]

The peer is SeAFusion's fusion network as described in its paper and public code (Tang et al., Information
Fusion 2022: per-band 3x3 conv + two gradient residual dense blocks with Sobel branches, widths 16/32/48, a
4-layer 3x3 decoder at full resolution), untrained: only its cost matters here. Both networks run in PyTorch
and ONNX Runtime with the same thread count on the same random 640x512 input.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

from ivfusion.models.macs import count_macs
from ivfusion.runtime.stats import time_calls_ms


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class Sobel(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
        self.conv = nn.Conv2d(channels, 2 * channels, 3, padding=1, groups=channels, bias=False)
        self.conv.weight.data = torch.stack([kx, kx.t()]).repeat(channels, 1, 1).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx, gy = self.conv(x).unflatten(1, (-1, 2)).unbind(2)
        return gx.abs() + gy.abs()


class RGRB(nn.Module):
    """Residual gradient dense block: dense 3x3 path + Sobel-gradient 1x1 path."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.c1, self.c2 = _conv(cin, cin), _conv(2 * cin, cin)
        self.down, self.sobel, self.up = _conv(3 * cin, cout, 1), Sobel(cin), _conv(cin, cout, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.cat([x, self.act(self.c1(x))], 1)
        d = torch.cat([d, self.act(self.c2(d))], 1)
        return self.act(self.down(d) + self.up(self.sobel(x)))


class SeAFusionClass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.vis = nn.Sequential(_conv(1, 16), nn.LeakyReLU(0.2), RGRB(16, 32), RGRB(32, 48))
        self.inf = nn.Sequential(_conv(1, 16), nn.LeakyReLU(0.2), RGRB(16, 32), RGRB(32, 48))
        self.dec = nn.Sequential(_conv(96, 96), nn.BatchNorm2d(96), nn.LeakyReLU(0.2), _conv(96, 48), nn.BatchNorm2d(48),
                                 nn.LeakyReLU(0.2), _conv(48, 32), nn.BatchNorm2d(32), nn.LeakyReLU(0.2), _conv(32, 1),
                                 nn.Tanh())

    def forward(self, thermal: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([self.vis(y), self.inf(thermal)], 1)) / 2 + 0.5


def _ms(fn, runs: int) -> float:
    return statistics.median(time_calls_ms(fn, runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x512")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    w, h = map(int, args.size.split("x"))
    torch.set_num_threads(args.threads)
    from ivfusion.engines.ort import make_session
    from ivfusion.export.onnx import torch_to_onnx
    from ivfusion.fusion.student import DEFAULT_MODEL_DIR
    from ivfusion.models.student import StudentFusionNet

    t, v = torch.rand(1, 1, h, w), torch.rand(1, 3, h, w)
    student = StudentFusionNet.from_pretrained(DEFAULT_MODEL_DIR).eval()
    e = student.preset("balanced")
    peer = SeAFusionClass().eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        s_path = torch_to_onnx(student, Path(tmp) / "s.onnx")
        p_path = Path(tmp) / "p.onnx"
        torch.onnx.export(peer, (t, v[:, :1]), str(p_path), input_names=["thermal", "y"], opset_version=17, dynamo=False)
        s_ort, p_ort = make_session(s_path, threads=args.threads), make_session(p_path, threads=args.threads)
        feeds_s = {"thermal": t.numpy(), "visible": v.numpy(), "preference": e.numpy()}
        feeds_p = {"thermal": t.numpy(), "y": v[:, :1].numpy()}
        rows.append(("student", count_macs(student, t, v, e), sum(x.numel() for x in student.parameters()),
                     _ms(lambda: student(t, v, e), args.runs), _ms(lambda: s_ort.run(None, feeds_s), args.runs)))
        rows.append(("SeAFusion-class", count_macs(peer, t, v[:, :1]), sum(x.numel() for x in peer.parameters()),
                     _ms(lambda: peer(t, v[:, :1]), args.runs), _ms(lambda: p_ort.run(None, feeds_p), args.runs)))
    print(f"| network ({w}x{h}, {args.threads} thread) | GMAC | params | PyTorch ms | ONNX Runtime ms |\n|---|---|---|---|---|")
    for name, macs, params, pt, ort_ms in rows:
        print(f"| {name} | {macs / 1e9:.2f} | {params / 1e3:.0f} k | {pt:.1f} | {ort_ms:.1f} |")


if __name__ == "__main__":
    main()
