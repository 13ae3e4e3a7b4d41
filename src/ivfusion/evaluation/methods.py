"""What gets evaluated: any way of producing a fused frame for a dataset pair, behind one small interface.

A method is our fusion backend with a preference, a folder of precomputed outputs (published peers), or a
single source passed through (infrared-only and visible-only: the baselines every fusion method must beat
for detection, and a reminder that a copy of one source scores high on MI and VIF).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ivfusion.data.pairs import IMAGE_SUFFIXES, PairSample
from ivfusion.errors import ConfigError, IvfusionError
from ivfusion.fusion.base import FusionBackend
from ivfusion.fusion.preference import Preference, parse_preference


class FusionMethod(Protocol):
    name: str
    kind: str  # "ours", "baseline", "peer", "source"

    def fuse(self, sample: PairSample) -> np.ndarray:
        """BGR uint8 at the visible image's size; raises IvfusionError when it has no output for the pair."""
        ...


@dataclass
class BackendMethod:
    backend: FusionBackend
    preference: Preference
    name: str
    kind: str = "baseline"

    def fuse(self, sample: PairSample) -> np.ndarray:
        return self.backend.fuse(sample.thermal, sample.bgr, self.preference)


@dataclass
class FolderMethod:
    """Precomputed outputs ``<root>/<stem>.<ext>``; gray outputs are replicated to 3 channels."""

    root: Path
    name: str
    kind: str = "peer"
    _index: dict[str, Path] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"method {self.name}: output folder {self.root} does not exist")
        self._index = {p.stem: p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}

    def fuse(self, sample: PairSample) -> np.ndarray:
        path = self._index.get(sample.stem)
        if path is None:
            raise IvfusionError(f"method {self.name}: no output for {sample.stem} in {self.root}")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise IvfusionError(f"method {self.name}: cannot read {path}")
        h, w = sample.rgb.shape[:2]
        if img.shape[:2] != (h, w):
            raise IvfusionError(f"method {self.name}: {path} is {img.shape[1]}x{img.shape[0]}, the pair is {w}x{h}")
        return img


@dataclass
class SourceMethod:
    """One input passed through unchanged: ``infrared`` or ``visible``."""

    source: str
    kind: str = "source"

    @property
    def name(self) -> str:
        return f"{self.source}-only"

    def fuse(self, sample: PairSample) -> np.ndarray:
        if self.source == "infrared":
            return cv2.cvtColor(sample.thermal, cv2.COLOR_GRAY2BGR)
        return sample.bgr


def parse_method(spec: str, *, peers_dir: Path | None = None) -> FusionMethod:
    """``classical[:preference]``, ``student[:preference[@model_dir]]``, ``teacher[:preference[@model_dir]]``,
    ``peer:<Method>``, ``folder:<path>[=<name>]``, ``infrared``, ``visible``."""
    head, _, rest = spec.partition(":")
    if head == "classical":
        from ivfusion.fusion.factory import create_backend

        pref = parse_preference(rest or "balanced")
        return BackendMethod(create_backend("classical"), pref, f"classical/{pref.text}")
    if head == "student":  # student[:preference[@model_dir]]: the learned network (kind "ours")
        pref_text, _, model_dir = rest.partition("@")
        pref = parse_preference(pref_text or "balanced")
        backend = _student(model_dir)
        suffix = f"@{Path(model_dir).name}" if model_dir else ""
        return BackendMethod(backend, pref, f"student/{pref.text}{suffix}", kind="ours")
    if head == "teacher":  # teacher[:preference[@model_dir]]: the diffusion teacher, seconds per frame on a CPU
        return _teacher_method(*rest.partition("@")[::2])
    if head == "peer":
        if peers_dir is None:
            raise ConfigError(f"method {spec}: no peers folder for this dataset")
        return FolderMethod(peers_dir / rest, rest)
    if head == "folder":
        path, _, name = rest.partition("=")
        return FolderMethod(Path(path), name or Path(path).name, kind="ours")
    if head in ("infrared", "visible"):
        return SourceMethod(head)
    raise ConfigError(f"unknown method {spec!r}; use classical[:pref], student[:pref[@DIR]], teacher[:pref[@DIR]], "
                      "peer:NAME, folder:PATH[=NAME], infrared, visible")


@lru_cache(maxsize=None)
def _student(model_dir: str) -> FusionBackend:
    """One session per model for all of its preference methods: the preference is a per-call input."""
    from ivfusion.fusion.student import DEFAULT_MODEL_DIR, StudentFusion

    return StudentFusion(model_dir or DEFAULT_MODEL_DIR)


TEACHER_STEPS = 5  # the DDIM steps every teacher measurement in docs/teacher.md used


def _teacher_method(pref_text: str, model_dir: str) -> FusionMethod:
    """The teacher (``models/teacher/pcldm`` unless ``model_dir``) under a preset or free-text preference, embedded
    as in its training (MiniLM); no preference samples the PALDM it was tuned from. Noise seed 0, 5 DDIM steps."""
    from ivfusion.teacher.adapters import DEFAULT_TEACHER_DIR
    from ivfusion.teacher.evaluate import TeacherMethod, preset_embeddings
    from ivfusion.teacher.train import embedder

    folder = Path(model_dir) if model_dir else DEFAULT_TEACHER_DIR
    model, suffix = _teacher(str(folder)), f"@{folder.name}" if model_dir else ""
    if not pref_text:
        return TeacherMethod(model, f"teacher/none{suffix}", steps=TEACHER_STEPS)
    pref = parse_preference(pref_text)
    emb = (preset_embeddings([pref.preset], model.text_dim)[pref.preset] if pref.preset
           else embedder("minilm", model.text_dim)([pref.text])[0])
    return TeacherMethod(model, f"teacher/{pref.text}{suffix}", preference=emb, steps=TEACHER_STEPS)


@lru_cache(maxsize=None)
def _teacher(model_dir: str):
    """One loaded teacher for all of its preference methods (an adapter folder swaps its weights per preference)."""
    from ivfusion.teacher.adapters import load_teacher

    return load_teacher(model_dir)


def available_peers(peers_dir: Path | None) -> list[str]:
    if peers_dir is None or not peers_dir.is_dir():
        return []
    return sorted(p.name for p in peers_dir.iterdir() if p.is_dir())

