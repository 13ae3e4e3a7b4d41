"""The shared datasets by name, their pinned splits, and where their peers' outputs are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ivfusion.data.pairs import PairsFolder
from ivfusion.errors import ConfigError
from ivfusion.paths import REPO_ROOT, shared_root

SHARED_DATASETS = ("roadscene", "msrs", "llvip", "m3fd")
SPLITS_DIR = REPO_ROOT / "config" / "splits"


@dataclass(frozen=True)
class EvalDataset:
    name: str
    folder: PairsFolder
    stems: tuple[str, ...]
    split: str
    peers_dir: Path | None


def load_split(name: str, split: str) -> list[str] | None:
    """Stems of a pinned split (``config/splits/<name>.yaml``), or None when the dataset has no split file."""
    path = SPLITS_DIR / f"{name}.yaml"
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text())
    if split not in doc:
        raise ConfigError(f"{path}: no split {split!r}; it has {[k for k in doc if isinstance(doc[k], list)]}")
    return list(doc[split])


def open_dataset(spec: str, *, split: str = "val", limit: int | None = None) -> EvalDataset:
    """A shared dataset name (``msrs``) or a pairs-folder path; ``split`` applies where a split file exists."""
    root = shared_root()
    if spec in SHARED_DATASETS:
        path, name = root / "datasets" / spec, spec
        peers = root / "peers" / spec
    else:
        path, name = Path(spec), Path(spec).name
        peers = None
    folder = PairsFolder(path)
    stems = list(folder.stems)
    used_split = "all"
    if split != "all":
        pinned = load_split(name, split)
        if pinned is not None:
            missing = sorted(set(pinned) - set(stems))
            if missing:
                raise ConfigError(f"split {name}/{split} names stems missing from {path}: {missing[:5]}")
            stems, used_split = pinned, split
    if limit is not None:
        stems = stems[:limit]
    return EvalDataset(name, folder, tuple(stems), used_split, peers if peers and peers.is_dir() else None)
