"""A 5-step training smoke run on a tiny synthetic pairs folder: writes a checkpoint, resumes from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivfusion.errors import ConfigError
from ivfusion.models.student import StudentFusionNet
from ivfusion.training.trainer import latest_checkpoint, train

from tests.unit.tiny_data import write_tiny_pairs


def _cfg(data, out, steps):
    return {
        "output_dir": str(out),
        "model": {"width": 8, "grid_depth": 4, "downsample": 2, "cond_dim": 16, "guide_hidden": 4},
        "data": {"sources": [{"name": str(data)}], "crop": 32, "text_encoder": "random", "boxes": False,
                 "degradation": {"prob": 0.8}},
        "train": {"seed": 1, "steps": steps, "batch_size": 2, "lr": 1e-3, "warmup": 2, "log_every": 1,
                  "checkpoint_every": 3, "threads": 1},
        "presets": {"detection": {"t0": 0.8, "box_weight": 2.0}, "visual": {"t0": 0.0}, "balanced": {},
                    "low_light": {}, "fog": {}},
    }


def test_train_five_steps_checkpoint_and_resume(tmp_path):
    write_tiny_pairs(tmp_path / "data")
    out = tmp_path / "run"
    final = train(_cfg(tmp_path / "data", out, 5), progress=False)
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and ckpt.name == "step_0000005"
    assert {"model.safetensors", "config.json", "presets.safetensors", "optimizer.pt", "state.json"} <= {p.name for p in ckpt.iterdir()}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5] and all(np.isfinite(r["loss"]) for r in log)
    model = StudentFusionNet.from_pretrained(final)
    assert set(model.preset_embeddings) == {"detection", "visual", "balanced", "low_light", "fog"}
    # resume: continues at step 5 up to 7, does not start over
    train(_cfg(tmp_path / "data", out, 7), progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6, 7]
    assert json.loads((latest_checkpoint(out) / "state.json").read_text())["step"] == 7


def test_a_config_names_its_base_and_overrides_only_what_differs(tmp_path: Path) -> None:
    from ivfusion.training.loop import load_config

    (tmp_path / "recipe.yaml").write_text("output_dir: out/a\ndata: {patch: 256, held_out: {folds: 2, fold: 0}}\n"
                                          "train: {steps: 240, lr: 0.00005}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fold1.yaml").write_text("base: ../recipe.yaml\noutput_dir: out/b\n"
                                                 "data: {held_out: {fold: 1}}\ntrain: {steps: 480, lr: null}\n")
    cfg = load_config(tmp_path / "sub" / "fold1.yaml", ("output_dir", "data", "train"), ("data",))
    assert cfg == {"output_dir": "out/b", "data": {"patch": 256, "held_out": {"folds": 2, "fold": 1}},
                   "train": {"steps": 480}}  # null removed the base's lr
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "loop.yaml", ("data",), ())
    (tmp_path / "typo.yaml").write_text("base: recipe.yaml\ntrian: {steps: 1}\n")
    with pytest.raises(ConfigError, match="unknown sections"):
        load_config(tmp_path / "typo.yaml", ("output_dir", "data", "train"), ())


def test_every_shipped_training_config_loads() -> None:
    """The recipes docs/ quote: each parses, with its base, into its trainer's sections."""
    from ivfusion.teacher.reward import REWARD_SECTIONS
    from ivfusion.teacher.distill import DISTILL_SECTIONS
    from ivfusion.teacher.train import IDPO_SECTIONS, PALDM_SECTIONS, load_config
    from ivfusion.training.trainer import load_config as load_student

    configs = sorted((Path(__file__).parents[2] / "config" / "train").glob("*.yaml"))
    assert len(configs) > 40
    for path in configs:
        name = path.stem
        if name.startswith("student"):
            load_student(path)
        else:
            sections = {"paldm": PALDM_SECTIONS, "idpo": IDPO_SECTIONS, "reward": REWARD_SECTIONS,
                        "distill": DISTILL_SECTIONS}[name.split("_")[0]]
            load_config(path, sections)
