"""Detector-in-the-loop tuning of the `detection` preset's embedding (black-box, no gradients through YOLO).

    .venv/bin/python bench/tune_detection_embedding.py [--candidates 30] [--out outputs/tune]

The student takes any 384-d preference embedding. This searches normalised mixtures of the five preset
embeddings (plus each preset alone) for the one whose fused frames let the shared detector find most of what it
finds in *either* source band: class-agnostic mAP@0.5 against the cached detector boxes on IR ∪ VI of the
training pairs (RoadScene train split, LLVIP, M3FD; **MSRS is left out**, so its labelled mAP stays a held-out
test). Writes ``<out>/model/`` = ``models/student`` with only the `detection` entry of presets.safetensors
replaced, for ``ivfusion eval --methods student:detection@<out>/model``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from ivfusion.detection import Detector, DetectorConfig
from ivfusion.fusion.student import StudentFusion
from ivfusion.metrics.detection import Prediction, evaluate_detections
from ivfusion.training.data import BOX_CLASSES, SourceSpec, _resize_max, detector_boxes, resolve_source

SOURCES = (SourceSpec("roadscene", "train"), SourceSpec("llvip"), SourceSpec("m3fd"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/student"))
    ap.add_argument("--candidates", type=int, default=30, help="random mixtures besides the five presets")
    ap.add_argument("--max-side", type=int, default=640, help="downscale larger pairs (LLVIP) for speed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("outputs/tune"))
    args = ap.parse_args()

    sources = [resolve_source(s) for s in SOURCES]
    boxes = detector_boxes(sources, Path("outputs/cache/student_detections.json"))
    pairs = []
    for src in sources:
        for stem in src.stems:
            s = src.folder.load(stem)
            t, bgr = _resize_max(s.thermal, args.max_side), _resize_max(s.bgr, args.max_side)
            size = (t.shape[1], t.shape[0])
            gt = [Prediction("object", x1 * size[0], y1 * size[1], x2 * size[0], y2 * size[1], 1.0)
                  for x1, y1, x2, y2 in boxes.get(f"{src.label}/{stem}", [])]
            pairs.append((f"{src.label}/{stem}", t, bgr, gt))

    student = StudentFusion(args.model, threads=2)
    detector = Detector(DetectorConfig(conf=0.001, iou=0.6, classes=BOX_CLASSES))
    presets = load_file(str(args.model / "presets.safetensors"))
    names = sorted(presets)
    basis = np.stack([presets[n].reshape(-1) for n in names])
    rng = np.random.default_rng(args.seed)
    weights = [np.eye(len(names))[i] for i in range(len(names))]
    weights += [rng.dirichlet(np.full(len(names), 0.7)) for _ in range(args.candidates)]

    def score(w: np.ndarray) -> float:
        emb = w @ basis
        emb = (emb / np.linalg.norm(emb)).astype(np.float32)[None]
        preds, gts = {}, {}
        for key, t, bgr, gt in pairs:
            fused = student.fuse_array(t, bgr, emb)
            preds[key] = [Prediction("object", d.x1, d.y1, d.x2, d.y2, d.score) for d in detector.detect(fused)]
            gts[key] = gt
        return evaluate_detections(preds, gts, ("object",)).map50

    results = []
    for w in tqdm(weights, desc="candidate embeddings", unit="cand"):
        results.append((score(w), w))
    results.sort(key=lambda r: -r[0])
    args.out.mkdir(parents=True, exist_ok=True)
    table = [{"map50": round(m, 4), **{n: round(float(x), 3) for n, x in zip(names, w)}} for m, w in results]
    (args.out / "candidates.json").write_text(json.dumps(table, indent=1))
    print("| class-agnostic mAP@0.5 (train pairs) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for row in table[:8] + [r for r in table[8:] if max(r[n] for n in names) == 1.0]:
        print(f"| {row['map50']:.4f} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |")
    best = results[0][1] @ basis
    model_dir = args.out / "model"
    shutil.copytree(args.model, model_dir, dirs_exist_ok=True)
    tuned = dict(presets)
    tuned["detection"] = (best / np.linalg.norm(best)).astype(np.float32)
    save_file(tuned, str(model_dir / "presets.safetensors"), metadata={"encoder": "tuned: bench/tune_detection_embedding.py"})
    print(f"wrote {model_dir} (detection embedding = best mixture, cos to the original "
          f"{float(tuned['detection'] @ presets['detection'].reshape(-1)):.3f})")


if __name__ == "__main__":
    main()
