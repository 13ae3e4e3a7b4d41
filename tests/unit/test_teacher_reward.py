"""Detector-reward fine-tuning of the teacher through its sampler (ivfusion.teacher.reward, DRaFT-1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ivfusion.errors import ConfigError
from ivfusion.teacher.data import Instance
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.reward import RewardConfig, sample_with_last_step_grad, train_reward, window_targets
from ivfusion.training.cli import main
from tests.unit.test_teacher import TINY, _one_thread, _script  # noqa: F401  (_one_thread: autouse, one thread)
from tests.unit.tiny_data import write_tiny_pairs


def test_the_tuned_sampler_is_the_evaluation_sampler_with_gradients_through_its_last_step():
    torch.manual_seed(0)
    reference = PALDM.from_config(TINY).eval().requires_grad_(False)
    policy = PALDM.from_config(TINY).eval()
    policy.load_state_dict(reference.state_dict())
    t, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    pref = torch.randn(2, TINY["text_dim"])
    out, ref = sample_with_last_step_grad(policy, reference, t, y, pref, 3, torch.Generator().manual_seed(5))
    # what the node's teacher evaluation samples (same noise, steps, code and preference) ...
    sampled = policy.sample(t, y, 4, pref, steps=3, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(out, sampled, atol=1e-5)
    # ... and, before any update, what the frozen reference makes from the same last-step latent
    assert torch.allclose(out, ref, atol=1e-5) and not ref.requires_grad
    out.mean().backward()
    assert policy.unet.conv_in.weight.grad.abs().sum() > 0
    assert policy.pref_proj.weight.grad.abs().sum() > 0  # the preference learns where it was zero


def test_window_targets_are_normalised_detector_rows_and_unknown_classes_are_refused():
    inst = Instance("msrs/a#w0", 0, 0, 0, (0, 0, 64, 64), ((8, 16, 24, 48),), ("person",))
    rows = window_targets(inst, 64, {"person": 0, "car": 2})
    assert rows[0].tolist() == pytest.approx([0, 16 / 64, 32 / 64, 16 / 64, 32 / 64])
    assert (rows[1:, 0] == -1).all()  # padding
    with pytest.raises(ConfigError, match="not the detector's"):
        ghost = Instance("msrs/a#w0", 0, 0, 0, (0, 0, 64, 64), ((8, 16, 24, 48),), ("ghost",))
        window_targets(ghost, 64, {"person": 0})
    with pytest.raises(ConfigError, match="unknown keys"):
        RewardConfig.from_dict({"detctor": 1.0})


def test_reward_fine_tuning_trains_a_pcldm_against_the_real_detector_copy(tmp_path: Path, shared_root: Path):
    if not (shared_root / "weights" / "yolov8n_int8_openvino_model").is_dir():
        pytest.skip(f"shared detector not found under {shared_root}: the reward is its PyTorch copy")
    write_tiny_pairs(tmp_path / "data", n=3, h=64, w=64, labels=True)
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    cfg = {"output_dir": str(tmp_path / "reward"), "init_from": str(tmp_path / "paldm"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "instances": "scenes", "patch": 64,
                    "held_out": {"folds": 3, "fold": 0}, "text_encoder": "hash", "cache_dir": str(tmp_path)},
           "reward": {"steps": 2, "anchor": 5.0},
           "train": {"seed": 1, "steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 0, "log_every": 1}}
    config = tmp_path / "reward.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["reward", "--config", str(config), "--no-progress", "--seed", "11"]) == 0  # `ivfusion train reward`
    assert yaml.safe_load((tmp_path / "reward" / "train_config.yaml").read_text())["train"]["seed"] == 11
    final = tmp_path / "reward" / "final"
    summary = json.loads((tmp_path / "reward" / "reward_summary.json").read_text())
    assert summary["windows_total"] == 3 and summary["windows_train"] == 2  # one frame's fold held out
    logs = [json.loads(line) for line in (tmp_path / "reward" / "log.jsonl").read_text().splitlines()]
    assert len(logs) == 3 and all(r["det"] > 0 for r in logs)
    assert logs[0]["change_grey"] == pytest.approx(0.0, abs=1e-3)  # the policy starts as PALDM
    tuned = PALDM.from_pretrained(final)
    assert tuned.pref_proj.weight.abs().sum() > 0  # PALDM's preference projection is zero until tuned
    cfg["reward"] = {"preference": "pedestrians"}
    with pytest.raises(ConfigError, match="preset"):
        train_reward({**cfg, "output_dir": str(tmp_path / "bad")}, progress=False)


def test_the_visual_objective_prefers_a_fusion_to_either_source_and_trains_without_a_detector(tmp_path: Path):
    from ivfusion.teacher.reward import RewardConfig, visual_loss

    torch.manual_seed(0)
    y = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(2, 1, 64, 64)
    thermal = (0.2 + 0.6 * (y > 0.5) + 0.02 * torch.rand(2, 1, 64, 64)).clamp(0, 1)  # a hot half, a little noise
    vis = (0.5 + 0.4 * torch.sin(y * 40)).expand(2, 1, 64, 64).contiguous()  # texture
    cfg = RewardConfig(objective="visual", ssim=1.0, scd=1.0, gradient=1.0)
    fused, parts = visual_loss((thermal + vis - 0.5).clamp(0, 1), thermal, vis, cfg)  # keeps both sources' detail
    assert fused < visual_loss(thermal, thermal, vis, cfg)[0] and fused < visual_loss(vis, thermal, vis, cfg)[0]
    assert parts["grad"] < visual_loss(0.5 * (thermal + vis), thermal, vis, cfg)[1]["grad"]  # averaging halves it
    flat = torch.full_like(vis, 0.5, requires_grad=True)
    visual_loss(flat, thermal, vis, cfg)[0].backward()
    assert flat.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="objective"):
        RewardConfig(objective="pretty")

    write_tiny_pairs(tmp_path / "data", n=2, h=64, w=64, labels=True)
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    cfg = {"output_dir": str(tmp_path / "visual"), "init_from": str(tmp_path / "paldm"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "instances": "scenes", "patch": 64,
                    "held_out": 0.0, "text_encoder": "hash", "cache_dir": str(tmp_path)},
           "reward": {"steps": 2, "objective": "visual", "preference": "visual",
                      "weights": str(tmp_path / "no_detector_here")},  # never loaded for `visual`
           "train": {"seed": 1, "steps": 2, "batch_size": 2, "log_every": 1}}
    train_reward(cfg, progress=False)
    logs = [json.loads(line) for line in (tmp_path / "visual" / "log.jsonl").read_text().splitlines()]
    assert len(logs) == 2 and all(r["visual"] > 0 and "det" not in r and "ssim_t" in r for r in logs)


def test_reward_trains_from_a_gpu_bundle_without_openvino_or_the_text_encoder(tmp_path: Path, shared_root: Path,
                                                                               monkeypatch: pytest.MonkeyPatch):
    """The CPU/GPU split of the reward stage: ``scripts/teacher_gpu_bundle.py`` packs the detector as its torch copy
    and the preset's embedding; a machine with neither OpenVINO nor the sentence encoder trains from that alone, to
    the same weights as the CPU."""
    import shutil

    from ivfusion.teacher import reward, train

    ir = shared_root / "weights" / "yolov8n_int8_openvino_model"
    if not ir.is_dir():
        pytest.skip(f"shared detector not found under {shared_root}: the reward is its PyTorch copy")
    shared = tmp_path / "shared"  # a shared root: the tiny set as "m3fd", the real detector
    write_tiny_pairs(shared / "datasets" / "m3fd", n=2, h=64, w=64, labels=True)
    (shared / "weights").mkdir()
    (shared / "weights" / ir.name).symlink_to(ir)
    monkeypatch.setenv("IVFUSION_SHARED", str(shared))
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    cfg = {"output_dir": str(tmp_path / "cpu"), "init_from": str(tmp_path / "paldm"),
           "data": {"sources": [{"name": "m3fd"}], "instances": "scenes", "patch": 64, "held_out": 0.0,
                    "text_encoder": "hash", "cache_dir": str(tmp_path / "cache")},
           "reward": {"steps": 2}, "train": {"seed": 1, "steps": 1, "batch_size": 2, "log_every": 1}}
    config = tmp_path / "reward.yaml"
    config.write_text(yaml.safe_dump(cfg))
    train_reward(cfg, progress=False)

    script = _script("teacher_gpu_bundle")
    out = tmp_path / "bundle"
    visual = tmp_path / "visual.yaml"  # a second recipe in the same bundle: only its preset's embedding is added
    visual.write_text(yaml.safe_dump({**cfg, "reward": {"objective": "visual", "preference": "visual"}}))
    script.bundle(config, out, visual)
    assert not list(out.rglob("*.xml")) and not (out / "preferences").exists()
    assert sorted(f.name for f in out.glob("preference_*")) == [reward.preference_file("detection"),
                                                                reward.preference_file("visual")]

    def no_encoder(kind, dim=384):
        raise AssertionError("the GPU machine has no sentence encoder")

    monkeypatch.setattr(train, "embedder", no_encoder)
    monkeypatch.setenv("IVFUSION_SHARED", str(out / "shared"))
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    name = reward.preference_file("detection")
    shutil.copy2(out / name, gpu / name)
    train_reward({**cfg, "output_dir": str(gpu), "init_from": str(out / "init")}, progress=False)
    first, second = (PALDM.from_pretrained(d / "final") for d in (tmp_path / "cpu", gpu))
    assert torch.equal(first.pref_proj.weight, second.pref_proj.weight)  # same windows, detector, preference, step
    with pytest.raises(ConfigError, match="reward.weights"):
        config.write_text(yaml.safe_dump({**cfg, "reward": {"weights": str(ir)}}))
        script.bundle(config, out)


def test_proposals_are_other_teachers_samples_of_the_candidates_own_noise(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """IDPO v7's candidates: PALDM's standard sample and a tuned teacher's, one noise, so a pair differs only by what
    the tuned teacher does differently."""
    from ivfusion.teacher.train import prepare_preferences

    write_tiny_pairs(tmp_path / "shared" / "datasets" / "m3fd", labels=True)  # a shared root: the bundle reads it
    (tmp_path / "shared" / "weights" / "yolov8n_int8_openvino_model").mkdir(parents=True)  # class names only
    (tmp_path / "shared" / "weights" / "yolov8n_int8_openvino_model" / "metadata.yaml").write_text(
        "names: {0: person}\n")
    monkeypatch.setenv("IVFUSION_SHARED", str(tmp_path / "shared"))
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    tuned = PALDM.from_pretrained(tmp_path / "paldm")
    torch.nn.init.normal_(tuned.pref_proj.weight, std=0.5)  # a teacher that reacts to the preference
    tuned.save_pretrained(tmp_path / "tuned")
    cfg = {"output_dir": str(tmp_path / "idpo"), "init_from": str(tmp_path / "paldm"),
           "data": {"sources": [{"name": "m3fd"}], "patch": 48, "candidate_steps": 2,
                    "candidate_codes": [4], "instances": "scenes", "held_out": 0.1, "text_encoder": "hash",
                    "cache_dir": str(tmp_path),
                    "proposals": [{"model": str(tmp_path / "paldm")},
                                  {"model": str(tmp_path / "tuned"), "preference": "detection"}]},
           "oracles": {"visual": {"metrics": ["MI", "SSIM"], "min_margin": 0.0, "candidates": [0, 2]}},
           "train": {"seed": 3}}
    prefs = prepare_preferences(cfg, PALDM.from_pretrained(tmp_path / "paldm"), progress=False)
    cands = prefs["candidates"]
    assert cands.shape == (3, 3, 48, 48)  # the standard code, then the two proposals
    assert (cands[:, 1] == cands[:, 0]).all()  # PALDM again, same noise: the same sample
    assert (cands[:, 2] != cands[:, 0]).any()  # the tuned teacher differs, by its conditioning alone
    assert prefs["pairs"] and all({p["winner"], p["loser"]} == {0, 2} for p in prefs["pairs"])
    assert (tmp_path / "idpo" / "preferences" / "proposals.safetensors").exists()

    # the GPU half (IDPO v8v2): the bundle carries the proposal models and their embeddings; there, without the
    # sentence encoder, the proposals are sampled again from the carried models
    import shutil

    from ivfusion.teacher import train

    config = tmp_path / "idpo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    (tmp_path / "idpo" / "preferences" / "texts.safetensors").write_bytes(b"")  # train_idpo writes it; not tested here
    script = _script("teacher_gpu_bundle")
    script.bundle(config, tmp_path / "bundle")
    paths = json.loads((tmp_path / "bundle" / "proposals" / "paths.json").read_text())
    assert paths == [str(tmp_path / "paldm"), str(tmp_path / "tuned")]
    assert (tmp_path / "bundle" / "preferences" / train.PROPOSAL_TEXTS).exists()
    gpu = tmp_path / "gpu"
    for k, _ in enumerate(paths):  # what teacher_gpu_train.sh does with paths.json, into fresh folders
        shutil.copytree(tmp_path / "bundle" / "proposals" / str(k), gpu / "models" / str(k))
    shutil.copytree(tmp_path / "bundle" / "preferences", gpu / "run" / "preferences")
    moved = {**cfg, "output_dir": str(gpu / "run"),
             "data": {**cfg["data"], "proposals": [{"model": str(gpu / "models" / "0")},
                                                   {"model": str(gpu / "models" / "1"), "preference": "detection"}]}}
    with monkeypatch.context() as m:
        # an encoder that is built (as train.embedder builds MiniLM: lazily) but fails if it is ever asked for a text
        m.setattr(train, "embedder", lambda *a: lambda texts: pytest.fail("the GPU machine has no sentence encoder"))
        m.setenv("IVFUSION_SHARED", str(tmp_path / "bundle" / "shared"))
        again = prepare_preferences(moved, PALDM.from_pretrained(tmp_path / "paldm"), progress=False)
    assert np.abs(again["candidates"].astype(int) - cands.astype(int)).max() <= 2  # float16 proposal weights
    # a detection oracle's verdicts cannot be rebuilt there (no detector): its proposals travel byte for byte, so
    # the verdicts' key, which hashes the models' files, is the same there (IDPO v15)
    from ivfusion.teacher.data import fingerprint

    cfg["oracles"] = {"detection": {}}
    config.write_text(yaml.safe_dump(cfg))
    script.bundle(config, tmp_path / "bundle2")
    for k, path in enumerate(paths):
        assert fingerprint(tmp_path / "bundle2" / "proposals" / str(k)) == fingerprint(Path(path))
    assert (tmp_path / "bundle2" / "init").is_dir()  # not committed: it travels in the bundle
    assert script._tracked(Path("models/teacher/paldm")) and not script._tracked(tmp_path / "paldm")

    cfg["data"]["proposals"] = [{"model": str(tmp_path / "tuned"), "preference": "pedestrians"}]
    with pytest.raises(ConfigError, match="proposals"):
        prepare_preferences(cfg, PALDM.from_pretrained(tmp_path / "paldm"), progress=False)


def test_joined_proposal_caches_are_what_sampling_both_proposals_makes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """scripts/teacher_join_proposals.py: two single-proposal runs' caches joined are the two-proposal run's cache,
    so that run samples nothing; a source given as "-" is sampled by the script to the same bytes; a source made from
    other weights is refused."""
    import shutil

    from ivfusion.teacher import idpo
    from ivfusion.teacher.train import prepare_preferences

    write_tiny_pairs(tmp_path / "data", labels=True)
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    tuned = PALDM.from_pretrained(tmp_path / "paldm")
    torch.nn.init.normal_(tuned.pref_proj.weight, std=0.5)
    tuned.save_pretrained(tmp_path / "tuned")
    a, b = {"model": str(tmp_path / "paldm")}, {"model": str(tmp_path / "tuned"), "preference": "visual"}

    def config(name: str, proposals: list[dict]) -> dict:
        return {"output_dir": str(tmp_path / name), "init_from": str(tmp_path / "paldm"),
                "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 48, "candidate_steps": 2,
                         "candidate_codes": [4], "instances": "scenes", "held_out": 0.1, "text_encoder": "hash",
                         "cache_dir": str(tmp_path), "proposals": proposals},
                "oracles": {"visual": {"metrics": ["MI", "SSIM"], "min_margin": 0.0, "candidates": [0, 1]}},
                "train": {"seed": 3}}

    paldm = PALDM.from_pretrained(tmp_path / "paldm")
    both = prepare_preferences(config("both", [a, b]), paldm, progress=False)["candidates"]  # sampled: the truth
    for name, p in (("only_a", a), ("only_b", b)):
        prepare_preferences(config(name, [p]), paldm, progress=False)
    joined = config("joined", [a, b])
    (tmp_path / "joined.yaml").write_text(yaml.safe_dump(joined))
    (tmp_path / "joined" / "preferences").mkdir(parents=True)
    shutil.copy(tmp_path / "only_a" / "preferences" / "candidates.safetensors", tmp_path / "joined" / "preferences")
    script = _script("teacher_join_proposals")
    only_a, only_b = tmp_path / "only_a" / "preferences", tmp_path / "only_b" / "preferences"
    script.join(tmp_path / "joined.yaml", [only_a, only_b])
    with monkeypatch.context() as m:
        m.setattr(idpo, "generate_candidates", lambda *a, **k: pytest.fail("the joined cache was not a hit"))
        got = prepare_preferences(joined, paldm, progress=False)["candidates"]
    assert got.shape == both.shape and np.array_equal(got, both)
    script.join(tmp_path / "joined.yaml", [only_a, Path("-")], progress=False)  # B sampled by the script
    with monkeypatch.context() as m:
        m.setattr(idpo, "generate_candidates", lambda *a, **k: pytest.fail("the joined cache was not a hit"))
        assert np.array_equal(prepare_preferences(joined, paldm, progress=False)["candidates"], both)
    with pytest.raises(ConfigError, match="not the samples"):  # B's samples offered as A's
        script.join(tmp_path / "joined.yaml", [only_b, only_a])
    with pytest.raises(ConfigError, match="one folder per proposal"):
        script.join(tmp_path / "joined.yaml", [only_a])

