"""Can a small AutoencoderKL be trained on this CPU within the teacher's budget? (docs/teacher.md, "Codec").

Trains ``ivfusion.teacher.autoencoder.KLCodec`` (a tiny diffusers AutoencoderKL, 4x downsampling) on random
128x128 luminance patches of the shared data for ``--minutes``, then reports reconstruction PSNR on held-out
patches next to the exact pixel-unshuffle codec (infinite PSNR by construction) and writes JSON.

    .venv/bin/python scripts/teacher_codec_probe.py --minutes 4 --threads 1 --out outputs/teacher/codec_probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default="outputs/teacher/codec_probe.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from ivfusion.teacher.autoencoder import KLCodec, tiny_autoencoder_config
    from ivfusion.teacher.data import RandomPatches, load_images

    images, _ = load_images([{"name": "roadscene", "split": "train"}, {"name": "msrs"}, {"name": "llvip"}])
    train, held = RandomPatches(images[8:], 128, seed=1), RandomPatches(images[:8], 128, seed=2)

    def batches(ds):
        epoch = 0
        while True:
            ds.epoch = epoch
            loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True)
            for b in loader:
                yield torch.cat([b["thermal"], b["vis_y"]])  # both bands: the codec encodes sources and fused
            epoch += 1

    codec = KLCodec(vae_config=tiny_autoencoder_config(latent_channels=4, widths=(32, 64, 64)))
    opt = torch.optim.AdamW(codec.parameters(), lr=1e-3)
    it, start, step, log = batches(train), time.monotonic(), 0, []
    while (time.monotonic() - start) / 60 < args.minutes:
        y = next(it)
        post = codec.vae.encode(y * 2 - 1).latent_dist
        rec = (codec.vae.decode(post.sample()).sample + 1) / 2
        loss = (rec - y).abs().mean() + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            log.append({"step": step, "l1": float(loss), "minutes": (time.monotonic() - start) / 60})
            print(log[-1], flush=True)
    codec.eval()
    with torch.no_grad():
        held.epoch, mses = 0, []
        for b in torch.utils.data.DataLoader(held, batch_size=8):
            y = torch.cat([b["thermal"], b["vis_y"]])
            mses.append(float((codec.decode(codec.encode(y)).clamp(0, 1) - y).pow(2).mean()))
    mse = sum(mses) / len(mses)
    res = {"steps": step, "minutes": args.minutes, "threads": args.threads,
           "params": sum(p.numel() for p in codec.parameters()),
           "held_out_psnr_db": -10 * torch.log10(torch.tensor(mse)).item(),
           "unshuffle_psnr_db": float("inf"), "log": log}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print({k: v for k, v in res.items() if k != "log"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
