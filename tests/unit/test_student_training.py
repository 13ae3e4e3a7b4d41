"""A 5-step training smoke run on a tiny synthetic pairs folder: writes a checkpoint, resumes from it."""

from __future__ import annotations

import json

import numpy as np

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
