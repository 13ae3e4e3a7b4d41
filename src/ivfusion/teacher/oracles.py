"""Preference oracles: which of PALDM's candidates (one per property code) is preferred for one instance.

Each oracle returns ``(winner, loser)`` candidate indices, or None when it cannot tell them apart (a pair
with no margin teaches DPO nothing but noise), and names the preference text whose embedding conditions the
PCLDM on that pair:

* ``detection`` -- the shared YOLO detector (``ivfusion.detection``) on each candidate patch (with the visible
  chroma when the view has it, as the evaluation sees fused frames): per object, the highest confidence of a
  detection overlapping it (IoU >= ``iou``, same class when the view names classes), 0 when it is missed, so
  recall and confidence both count; the score is the mean over the instance's objects. With ``per_object``
  the verdict is made per object instead: the winner is the standard candidate with each object taken from
  the candidate the detector scores best there, the loser the standard candidate (``base``: its index, when the
  candidates are not the nine codes). Text: the ``detection`` preset description.
* ``visual`` -- fusion-quality metrics inside the instance region (plus a margin): by default VIF, Qabf, SD,
  SF (``ivfusion.metrics.fusion``), each ranked across candidates, ranks averaged. Text: the ``visual`` preset.
* ``text`` -- a free-text prompt mapped to the property it asks for: the cosine similarity of its sentence
  embedding (the student's MiniLM encoder) to each code's description (``properties.PropertyCode.text``);
  nearest code wins, farthest loses. Text: the prompt itself.

``candidates: [i, j, ...]`` (detection without ``per_object``, visual) makes an oracle compare only those
candidates, e.g. the standard one and its reward-refined version (``teacher.refine``, IDPO v4), so that a pair
isolates what the refinement changed.

Candidates are uint8 luminance patches (K, P, P); the oracle sees the instance through a
:class:`~ivfusion.teacher.data.View` (source patches, region, objects, chroma).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import cv2
import numpy as np
import torch

from ivfusion.errors import ConfigError
from ivfusion.fusion.preference import PRESETS
from ivfusion.metrics.detection import box_iou
from ivfusion.teacher.data import Box, View
from ivfusion.teacher.properties import ALL_CODES, STANDARD
Embed = Callable[[list[str]], torch.Tensor]  # texts -> (N, D) unit vectors
VISUAL_METRICS = ("VIF", "Qabf", "SD", "SF")
VIF_MIN_SIDE = 48  # VIF filters 'valid' and halves 3 times: 48 px still leaves its 4th scale a 3x3 window


class Oracle(Protocol):
    name: str

    def prefer(self, view: View, candidates: np.ndarray, index: int) -> tuple[int, int] | tuple[int, int, list] | None:
        """(winner, loser) candidate indices, or (winner, loser, paste): the winner with the boxes of ``paste``
        ``[[x1, y1, x2, y2, k], ...]`` taken from candidate k (``idpo.winner_image``); None = abstain."""

    def preference_text(self, index: int) -> str: ...


def _pick(scores: np.ndarray, min_margin: float, among: Sequence[int] | None = None) -> tuple[int, int] | None:
    """Best and worst candidate (indices into ``among`` when the scores are of that subset), or None when they
    differ by less than ``min_margin`` or all tie (a candidate is no preference over itself)."""
    w, l = int(np.argmax(scores)), int(np.argmin(scores))
    if w == l or scores[w] - scores[l] < min_margin:
        return None
    return (w, l) if among is None else (among[w], among[l])


def _subset(candidates: np.ndarray, among: Sequence[int] | None) -> np.ndarray:
    """The candidates an oracle compares: all, or ``among`` (e.g. the standard one and its refinement,
    ``teacher.refine``: the pair then isolates what the refinement changed)."""
    if among is None:
        return candidates
    if max(among) >= len(candidates):
        raise ConfigError(f"oracle candidates {list(among)}: only {len(candidates)} candidates per instance "
                          "(refined ones need a refine: section)")
    return candidates[list(among)]


class DetectionOracle:
    name = "detection"

    def __init__(self, detector=None, *, iou: float = 0.3, min_margin: float = 0.05, per_object: bool = False,
                 candidates: Sequence[int] | None = None, base: int = STANDARD.index) -> None:
        if per_object and candidates is not None:
            raise ConfigError("detection oracle: per_object pastes from all candidates; drop candidates:")
        if detector is None:
            from ivfusion.detection import Detector, DetectorConfig
            from ivfusion.training.data import BOX_CLASSES

            detector = Detector(DetectorConfig(conf=0.05, iou=0.5, classes=BOX_CLASSES, imgsz=256))
        self.detector, self.iou, self.min_margin, self.per_object = detector, iou, min_margin, per_object
        self.among = None if candidates is None else [int(c) for c in candidates]
        self.base = int(base)  # per_object: the candidate objects are pasted into (the standard code's sample)

    def object_scores(self, candidates: np.ndarray, view: View) -> np.ndarray:
        """(K, J): per candidate and object, the best matching detection's confidence (0 = missed)."""
        objects, out = view.objects, []
        for cand in candidates:
            if view.crcb is None:
                bgr = cv2.cvtColor(cand, cv2.COLOR_GRAY2BGR)
            else:
                bgr = cv2.cvtColor(np.dstack([cand, view.crcb]), cv2.COLOR_YCrCb2BGR)
            dets = self.detector.detect(bgr)
            ious = box_iou([[d.x1, d.y1, d.x2, d.y2] for d in dets], list(objects))
            row = []
            for j in range(len(objects)):
                name = view.classes[j] if view.classes else None
                row.append(max([d.score for d, iou in zip(dets, ious[:, j])
                                if iou >= self.iou and (name is None or d.class_name == name)], default=0.0))
            out.append(row)
        return np.asarray(out, np.float64).reshape(len(candidates), len(objects))

    def scores(self, candidates: np.ndarray, view: View) -> np.ndarray:
        """(K,) mean over the view's objects of :meth:`object_scores`."""
        return self.object_scores(candidates, view).mean(axis=1)

    def prefer(self, view, candidates, index):
        if not view.objects:
            return None  # a scene without objects: nothing for the detector to find
        if not self.per_object:
            return _pick(self.scores(_subset(candidates, self.among), view), self.min_margin, self.among)
        # Per object: the standard candidate with each object replaced by the candidate the detector likes best
        # there (when it beats the standard one by min_margin) wins over the standard candidate. Which rendering
        # helps differs per object (a pedestrian at night vs a car by day); one global code cannot say that.
        table, base = self.object_scores(candidates, view), self.base
        if base >= len(candidates):
            raise ConfigError(f"detection oracle: base candidate {base}, but only {len(candidates)} candidates per "
                              "instance; with data.candidate_codes / proposals, name the standard one's index")
        paste = [[*box, int(table[:, j].argmax())] for j, box in enumerate(view.objects)
                 if table[:, j].max() - table[base, j] >= self.min_margin]
        return (base, base, paste) if paste else None

    def preference_text(self, index: int) -> str:
        return PRESETS["detection"]


class VisualOracle:
    name = "visual"

    def __init__(self, *, metrics: Sequence[str] = VISUAL_METRICS, margin: int = 8, min_side: int = VIF_MIN_SIDE,
                 min_margin: float = 1.0, candidates: Sequence[int] | None = None) -> None:
        if min_side < VIF_MIN_SIDE:
            raise ConfigError(f"visual oracle: min_side must be >= {VIF_MIN_SIDE} (VIF's 4 scales), got {min_side}")
        self.metrics, self.margin, self.min_side, self.min_margin = tuple(metrics), margin, min_side, min_margin
        self.among = None if candidates is None else [int(c) for c in candidates]

    def region(self, box: Box, size: int) -> tuple[slice, slice]:
        """The box grown by ``margin`` and to at least ``min_side`` (metrics need windows); shifted, not clipped,
        to stay inside the patch (a box at the patch border still gets a full-size window)."""

        def span(lo: int, hi: int) -> slice:
            width = min(size, max(hi - lo + 2 * self.margin, self.min_side))
            start = int(np.clip(round((lo + hi) / 2 - width / 2), 0, size - width))
            return slice(start, start + width)

        return span(box[1], box[3]), span(box[0], box[2])

    def table(self, view: View, candidates: np.ndarray) -> np.ndarray:
        """(K, len(metrics)) metric values of each candidate inside the region."""
        from ivfusion.metrics.fusion import fusion_metrics

        ir, vi = view.ir, view.vi
        ys, xs = self.region(view.box, ir.shape[0])
        return np.array([[v for v in fusion_metrics(ir[ys, xs], vi[ys, xs], c[ys, xs], self.metrics).values()]
                         for c in candidates])

    def prefer(self, view, candidates, index):
        table = self.table(view, _subset(candidates, self.among))
        ranks = np.argsort(np.argsort(table, axis=0), axis=0).astype(np.float64)  # 0 = worst per metric
        return _pick(ranks.mean(axis=1), self.min_margin, self.among)

    def preference_text(self, index: int) -> str:
        return PRESETS["visual"]


class TextOracle:
    name = "text"

    def __init__(self, prompts: Sequence[str], embed: Embed) -> None:
        if not prompts:
            raise ConfigError("text oracle: needs at least one prompt")
        self.prompts = list(prompts)
        codes = torch.nn.functional.normalize(embed([c.text for c in ALL_CODES]).float(), dim=1)
        asks = torch.nn.functional.normalize(embed(self.prompts).float(), dim=1)
        self.similarity = (asks @ codes.t()).numpy()  # (prompts, codes)

    def code_for(self, prompt_index: int) -> tuple[int, int]:
        """(nearest code, farthest code) of one prompt."""
        s = self.similarity[prompt_index]
        return int(np.argmax(s)), int(np.argmin(s))

    def prefer(self, view, candidates, index):
        w, l = self.code_for(index % len(self.prompts))
        return (w, l) if w != l else None

    def preference_text(self, index: int) -> str:
        return self.prompts[index % len(self.prompts)]
