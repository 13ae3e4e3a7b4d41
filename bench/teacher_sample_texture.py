"""Does IDPO leave its mark on every sample, whatever the preference? Grain and brightness of teacher samples.

    .venv/bin/python bench/teacher_sample_texture.py outputs/train/idpo_v5_f0/final outputs/train/idpo_v4/final \
        [--frames 8] [--crop 256] [--steps 5] [--grid docs/img/teacher_idpo_texture.jpg]

Every IDPO run so far lowered MI and VIF on MSRS and raised SF/AG, for the `detection` and the `visual` preference
alike (docs/teacher.md). This bench looks for a preference-independent cause: on centre crops of MSRS frames (every
``len/frames``-th frame, its thermal and visible luminance), each model samples the standard code with the same
noise (PALDM without, the others with the `detection` preset), and it prints the mean grey level and the *grain*:
the standard deviation of the sample minus its 1-px Gaussian blur (what a mottled or noisy sampler adds). The grid
shows IR | VI | PALDM | each model, one row per frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ivfusion.evaluation.datasets import open_dataset
from ivfusion.teacher.data import to_tensor
from ivfusion.teacher.evaluate import center_crop, preset_embeddings, run_name, to_uint8
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import STANDARD


def grain(img: np.ndarray) -> float:
    f = img.astype(np.float32)
    return float((f - cv2.GaussianBlur(f, (0, 0), 1.0)).std())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="PCLDM folders (compared with --paldm)")
    ap.add_argument("--paldm", default="outputs/train/paldm/final")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", type=Path, help="write the image grid here (jpg)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ds = open_dataset("msrs", split="all")
    stems = list(ds.stems)[:: max(1, len(ds.stems) // args.frames)][: args.frames]
    pref = preset_embeddings(["detection"])["detection"].view(1, -1)
    models = [("PALDM", PALDM.from_pretrained(args.paldm), None)]
    models += [(run_name(m), PALDM.from_pretrained(m), pref) for m in args.models]
    stats = {name: {"mean": [], "grain": []} for name, _, _ in models}
    rows = []
    for stem in tqdm(stems, desc="samples", unit="frame"):
        s = ds.folder.load(stem)
        t = center_crop(s.thermal, args.crop)
        y = center_crop(cv2.cvtColor(s.rgb, cv2.COLOR_RGB2GRAY), args.crop)
        tiles = [t, y]
        for name, model, p in models:
            with torch.no_grad():
                out = to_uint8(model.sample(to_tensor(t).unsqueeze(0), to_tensor(y).unsqueeze(0), STANDARD.index, p,
                                            steps=args.steps, generator=torch.Generator().manual_seed(0))[0])
            stats[name]["mean"].append(float(out.mean()))
            stats[name]["grain"].append(grain(out))
            tiles.append(out)
        rows.append(np.concatenate(tiles, axis=1))
    print(f"{len(stems)} MSRS centre crops of {args.crop} px, {args.steps} DDIM steps, same noise")
    print(f"{'model':<16} {'mean grey':>10} {'grain':>8} {'grain vs PALDM':>15}")
    base = np.array(stats["PALDM"]["grain"])
    for name, v in stats.items():
        g = np.array(v["grain"])
        print(f"{name:<16} {np.mean(v['mean']):>10.1f} {g.mean():>8.2f} {np.mean(g / base - 1):>+14.1%}")
    if args.grid:
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        grid = np.concatenate(rows, axis=0)
        cv2.imwrite(str(args.grid), cv2.resize(grid, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                    [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    main()
