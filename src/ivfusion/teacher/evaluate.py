"""Measuring the teacher: the property-code grid, per-code metric shifts, PALDM vs PCLDM, and an ``ivfusion eval``
method so the evaluator's mAP / fusion metrics apply to it unchanged.

* ``code_metrics`` -- on held-out crops, for each property code: fusion metrics of the sample, its L1 to its
  own prior target, and *code accuracy*: how often the sample is nearer (L1) to its own code's prior target
  than to the 8 others' (1/9 = chance). That is what "each code yields its property" means measurably.
* ``property_grid`` -- IR | VI | the 9 codes, one row per pair, labelled.
* ``TeacherMethod`` -- fused luminance from the teacher + the visible chroma (as the student does), BGR out.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ivfusion.data.pairs import PairSample
from ivfusion.teacher.adapters import PreferenceAdapters
from ivfusion.teacher.data import fold_of, to_tensor
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import ALL_CODES, NUM_CODES, STANDARD, PriorConfig, fusion_prior

GRID_METRICS = ("SD", "SF", "MI", "SCD", "VIF", "Qabf")


def msrs_bench_args(description: str, out: str, **extra: dict) -> argparse.Namespace:
    """The command line of the teacher's MSRS benches: ``--model --steps --threads --limit --out`` (+ ``extra``:
    option name -> ``add_argument`` keywords); sets the thread count."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="outputs/train/paldm/final")
    p.add_argument("--steps", type=int, default=5, help="DDIM steps per frame")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, help="first N MSRS pairs only")
    p.add_argument("--out", type=Path, default=Path(out))
    for name, kwargs in extra.items():
        p.add_argument(name, **kwargs)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    return args


def preset_embeddings(names: Sequence[str], dim: int = 384) -> dict[str, torch.Tensor]:
    """Preset name -> the MiniLM embedding of its description: the preference a PCLDM is sampled with, as in
    training (``oracles``' ``preference_text``)."""
    from ivfusion.fusion.preference import PRESETS
    from ivfusion.teacher.train import embedder

    return dict(zip(names, embedder("minilm", dim)([PRESETS[n] for n in names])))


def run_name(model_dir: str | Path) -> str:
    """A training run's name for reports: ``outputs/train/<run>/final`` -> ``<run>``, any other folder -> its name."""
    path = Path(model_dir)
    return path.parent.name if path.name == "final" else path.name


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(size, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return img[y0:y0 + s, x0:x0 + s]


def to_uint8(y: torch.Tensor) -> np.ndarray:
    """(1,H,W) or (H,W) in [0,1] -> uint8."""
    return (y.squeeze().clamp(0, 1) * 255.0 + 0.5).byte().cpu().numpy()


@torch.no_grad()
def sample_codes(model: PALDM, thermal: np.ndarray, vis_y: np.ndarray, *, steps: int, seed: int = 0,
                 preference: torch.Tensor | None = None, codes: Sequence[int] | None = None) -> np.ndarray:
    """(K, H, W) uint8: one sample per property code (all nine, or ``codes``) for one pair. The initial noise
    is shared and drawn once per seed, so a code's sample does not depend on which other codes were asked for."""
    dev = model.device
    code = torch.arange(NUM_CODES) if codes is None else torch.as_tensor(list(codes), dtype=torch.long)
    k = len(code)
    t = to_tensor(thermal).to(dev).unsqueeze(0).expand(k, -1, -1, -1)
    y = to_tensor(vis_y).to(dev).unsqueeze(0).expand(k, -1, -1, -1)
    pref = None if preference is None else preference.to(dev).view(1, -1).expand(k, -1)
    out = model.sample(t, y, code.to(dev), pref, steps=steps,
                       generator=torch.Generator().manual_seed(seed), shared_noise=True)
    return np.stack([to_uint8(o) for o in out])


def prior_codes(thermal: np.ndarray, vis_y: np.ndarray, prior: PriorConfig) -> np.ndarray:
    """(9, H, W) uint8 prior targets of one pair."""
    t = to_tensor(thermal).unsqueeze(0).expand(NUM_CODES, -1, -1, -1)
    y = to_tensor(vis_y).unsqueeze(0).expand(NUM_CODES, -1, -1, -1)
    return np.stack([to_uint8(o) for o in fusion_prior(t, y, torch.arange(NUM_CODES), prior)])


def code_metrics(model: PALDM, pairs: Sequence[tuple[np.ndarray, np.ndarray]], prior: PriorConfig, *, steps: int,
                 metrics: Sequence[str] = GRID_METRICS, progress: bool = True) -> dict[str, dict[str, float]]:
    """Per code name: mean metrics of samples and of prior targets over ``pairs`` of (thermal, vis_y) uint8 crops."""
    from tqdm import tqdm

    from ivfusion.metrics.fusion import corr2, fusion_metrics

    rows: dict[str, dict[str, list[float]]] = {c.name: {} for c in ALL_CODES}
    for i, (t, y) in enumerate(tqdm(pairs, desc="per-code metrics", unit="pair", disable=not progress)):
        samples, targets = sample_codes(model, t, y, steps=steps, seed=i), prior_codes(t, y, prior)
        s32, t32 = samples.astype(np.float32), targets.astype(np.float32)
        dist = np.abs(s32[:, None] - t32[None]).mean(axis=(2, 3))  # (9 samples, 9 targets)
        for k, code in enumerate(ALL_CODES):
            r = rows[code.name]
            for name, v in fusion_metrics(t, y, samples[k], metrics).items():
                r.setdefault(name, []).append(v)
            for name, v in fusion_metrics(t, y, targets[k], metrics).items():
                r.setdefault("prior_" + name, []).append(v)
            r.setdefault("L1_own_target", []).append(float(dist[k, k]))
            r.setdefault("code_accuracy", []).append(float(np.argmin(dist[k]) == k))
            r.setdefault("corr_T", []).append(corr2(samples[k], t))  # thermal axis: likeness to T ...
            r.setdefault("corr_V", []).append(corr2(samples[k], y))  # ... and to the visible luminance
            r.setdefault("prior_corr_T", []).append(corr2(targets[k], t))
            r.setdefault("mean", []).append(float(samples[k].mean()))
            r.setdefault("prior_mean", []).append(float(targets[k].mean()))
    return {name: {m: float(np.mean(v)) for m, v in r.items()} for name, r in rows.items()}


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR) if tile.ndim == 2 else tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 14), (0, 0, 0), -1)
    cv2.putText(tile, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def property_grid(model: PALDM, pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], *, steps: int,
                  tile: int = 160, prior: PriorConfig | None = None) -> np.ndarray:
    """BGR grid: per pair (name, thermal, vis_y) a row IR | VI | the 9 codes (| 9 prior targets, if ``prior``)."""
    rows = []
    for i, (name, t, y) in enumerate(pairs):
        samples = sample_codes(model, t, y, steps=steps, seed=i)
        tiles = [_label(cv2.resize(t, (tile, tile)), f"IR {name}"), _label(cv2.resize(y, (tile, tile)), "VI (Y)")]
        tiles += [_label(cv2.resize(s, (tile, tile)), c.name) for s, c in zip(samples, ALL_CODES)]
        rows.append(np.concatenate(tiles, axis=1))
        if prior is not None:
            targets = prior_codes(t, y, prior)
            blank = np.zeros((tile, tile, 3), np.uint8)
            tiles = [_label(blank, "prior targets"), blank.copy()]
            tiles += [_label(cv2.resize(s, (tile, tile)), "prior " + c.name) for s, c in zip(targets, ALL_CODES)]
            rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


@dataclass
class TeacherMethod:
    """An ``ivfusion eval`` method: the teacher's fused luminance with the visible chroma (YCrCb), BGR uint8."""

    model: PALDM | PreferenceAdapters  # ``PreferenceAdapters``: the preference also picks the weights
    name: str
    preference: torch.Tensor | None = None  # (text_dim,) embedding; None = PALDM behaviour
    code: int = STANDARD.index
    steps: int = 8
    seed: int = 0
    kind: str = "ours"
    guidance: float = 1.0  # classifier-free guidance on the preference (PALDM.guided); 1 = none
    negative: torch.Tensor | None = None  # guide away from this preference's embedding, not the zero one

    @torch.no_grad()
    def fuse(self, sample: PairSample) -> np.ndarray:
        ycrcb = cv2.cvtColor(sample.bgr, cv2.COLOR_BGR2YCrCb)
        dev = self.model.device
        t, y = to_tensor(sample.thermal).to(dev).unsqueeze(0), to_tensor(ycrcb[..., 0]).to(dev).unsqueeze(0)
        pref, neg = (None if e is None else e.to(dev).view(1, -1) for e in (self.preference, self.negative))
        g = torch.Generator().manual_seed(self.seed)
        out = self.model.sample(t, y, self.code, pref, steps=self.steps, generator=g, guidance=self.guidance,
                                negative=neg)
        ycrcb[..., 0] = to_uint8(out[0])
        return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)

    def reseeded(self, seed: int) -> TeacherMethod:
        """This method sampling from noise ``seed``, on the same (already loaded) model."""
        return replace(self, seed=seed)


@dataclass
class CrossFitted:
    """An ``ivfusion eval`` method that fuses each frame with the fold model that never trained on it: frame
    ``<dataset>/<stem>`` in fold k (:func:`ivfusion.teacher.data.fold_of`) goes to ``methods[k]``, the run that
    held fold k out. Together the folds evaluate every frame of a set that was also the (label-free) training
    domain, with no frame judged by a model that saw it."""

    methods: Sequence[TeacherMethod]
    name: str
    dataset: str = "msrs"
    kind: str = "ours"

    def fuse(self, sample: PairSample) -> np.ndarray:
        return self.methods[fold_of(f"{self.dataset}/{sample.stem}", len(self.methods))].fuse(sample)

    @property
    def seed(self) -> int:
        return self.methods[0].seed

    def reseeded(self, seed: int) -> CrossFitted:
        """Every fold's method sampling from noise ``seed``."""
        return replace(self, methods=[m.reseeded(seed) for m in self.methods])


@dataclass
class CachedFrames:
    """An ``ivfusion eval`` method that keeps a teacher method's fused frames on disk and reads them back.

    Why: a teacher frame costs seconds of CPU (about 12 s per MSRS frame and method at 5 DDIM steps on the dev
    machine) and is a deterministic function of the weights, the preference, the code, the DDIM steps, the guidance
    and the noise seed, yet every evaluation of a new run sampled PALDM's and the earlier runs' frames again.
    ``key`` fingerprints everything but the seed (:func:`ivfusion.teacher.data.fingerprint`), so changed weights
    or settings land in another folder; PNG is lossless, so a cached frame is byte-identical to the one sampled."""

    method: TeacherMethod
    root: Path
    key: str

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def kind(self) -> str:
        return self.method.kind

    @property
    def seed(self) -> int:
        return self.method.seed

    @property
    def folder(self) -> Path:
        return Path(self.root) / f"{self.key[:24]}_s{self.seed}"

    def fuse(self, sample: PairSample) -> np.ndarray:
        path = self.folder / f"{sample.stem}.png"
        if path.exists():
            return cv2.imread(str(path), cv2.IMREAD_COLOR)
        fused = self.method.fuse(sample)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}")  # written whole, then renamed: a killed run leaves no half frame
        if not cv2.imwrite(str(tmp), fused, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {tmp}")
        tmp.replace(path)
        return fused

    def reseeded(self, seed: int) -> CachedFrames:
        """The wrapped method at noise ``seed``, cached in that seed's folder."""
        return replace(self, method=self.method.reseeded(seed))


@torch.no_grad()
def before_after(paldm: PALDM, pcldm: PALDM | PreferenceAdapters, thermal: np.ndarray, vis_y: np.ndarray,
                 preference: torch.Tensor, *, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (PALDM with the standard code, PCLDM with the standard code + ``preference``), same initial noise."""
    dev = pcldm.device
    t, y = to_tensor(thermal).to(dev).unsqueeze(0), to_tensor(vis_y).to(dev).unsqueeze(0)
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    before = to_uint8(paldm.sample(t, y, STANDARD.index, None, steps=steps, generator=g())[0])
    after = to_uint8(pcldm.sample(t, y, STANDARD.index, preference.to(dev).view(1, -1), steps=steps,
                                  generator=g())[0])
    return before, after


@torch.no_grad()
def compare_on_instances(paldm: PALDM, pcldm: PALDM | PreferenceAdapters, prefs: dict, rows: Sequence[dict],
                         embeddings: dict[str, torch.Tensor], *, steps: int, oracles: dict, prior: PriorConfig,
                         text_codes: dict[str, int] | None = None,
                         samples: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
                         ) -> dict[str, dict[str, float]]:
    """Before (PALDM, standard code, no preference) vs after (PCLDM, standard code + the pair's preference) on
    the instances of ``rows`` (held-out preference pairs), scored the way each oracle judges:
    detection -> detector confidence on the instance (0 = missed) and recall at 0.25; visual -> VIF, Qabf, SD,
    SF inside the region; text -> L1 to the prior target of the code the prompt asks for. ``samples``, if given,
    receives the (before, after) images per index into ``rows`` (for figures, without sampling again)."""
    from ivfusion.teacher.data import instance_view

    patch, out = prefs["patch"], {}
    for o in sorted({r["oracle"] for r in rows}):
        acc: dict[str, list[float]] = {}
        for i, r in ((i, r) for i, r in enumerate(rows) if r["oracle"] == o):
            inst = prefs["instances"][r["instance"]]
            view = instance_view(prefs["images"], inst, patch)
            t, y = view.ir, view.vi
            before, after = before_after(paldm, pcldm, t, y, embeddings[r["text"]], steps=steps, seed=r["instance"])
            if samples is not None:
                samples[i] = (before, after)
            pair = np.stack([before, after])
            if o == "detection":
                s = oracles["detection"].scores(pair, view)
                vals = {"conf": s, "recall@0.25": (s >= 0.25).astype(float)}
            elif o == "visual":
                table = oracles["visual"].table(view, pair)
                vals = {m: table[:, j] for j, m in enumerate(oracles["visual"].metrics)}
            else:
                code = (text_codes or {})[r["text"]]
                target = prior_codes(t, y, prior)[code].astype(np.float32)
                vals = {"L1_to_asked_code": np.abs(pair.astype(np.float32) - target).mean(axis=(1, 2))}
            for k, v in vals.items():
                acc.setdefault(k + " before", []).append(float(v[0]))
                acc.setdefault(k + " after", []).append(float(v[1]))
        out[o] = {"instances": len(next(iter(acc.values()), [])), **{k: float(np.mean(v)) for k, v in acc.items()}}
    return out
