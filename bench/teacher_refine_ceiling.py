"""Is the detection refinement of IDPO v4 worth MSRS mAP where it is applied directly? A diagnostic, not a method.

    .venv/bin/python bench/teacher_refine_ceiling.py [--model outputs/train/paldm/final] [--steps 5] [--threads 2]

IDPO v4 (docs/teacher.md) gives the policy, as winners, the standard PALDM candidate refined for the detector
(``teacher.refine``: a cross-entropy search over coarse thermal-mix / contrast / brightness maps scored by the
real detector against pseudo-labels). Here the same search runs on each full MSRS frame, against that frame's
**pseudo-labels** (the shared detector on both bands, ``outputs/cache/student_detections.json``; no MSRS labels),
and the usual evaluator scores the result against the labels. It bounds what learning the refinement could give:
if the directly refined frames do not beat the standard ones, the refinement is the problem; if they do and
PCLDM does not, the learning is.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ivfusion.data.pairs import PairSample
from ivfusion.detection import Detector, DetectorConfig
from ivfusion.evaluation.datasets import open_dataset
from ivfusion.evaluation.report import save_json, summary
from ivfusion.evaluation.runner import evaluate
from ivfusion.teacher.data import View, coco_names
from ivfusion.teacher.evaluate import TeacherMethod, msrs_bench_args
from ivfusion.teacher.oracles import DetectionOracle
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.refine import RefineConfig, Refiner
from ivfusion.training.data import BOX_CLASSES, merge_pseudo_labels


class _Refined(TeacherMethod):
    """PALDM's standard frame, refined for the detector against the frame's pseudo-labels."""

    def __init__(self, model: PALDM, steps: int, pseudo: dict, refiner: Refiner) -> None:
        super().__init__(model, "PALDM/standard+refined (pseudo-labels)", steps=steps)
        self.pseudo, self.refiner, self.names, self.gains = pseudo, refiner, coco_names(), []

    def fuse(self, sample: PairSample) -> np.ndarray:
        ycrcb = cv2.cvtColor(super().fuse(sample), cv2.COLOR_BGR2YCrCb)
        h, w = ycrcb.shape[:2]
        boxes = merge_pseudo_labels(self.pseudo.get(f"msrs/{sample.stem}", []), 0.3)
        objects = tuple((int(x1 * w), int(y1 * h), int(np.ceil(x2 * w)), int(np.ceil(y2 * h))) for x1, y1, x2, y2, _ in boxes)
        view = View(sample.thermal, ycrcb[..., 0], (0, 0, w, h), objects,
                    tuple(self.names[int(c)] for c in boxes[:, 4]), ycrcb[..., 1:])
        refined = self.refiner(ycrcb[..., 0], view, seed=0)
        if objects:
            s = self.refiner.oracle.scores(np.stack([ycrcb[..., 0], refined]), view)
            self.gains.append(float(s[1] - s[0]))
        ycrcb[..., 0] = refined
        return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)


def main() -> int:
    args = msrs_bench_args(__doc__.splitlines()[0], "outputs/teacher/refine_ceiling.json",
                           **{"--config": {"default": "config/train/idpo_v4.yaml",
                                           "help": "its refine: detection entry is used"},
                              "--fidelity": {"type": float, "help": "override the entry's fidelity weight"}})
    from ivfusion.teacher.train import IDPO_SECTIONS, load_config

    entry = next(r for r in load_config(args.config, IDPO_SECTIONS)["refine"] if r["objective"] == "detection")
    cfg = RefineConfig.from_dict({**entry, **({} if args.fidelity is None else {"fidelity": args.fidelity})})
    oracle = DetectionOracle(Detector(DetectorConfig(conf=0.05, iou=0.5, classes=BOX_CLASSES, imgsz=640)), iou=cfg.iou)
    pseudo = json.loads(Path("outputs/cache/student_detections.json").read_text())
    model = PALDM.from_pretrained(args.model)
    ds = open_dataset("msrs", split="all", limit=args.limit)
    refined = _Refined(model, args.steps, pseudo, Refiner(cfg, oracle))
    methods = [TeacherMethod(model, "PALDM/standard", steps=args.steps), refined]
    res = evaluate(ds, methods, metrics=True, detection=True)
    out = summary(res)
    out["pseudo_label_score_gain_mean"] = float(np.mean(refined.gains)) if refined.gains else None
    save_json(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
