"""What do the refinements of IDPO v4 do to the oracles' scores, scene by scene? (docs/teacher.md, "IDPO v4")

    .venv/bin/python bench/teacher_refine_probe.py detection-gradient --scenes 6   # rejected: through the copy
    .venv/bin/python bench/teacher_refine_probe.py detection --scenes 12           # shipped: search, real detector
    .venv/bin/python bench/teacher_refine_probe.py visual --scenes 8

Reads IDPO v4's instances (idpo_v3's scenes) and cached standard candidates, refines the first N scenes with
objects, and prints per scene the judge's score before and after: for ``detection`` the detection oracle's score
(real OpenVINO detector, mean matched confidence), for ``detection-gradient`` also the loss of the INT8-quantised
PyTorch copy that the gradient steps descended; for ``visual`` the five full-reference metrics.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ivfusion.teacher.data import instance_view, to_tensor
from ivfusion.teacher.evaluate import to_uint8
from ivfusion.teacher.oracles import DetectionOracle, VisualOracle
from ivfusion.teacher.refine import RefineConfig, Refiner, colour, local_edit

VISUAL = ["MI", "SCD", "VIF", "Qabf", "SSIM"]


def copy_targets(view, names: dict[int, str], patch: int) -> torch.Tensor:
    """(1, N, 5) ``[class, cx, cy, w, h]`` of the view's objects, normalised (the detector loss's format)."""
    index = {n: i for i, n in names.items()}
    rows = [[index[c], (b[0] + b[2]) / 2 / patch, (b[1] + b[3]) / 2 / patch, (b[2] - b[0]) / patch,
             (b[3] - b[1]) / patch] for b, c in zip(view.objects, view.classes) if c in index]
    return torch.tensor(rows, dtype=torch.float32).view(1, -1, 5)


def gradient_refine(cand: np.ndarray, view, loss, steps: int = 30, lr: float = 0.05, cell: int = 32):
    """Adam on the copy's loss over the same coarse maps as the search; returns (image, loss before, after)."""
    cfg = RefineConfig("detection", cell=cell)
    y, t = to_tensor(cand).unsqueeze(0), to_tensor(view.ir).unsqueeze(0)
    targets = copy_targets(view, loss.model.names, cand.shape[0])
    g = cand.shape[0] // cell
    params = torch.zeros(1, 3, g, g, requires_grad=True)
    opt = torch.optim.Adam([params], lr=lr)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        value = loss(colour(local_edit(y, t, params, cfg), view.crcb), targets)[0]
        first = value.item() if first is None else first
        value.backward()
        opt.step()
    with torch.no_grad():
        out = local_edit(y, t, params, cfg)
        return to_uint8(out[0]), first, loss(colour(out, view.crcb), targets)[0].item()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("objective", choices=["detection", "detection-gradient", "visual"])
    p.add_argument("--config", default="config/train/idpo_v4.yaml")
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.train import IDPO_SECTIONS, load_config, prepare_preferences

    cfg = load_config(args.config, IDPO_SECTIONS)
    prefs = prepare_preferences(cfg, PALDM.from_pretrained(cfg["init_from"]), progress=False)  # cached
    entries = {r["objective"]: RefineConfig.from_dict(dict(r)) for r in cfg["refine"]}
    oracle = DetectionOracle(iou=0.5)
    visual = VisualOracle(metrics=VISUAL)
    copy = None
    if args.objective == "detection-gradient":
        from ivfusion.training.detector_loss import DetectorLoss, DetectorLossConfig

        copy = DetectorLoss(DetectorLossConfig(weight=1.0, quantize_activations=True))
    refiner = Refiner(entries[args.objective.split("-")[0]], oracle if args.objective == "detection" else None)
    picked = [n for n, i in enumerate(prefs["instances"]) if i.objects][: args.scenes]
    diffs = []
    for n in picked:
        view = instance_view(prefs["images"], prefs["instances"][n], prefs["patch"])
        base = prefs["candidates"][n, 4]
        if args.objective == "visual":
            table = visual.table(view, np.stack([base, refiner(base, view)]))
            diffs.append(table[1] - table[0])
            print(n, " ".join(f"{m} {a:.3f}->{b:.3f}" for m, a, b in zip(VISUAL, table[0], table[1])))
            continue
        if copy is None:
            refined, extra = refiner(base, view, seed=n), ""
        else:
            refined, before, after = gradient_refine(base, view, copy)
            extra = f"  copy loss {before:.2f}->{after:.2f}"
        s = oracle.scores(np.stack([base, refined]), view)
        diffs.append([s[1] - s[0]])
        print(f"{n} objects {len(view.objects)}  real detector {s[0]:.3f}->{s[1]:.3f}{extra}")
    d = np.asarray(diffs)
    print("mean change", np.round(d.mean(axis=0), 4).tolist(), " fraction raised", (d > 0).mean(axis=0).round(2).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
