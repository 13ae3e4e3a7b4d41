"""Paired bootstrap of mAP@0.5 over images: is method A really above method B, or is it the noise of a small set?

One evaluation's detections are resampled: N draws of the images with replacement, every method's mAP recomputed on
the same draw, so the difference A - B is paired (both methods see the same hard and easy frames). Used by
``bench/map_bootstrap.py`` and the teacher's MSRS report (35 labelled frames: +-0.02 is within noise).

A sampler (the diffusion teacher) adds its own noise: one noise seed's frame can gain or lose a detection by chance.
Several evaluations of the same methods that differ only in that seed ("replicates") are resampled together: a drawn
image brings all its replicates, so the interval stays one over images while the sampler's noise is averaged inside
each image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from ivfusion.evaluation.runner import EVAL_CLASSES, EvalResult
from ivfusion.metrics.detection import DATASET_TO_COCO, evaluate_detections, map_predictions


@dataclass(frozen=True)
class PairedDifference:
    a: str
    b: str
    labels: str
    map_a: float
    map_b: float
    low: float  # 5th percentile of the bootstrapped difference A - B
    high: float  # 95th percentile
    p_a_above: float  # share of draws with A > B

    @property
    def diff(self) -> float:
        return self.map_a - self.map_b

    def line(self) -> str:
        return (f"labels={self.labels:<5} {self.a} {self.map_a:.3f} vs {self.b} {self.map_b:.3f}: diff {self.diff:+.3f}"
                f"  90% CI [{self.low:+.3f}, {self.high:+.3f}]  P(A > B) = {self.p_a_above:.2f}")


def paired_map_bootstrap(result: EvalResult | Sequence[EvalResult], folder, stems: list[str], *, a: int = 0,
                         b: Sequence[int] | None = None, labels: str = "fused", n: int = 1000, seed: int = 0,
                         progress: bool = True) -> list[PairedDifference]:
    """Method ``a`` of ``result`` against methods ``b`` (default: every other one), mAP@0.5 on ``folder``'s
    ``labels``."""
    b = [j for j in range(len(replicates(result)[0].methods)) if j != a] if b is None else list(b)
    return bootstrap_pairs(result, folder, stems, [(a, j) for j in b], labels=labels, n=n, seed=seed,
                           progress=progress)


def replicates(result: EvalResult | Sequence[EvalResult]) -> list[EvalResult]:
    """One evaluation, or several of the same methods in the same order (replicates), as a list; anything else is
    refused, since pooling different methods would compare the wrong things."""
    results = [result] if isinstance(result, EvalResult) else list(result)
    if not results:
        raise ValueError("no evaluation to bootstrap")
    names = [m.name for m in results[0].methods]
    for r in results[1:]:
        if [m.name for m in r.methods] != names:
            raise ValueError(f"replicates must hold the same methods in the same order: {names} vs "
                             f"{[m.name for m in r.methods]}")
    return results


def pool_runs(result: EvalResult | Sequence[EvalResult], base: int, runs: Sequence[int],
              name: str) -> list[EvalResult]:
    """Independent training runs of one recipe (another PALDM or reward seed taken through the same steps) as
    replicates of one method against ``base``: each evaluation becomes one two-method replicate (``base``, run) per
    run, with the run renamed ``name``. The bootstrap then asks whether the recipe, not one lucky run, is above
    ``base``; ``base`` counts once per replicate, which leaves its mAP unchanged. In the replicates, method 0 is
    ``base`` and method 1 the run."""
    if len(runs) < 2 or base in runs:
        raise ValueError(f"pool at least two runs other than the base {base}: got {list(runs)}")
    out = []
    for r in replicates(result):
        for j in runs:
            run = replace(r.methods[j], name=name)
            out.append(replace(r, methods=[r.methods[base], run]))
    return out


def bootstrap_pairs(result: EvalResult | Sequence[EvalResult], folder, stems: list[str],
                    pairs: Sequence[tuple[int, int]], *, labels: str = "fused", n: int = 1000, seed: int = 0,
                    progress: bool = True) -> list[PairedDifference]:
    """A - B for each (A, B) index pair of the methods; every method involved is scored once per draw. With
    replicates, each method's mAP is pooled over all of them (every image counted once per replicate)."""
    results = replicates(result)
    used = sorted({i for pair in pairs for i in pair})
    col = {m: k for k, m in enumerate(used)}
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(stems), len(stems)) for _ in range(n)]
    preds = [[{s: map_predictions(r.methods[m].detections.get(s, []), DATASET_TO_COCO) for s in stems}
              for r in results] for m in used]
    gt = {s: folder.labels(s, labels) or [] for s in stems}

    def map50s(idx: np.ndarray) -> list[float]:
        """mAP@0.5 of every method on the images ``idx``; resampled images (and their replicates) get unique keys
        so a twice-drawn image counts twice, and the keys and ground truth are built once per draw for all
        methods."""
        keys = [(f"{stems[i]}#{k}#{r}", i, r) for k, i in enumerate(idx) for r in range(len(results))]
        truth = {key: gt[stems[i]] for key, i, _ in keys}
        return [evaluate_detections({key: p[r][stems[i]] for key, i, r in keys}, truth, EVAL_CLASSES,
                                    iou_thresholds=(0.5,)).map50  # only 0.5: a tenth of the matching
                for p in preds]

    observed = map50s(np.arange(len(stems)))
    boot = np.array([map50s(idx) for idx in tqdm(draws, desc=f"bootstrap ({labels})", disable=not progress)])
    out = []
    for a, b in pairs:
        d = boot[:, col[a]] - boot[:, col[b]]
        lo, hi = np.percentile(d, [5, 95])
        names = results[0].methods[a].name, results[0].methods[b].name
        out.append(PairedDifference(*names, labels, observed[col[a]], observed[col[b]], float(lo), float(hi),
                                    float((d > 0).mean())))
    return out


def paired_metric_bootstrap(result: EvalResult | Sequence[EvalResult], pairs: Sequence[tuple[int, int]], *,
                            n: int = 1000, seed: int = 0) -> list[dict[str, float | str]]:
    """A - B of every per-image fusion metric's mean, for each (A, B) index pair of the methods, with the same
    paired resampling of the images as the mAP bootstrap: is a fusion-metric shift more than the frames' noise?
    With replicates, each image's value is its mean over them. Rows: ``{"a", "b", "metric", "a_mean", "b_mean",
    "diff", "low", "high", "p_a_above", "frames_a_above"}``."""
    results = replicates(result)
    rng = np.random.default_rng(seed)
    out = []
    for a, b in pairs:
        ma, mb = results[0].methods[a], results[0].methods[b]
        if any(r.methods[i].stems != ma.stems for r in results for i in (a, b)):
            raise ValueError(f"{ma.name} and {mb.name} were scored on different images; a paired bootstrap "
                             "needs the same")
        draws = rng.integers(0, len(ma.stems), (n, len(ma.stems)))
        for metric in results[0].metric_names:
            va, vb = (np.mean([np.asarray(r.methods[i].metrics[metric], float) for r in results], axis=0)
                      for i in (a, b))
            d = va - vb
            boot = d[draws].mean(axis=1)
            lo, hi = np.percentile(boot, [5, 95])
            out.append({"a": ma.name, "b": mb.name, "metric": metric, "a_mean": float(va.mean()),
                        "b_mean": float(vb.mean()), "diff": float(d.mean()), "low": float(lo), "high": float(hi),
                        "p_a_above": float((boot > 0).mean()), "frames_a_above": float((d > 0).mean())})
    return out
