"""How much MSRS mAP could the teacher's property codes give at all? A ceiling, not a method.

    .venv/bin/python bench/teacher_object_ceiling.py [--model outputs/train/paldm/final] [--steps 5] [--threads 2]

For each MSRS frame the PALDM samples all 9 property codes (full frame, shared noise: the standard code's sample
is the `PALDM/standard` row of docs/teacher.md). The evaluation detector then runs on each code's frame (visible
chroma kept). Two composites **use the ground-truth labels** and so only bound what IDPO could learn:

* per image: the code whose frame gives the highest mean confidence over the image's labelled objects;
* per object: the standard frame with each labelled box taken from the code the detector scores best there.

Both are scored by the usual evaluator (fused and union labels). If even the per-object ceiling is near the
standard code, no preference over these candidates can raise MSRS mAP (docs/teacher.md, "IDPO v3").
"""

from __future__ import annotations


import cv2
import numpy as np

from ivfusion.data.pairs import PairSample
from ivfusion.detection import Detector
from ivfusion.evaluation.datasets import open_dataset
from ivfusion.evaluation.report import save_json, summary
from ivfusion.evaluation.runner import MAP_DETECTOR, evaluate
from ivfusion.teacher.data import View
from ivfusion.teacher.evaluate import msrs_bench_args, sample_codes
from ivfusion.teacher.idpo import winner_image
from ivfusion.teacher.oracles import DetectionOracle
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import STANDARD

MIN_GAIN = 0.05  # an object is taken from another code only when that beats the standard code by this much


class _Codes:
    """The 9 code frames of a pair and the detector's per-object confidence in each (the detection oracle's own
    ``object_scores``, with the evaluation detector), computed once per stem."""

    def __init__(self, model: PALDM, folder, steps: int) -> None:
        self.model, self.folder, self.steps = model, folder, steps
        self.oracle = DetectionOracle(Detector(MAP_DETECTOR), iou=0.5)
        self._stem, self._value = None, None

    def __call__(self, sample: PairSample) -> tuple[np.ndarray, np.ndarray, list, np.ndarray]:
        if self._stem != sample.stem:
            ycrcb = cv2.cvtColor(sample.bgr, cv2.COLOR_BGR2YCrCb)
            ys = sample_codes(self.model, sample.thermal, ycrcb[..., 0], steps=self.steps, seed=0)
            boxes = self.folder.labels(sample.stem, "fused") or []
            h, w = ys.shape[1:]
            view = View(None, None, (0, 0, w, h), tuple((g.x1, g.y1, g.x2, g.y2) for g in boxes),
                        tuple(g.class_name for g in boxes), ycrcb[..., 1:])
            self._stem, self._value = sample.stem, (ys, ycrcb, boxes, self.oracle.object_scores(ys, view))
        return self._value


class _Choice:
    """An ``ivfusion eval`` method: the standard code, or the best code per image / per labelled object."""

    kind = "ours"

    def __init__(self, codes: _Codes, mode: str) -> None:
        self.codes, self.mode, self.picked = codes, mode, []
        self.name = {"standard": "PALDM/standard", "image": "ceiling/per-image", "object": "ceiling/per-object"}[mode]

    def fuse(self, sample: PairSample) -> np.ndarray:
        ys, ycrcb, boxes, table = self.codes(sample)
        base = STANDARD.index
        if self.mode == "standard":
            y = ys[base]
        elif self.mode == "image":
            k = int(table.mean(axis=1).argmax()) if boxes else base
            self.picked.append(k)
            y = ys[k]
        else:
            h, w = ys.shape[1:]
            paste = [[max(0, int(g.x1)), max(0, int(g.y1)), min(w, int(np.ceil(g.x2))), min(h, int(np.ceil(g.y2))),
                      int(table[:, j].argmax())] for j, g in enumerate(boxes)
                     if table[:, j].max() - table[base, j] >= MIN_GAIN]
            self.picked += [k for *_, k in paste]
            y = winner_image(ys, {"winner": base, "paste": paste})
        out = ycrcb.copy()
        out[..., 0] = y
        return cv2.cvtColor(out, cv2.COLOR_YCrCb2BGR)


def main() -> int:
    args = msrs_bench_args(__doc__.splitlines()[0], "outputs/teacher/object_ceiling.json")
    ds = open_dataset("msrs", split="all", limit=args.limit)
    codes = _Codes(PALDM.from_pretrained(args.model), ds.folder, args.steps)
    methods = [_Choice(codes, mode) for mode in ("standard", "image", "object")]
    res = evaluate(ds, methods, metrics=False, detection=True)
    out = {name: r["detection"] for name, r in summary(res).items()}
    out["codes_picked"] = {m.name: np.bincount(m.picked, minlength=9).tolist() for m in methods[1:]}
    save_json(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
