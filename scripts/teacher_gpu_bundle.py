"""Pack what an IDPO or reward run needs on the GPU machine into one folder (the CPU half of the CPU/GPU split).

    python scripts/teacher_gpu_bundle.py --config config/train/idpo_v6_f0.yaml --out .gpu_bundle
    python scripts/teacher_gpu_bundle.py --config config/train/reward_f0.yaml --out .gpu_bundle

The GPU machine has neither the shared data nor the shared OpenVINO detector, and takes at most 64 MiB of files.
So the CPU builds the preference cache (``ivfusion train idpo --prepare-only``) and this script copies:

* ``shared/datasets/<name>`` for the config's sources (without their labels when the run uses pseudo-labels) and
  the detector's ``metadata.yaml`` (class names, to match pseudo-labels to detections), under a ``shared/`` root
  for ``IVFUSION_SHARED``;
* ``init/``: the PALDM the run starts from (unless it is committed: then it travels with the repository);
  ``cache/``: the pseudo-label cache;
* ``preferences/``: the verdicts (``pairs.json``), the text embeddings, and the detection searches' maps only
  (``teacher.train.strip_refined``): the machine regenerates the candidates from their seeds and rebuilds the
  refinements from the maps.

A reward config's bundle has no ``preferences/``; in their place, the shared detector as its torch copy
(``torch_yolo.save_torch_copy``, in the export folder without the IR: the machine has no OpenVINO) and the
preset's embedding (``preference_<preset>.safetensors``: the machine has no sentence encoder). One bundle serves
every fold and seed of a recipe (they differ only in which windows they train on), and with several ``--config``
reward configs on the same sources and PALDM, each one's preset.

``scripts/teacher_gpu_train.sh`` unpacks it there and trains. The folder holds third-party data: give it a name
that ``.git/info/exclude`` ignores (the device tool carries it), never commit it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ivfusion.errors import ConfigError
from ivfusion.paths import default_detector_weights, shared_root
from ivfusion.teacher.reward import REWARD_SECTIONS
from ivfusion.teacher.train import (IDPO_SECTIONS, PROPOSAL_TEXTS, load_config, proposal_embeddings,
                                   strip_refined)

PREFERENCE_FILES = ("pairs.json", "texts.safetensors")


def _source_names(cfg: dict) -> list[str]:
    names = [s["name"] if isinstance(s, dict) else str(s) for s in cfg["data"]["sources"]]
    if any("/" in n for n in names):
        raise ConfigError(f"bundle: sources must be shared dataset names, got {names}")
    return names


def bundle(config: Path, out: Path, *more: Path) -> list[Path]:
    """Write the bundle for ``config`` (an IDPO or a reward config) into ``out`` (replaced); returns the files.
    ``more``: further reward configs whose presets the bundle also holds (same sources and PALDM)."""
    cfg = load_config(config, IDPO_SECTIONS + REWARD_SECTIONS)
    if "reward" not in cfg:
        if more:
            raise ConfigError("bundle: only reward configs share a bundle")
        return _idpo_bundle(load_config(config, IDPO_SECTIONS), out, config)
    from ivfusion.teacher.reward import RewardConfig

    configs = [load_config(c, REWARD_SECTIONS) for c in (config, *more)]
    for path, other in zip((config, *more), configs):  # checked before the old bundle is replaced
        if (_source_names(other), other["init_from"]) != (_source_names(cfg), cfg["init_from"]):
            raise ConfigError(f"bundle: {path} trains other sources or another PALDM than {config}")
        if RewardConfig.from_dict(other.get("reward")).weights:
            raise ConfigError(f"bundle: {path}: reward.weights must be empty (the shared detector), so the bundle's "
                              "copy is used")
    _reward_bundle(configs[0], out)
    for other in configs[1:]:
        _reward_preference(other, out)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _tracked(folder: Path) -> bool:
    """Whether git tracks ``folder``'s weights, so the device tool sends them with the working tree (which counts
    towards the same 64 MiB as the bundle)."""
    import subprocess

    from ivfusion.models.pretrained import WEIGHTS_NAME

    return subprocess.run(["git", "ls-files", "--error-unmatch", str(folder / WEIGHTS_NAME)],
                          capture_output=True).returncode == 0


def _common(cfg: dict, out: Path) -> None:
    """What every stage needs: the sources, the PALDM it starts from, the pseudo-label cache."""
    if out.exists():
        shutil.rmtree(out)
    # pseudo-labelled runs never read the dataset's labels: leave them behind
    skip = shutil.ignore_patterns("labels") if cfg["data"].get("objects") == "pseudo" else None
    for name in _source_names(cfg):
        shutil.copytree(shared_root() / "datasets" / name, out / "shared" / "datasets" / name, ignore=skip)
    if not _tracked(Path(cfg["init_from"])):  # a committed PALDM travels with the repository already
        shutil.copytree(cfg["init_from"], out / "init")
    pseudo = Path(cfg["data"].get("cache_dir", "outputs/cache")) / "student_detections.json"
    (out / "cache").mkdir()
    if pseudo.exists():  # the pseudo-labels (a labelled run may have none)
        shutil.copy2(pseudo, out / "cache" / pseudo.name)


def _idpo_bundle(cfg: dict, out: Path, config: Path) -> list[Path]:
    prefs = Path(cfg["output_dir"]) / "preferences"
    needed = (*PREFERENCE_FILES, *(("refined.safetensors",) if cfg.get("refine") else ()))
    missing = [f for f in needed if not (prefs / f).exists()]
    if missing:
        raise ConfigError(f"{prefs}: no {missing}; run `ivfusion train idpo --config {config} --prepare-only` first")
    _common(cfg, out)
    weights = default_detector_weights()
    (out / "shared" / "weights" / weights.name).mkdir(parents=True)
    shutil.copy2(weights / "metadata.yaml", out / "shared" / "weights" / weights.name / "metadata.yaml")
    (out / "preferences").mkdir()
    for f in PREFERENCE_FILES:
        shutil.copy2(prefs / f, out / "preferences" / f)
    if cfg.get("refine"):
        strip_refined(prefs / "refined.safetensors", out / "preferences" / "refined.safetensors")
    if cfg["data"].get("proposals"):  # their embeddings (built here if the proposals cache predates them)
        from ivfusion.teacher.paldm import PALDM

        dim = PALDM.from_pretrained(cfg["init_from"]).text_dim
        if proposal_embeddings(prefs, cfg["data"]["proposals"], cfg["data"], dim):
            shutil.copy2(prefs / PROPOSAL_TEXTS, out / "preferences" / PROPOSAL_TEXTS)
    _proposal_models(cfg, out)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _proposal_models(cfg: dict, out: Path) -> None:
    """``data.proposals``' models under ``proposals/<k>``, and ``proposals/paths.json``: where the config expects
    each (teacher_gpu_train.sh puts them there). The machine samples them again. Without a detection oracle they
    travel in float16 (half the bytes); the machine's proposals then differ from this one's by the rounding, so the
    verdicts cache, keyed by the models' bytes, is rebuilt there. A detection oracle cannot be rebuilt there (no
    detector), so its proposals travel byte for byte: the key holds and this machine's verdicts are used. To halve
    them, give the config float16 copies of the proposals and build its verdicts from those (IDPO v15)."""
    import json

    import torch

    from ivfusion.teacher.paldm import PALDM

    paths = [str(p["model"]) for p in cfg["data"].get("proposals") or []]
    if not paths:
        return
    exact = "detection" in (cfg.get("oracles") or {})
    for k, path in enumerate(paths):
        if exact:
            shutil.copytree(path, out / "proposals" / str(k))
        else:
            PALDM.from_pretrained(path).save_pretrained(out / "proposals" / str(k), dtype=torch.float16)
    (out / "proposals" / "paths.json").write_text(json.dumps(paths))


def _reward_bundle(cfg: dict, out: Path) -> list[Path]:
    """The reward stage differentiates the detector: its torch copy (no OpenVINO there) stands in the export
    folder, and the preset's embedding is computed here (no sentence encoder there)."""
    from ivfusion.detection.torch_yolo import TORCH_COPY, save_torch_copy

    _common(cfg, out)
    weights = default_detector_weights()
    save_torch_copy(weights, out / "shared" / "weights" / weights.name / TORCH_COPY)
    _reward_preference(cfg, out)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _reward_preference(cfg: dict, out: Path) -> None:
    from ivfusion.fusion.preference import PRESETS
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.reward import RewardConfig, preference_file
    from ivfusion.teacher.train import cached_text_embeddings

    rcfg = RewardConfig.from_dict(cfg.get("reward"))
    text = PRESETS[rcfg.preference]
    cached_text_embeddings(out / preference_file(rcfg.preference), [text], cfg["data"].get("text_encoder", "minilm"),
                           PALDM.from_pretrained(cfg["init_from"]).text_dim)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, nargs="+", required=True,
                   help="reward configs (one bundle, each one's preset), or one IDPO config whose preference "
                        "cache is built")
    p.add_argument("--out", type=Path, required=True, help="bundle folder (replaced)")
    args = p.parse_args()
    files = bundle(args.config[0], args.out, *args.config[1:])
    size = sum(f.stat().st_size for f in files)
    print(f"{args.out}: {len(files)} files, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
