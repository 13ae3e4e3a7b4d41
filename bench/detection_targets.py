"""Which fusion *target* helps the detector? Renders the student's intensity target (ivfusion.training.losses.
intensity_target, no detector boxes: the network never sees boxes at run time) for several preset knobs on MSRS,
keeps the visible chroma as the student does, and scores each rendering with ``ivfusion eval`` (detection only).

    .venv/bin/python bench/detection_targets.py [--out outputs/targets]

Why: a preset can only be as good for the detector as the target it is trained towards; this measures the
targets themselves, before any training (docs/student.md, "Choosing the detection target").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ivfusion.evaluation.datasets import open_dataset
from ivfusion.training.losses import intensity_target

# name -> (t0, sal_gain, thermal_mix)
VARIANTS: dict[str, tuple[float, float, float]] = {
    "visible": (0.0, 0.0, 0.0),
    "balanced": (0.4, 0.8, 0.0),
    "max": (1.0, 0.0, 0.0),
    "saliency_x2": (0.4, 2.0, 0.0),
    "detection": (0.8, 1.0, 0.6),
    "thermal_mix_0.4": (0.8, 1.0, 0.4),
    "thermal_mix_0.8": (0.8, 1.0, 0.8),
    "thermal_mix_1.0": (0.8, 1.0, 1.0),
    "t0_0.6": (0.6, 1.0, 0.6),
    "t0_0.9": (0.9, 1.0, 0.6),
}


def render(dataset: str, out: Path) -> list[str]:
    ds = open_dataset(dataset, split="all")
    methods = []
    for name, (t0, gain, mix) in VARIANTS.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for stem in tqdm(ds.stems, desc=f"target {name}", unit="pair"):
            s = ds.folder.load(stem)
            t = torch.from_numpy(s.thermal.astype(np.float32) / 255)[None, None]
            ycc = cv2.cvtColor(s.rgb, cv2.COLOR_RGB2YCrCb)
            v = torch.from_numpy(ycc[..., 0].astype(np.float32) / 255)[None, None]
            y = intensity_target(t, v, torch.tensor([t0]), torch.tensor([gain]), None, torch.tensor([mix]))
            ycc[..., 0] = np.clip(y[0, 0].numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{stem}.png"), cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))
        methods.append(f"folder:{folder}=target/{name}")
    return methods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="msrs")
    ap.add_argument("--out", type=Path, default=Path("outputs/targets"))
    args = ap.parse_args()
    methods = render(args.dataset, args.out)
    cmd = [sys.executable, "-m", "ivfusion.cli", "eval", "--dataset", args.dataset, "--split", "all", "--no-peers",
           "--no-metrics", "--methods", ",".join(methods), "--out", str(args.out / "eval")]
    raise SystemExit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
