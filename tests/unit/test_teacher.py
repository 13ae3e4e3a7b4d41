"""The diffusion teacher (ivfusion.teacher): real diffusers parts, tiny configs, a few CPU steps each."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ivfusion.errors import ConfigError
from ivfusion.teacher.data import View, find_scenes, instance_mask, instance_view, load_images
from ivfusion.teacher.autoencoder import KLCodec, UnshuffleCodec, tiny_autoencoder_config
from ivfusion.teacher.idpo import dpo_loss, idpo_step, latent_mask, masked_mse
from ivfusion.teacher.merge import combine, extrapolate
from ivfusion.teacher.oracles import DetectionOracle, TextOracle, VisualOracle
from ivfusion.teacher.paldm import PALDM
from ivfusion.teacher.properties import ALL_CODES, NUM_CODES, PropertyCode, code_vector, fusion_prior
from ivfusion.teacher.train import train_idpo, train_paldm
from ivfusion.training.loop import latest_checkpoint

from tests.unit.tiny_data import write_tiny_pairs

TINY = {"codec": {"kind": "unshuffle", "factor": 2}, "cond_dim": 8, "text_dim": 16, "num_train_timesteps": 100,
        "unet": {"block_out_channels": [8, 16], "norm_num_groups": 4, "attention_head_dim": 2}}


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _script(name: str):
    """scripts/<name>.py as a module (scripts are not a package); the teacher test modules share this one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sources(seed=0, b=2, h=32, w=32):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    t = (0.3 + 0.5 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 5) ** 2).float()).expand(b, 1, h, w).clone()
    v = (0.5 + 0.2 * torch.sin(xx / 2.0) + 0.05 * torch.rand(b, 1, h, w, generator=g)).clamp(0, 1)
    return t, v


# ------------------------------------------------------------------------------------- codes and the prior
def test_property_codes_roundtrip_and_vectors():
    assert NUM_CODES == 9 and [c.index for c in ALL_CODES] == list(range(9))
    assert PropertyCode.from_index(7) == PropertyCode("more", "standard")
    assert code_vector(torch.tensor([0, 4, 8])).tolist() == [[-1, -1], [0, 0], [1, 1]]
    with pytest.raises(ConfigError):
        PropertyCode("hot", "standard")


def test_property_codes_change_the_prior_target_in_the_intended_direction():
    t, v = _sources(b=1)
    targets = {c.name: fusion_prior(t, v, torch.tensor([c.index])) for c in ALL_CODES}
    assert len({round(x.sum().item(), 3) for x in targets.values()}) == 9  # nine different targets
    dist_t = lambda name: (targets[name] - t).abs().mean().item()  # noqa: E731
    assert dist_t("T-more/D-standard") < dist_t("T-standard/D-standard") < dist_t("T-less/D-standard")
    grad = lambda name: (targets[name][..., 1:] - targets[name][..., :-1]).abs().mean().item()  # noqa: E731
    assert grad("T-standard/D-more") > grad("T-standard/D-standard") > grad("T-standard/D-less")


# ------------------------------------------------------------------------------------------------ codecs
def test_unshuffle_codec_is_exact_and_kl_codec_has_the_right_shape():
    y = torch.rand(2, 1, 16, 24)
    codec = UnshuffleCodec(factor=4)
    z = codec.encode(y)
    assert z.shape == (2, 16, 4, 6) and z.abs().max() <= 1.0
    assert torch.allclose(codec.decode(z), y, atol=1e-6)
    kl = KLCodec(vae_config=tiny_autoencoder_config(latent_channels=2, widths=(8, 8)))
    assert kl.factor == 2 and kl.encode(y).shape == (2, 2, 8, 12) and kl.decode(kl.encode(y)).shape == y.shape


# ------------------------------------------------------------------------------------------------- model
def test_paldm_samples_any_size_and_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = PALDM.from_config(TINY).eval()
    t, v = _sources(b=2, h=21, w=30)
    out = model.sample(t, v, torch.tensor([0, 8]), steps=3, generator=torch.Generator().manual_seed(1))
    assert out.shape == (2, 1, 21, 30) and 0.0 <= out.min() and out.max() <= 1.0
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors", "scheduler_config.json"}
    again = PALDM.from_pretrained(tmp_path / "m")
    out2 = again.sample(t, v, torch.tensor([0, 8]), steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, out2, atol=1e-6)
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)  # shipping format: float16 file, float32 model
    half = PALDM.from_pretrained(tmp_path / "half")
    assert next(half.parameters()).dtype == torch.float32
    out3 = half.sample(t, v, torch.tensor([0, 8]), steps=3, generator=torch.Generator().manual_seed(1))
    assert (out3 - out).abs().max() < 0.02
    with pytest.raises(ConfigError):
        model.sample(t, v, torch.tensor([0, 1, 2]), steps=3)
    with pytest.raises(ConfigError):
        PALDM.from_config({**TINY, "bogus": 1})



def test_weight_combinations_soup_and_extrapolate_along_the_fine_tuning_step(tmp_path):
    torch.manual_seed(0)
    ref = PALDM.from_config(TINY)
    ref.save_pretrained(tmp_path / "ref")
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01 * torch.randn_like(p))  # a "fine-tuned" run: the reference plus a small step
    ref.save_pretrained(tmp_path / "tuned")
    a = PALDM.from_pretrained(tmp_path / "ref").state_dict()
    b = PALDM.from_pretrained(tmp_path / "tuned").state_dict()
    soup = combine([tmp_path / "ref", tmp_path / "tuned"]).state_dict()
    twice = extrapolate(tmp_path / "ref", tmp_path / "tuned", 2.0).state_dict()
    same = extrapolate(tmp_path / "ref", tmp_path / "tuned", 1.0).state_dict()
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved
    for k in moved:
        assert torch.allclose(soup[k], (a[k] + b[k]) / 2, atol=1e-6)
        assert torch.allclose(twice[k] - b[k], b[k] - a[k], atol=1e-6)  # one more step of the same size
        assert torch.equal(same[k], b[k])
    with pytest.raises(ConfigError, match="sum to"):
        combine([tmp_path / "ref", tmp_path / "tuned"], [1.0, 1.0])
    with pytest.raises(ConfigError, match="at least two"):
        combine([tmp_path / "ref"])
    PALDM.from_config({**TINY, "cond_dim": 4}).save_pretrained(tmp_path / "other")
    with pytest.raises(ConfigError, match="configs differ"):
        combine([tmp_path / "ref", tmp_path / "other"])

def test_preference_projection_starts_at_zero_so_paldm_ignores_preferences():
    torch.manual_seed(0)
    model = PALDM.from_config(TINY).eval()
    t, v = _sources(b=1)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = model.sample(t, v, 4, None, steps=2, generator=g())
    b = model.sample(t, v, 4, torch.randn(1, 16), steps=2, generator=g())
    assert torch.equal(a, b)


# -------------------------------------------------------------------------------------------------- IDPO
def test_dpo_loss_matches_a_hand_computation():
    pw, pl = torch.tensor([0.10, 0.30]), torch.tensor([0.20, 0.25])
    rw, rl = torch.tensor([0.15, 0.20]), torch.tensor([0.15, 0.30])
    beta = 10.0
    stats = dpo_loss(pw, pl, rw, rl, beta)
    # pair 0: (0.10-0.20) - (0.15-0.15) = -0.10 -> inside = -5 * -0.10 = 0.5 ; pair 1: 0.05-(-0.10) = 0.15 -> -0.75
    inside = [0.5, -0.75]
    expected = sum(math.log(1 + math.exp(-x)) for x in inside) / 2
    assert stats.loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats.margin.tolist() == pytest.approx(inside)
    assert stats.accuracy == 0.5


def test_masked_mse_ignores_everything_outside_the_instance():
    pred, target = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1
    target[..., 0, 0] = 100.0  # outside
    target[:, 0, 1, 1] = 2.0  # inside: squared error 4 in one of 2 channels at one of 4 pixels
    assert masked_mse(pred, target, mask).item() == pytest.approx(4.0 / 2 / 4)
    assert latent_mask(torch.ones(1, 1, 1, 1).expand(1, 1, 4, 4).clone(), 2).shape == (1, 1, 2, 2)


def test_idpo_step_is_neutral_against_an_identical_reference_and_has_gradients():
    torch.manual_seed(0)
    ref = PALDM.from_config(TINY).eval().requires_grad_(False)
    policy = PALDM.from_config(TINY)
    policy.load_state_dict(ref.state_dict())
    t, v = _sources(b=2)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:20, 8:20] = 1
    batch = {"thermal": t, "vis_y": v, "winner": t, "loser": v, "mask": mask, "preference": torch.randn(2, 16)}
    stats = idpo_step(policy, ref, batch, beta=100.0, generator=torch.Generator().manual_seed(0))
    assert stats.loss.item() == pytest.approx(math.log(2.0), abs=1e-5) and stats.margin.abs().max() < 1e-5
    assert stats.winner_error.shape == (2,) and stats.winner_error.requires_grad and (stats.winner_error > 0).all()
    assert stats.anchor.item() == pytest.approx(0.0, abs=1e-10) and stats.anchor.requires_grad
    stats.loss.backward()
    assert policy.pref_proj.weight.grad is not None and policy.pref_proj.weight.grad.abs().sum() > 0

    # the anchor measures the policy's departure from the reference outside the mask only
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert idpo_step(policy, ref, batch, beta=100.0, generator=g()).anchor.item() > 0
    everywhere = {**batch, "mask": torch.ones(2, 1, 32, 32)}
    assert idpo_step(policy, ref, everywhere, beta=100.0, generator=g()).anchor.item() == 0.0


def test_preference_dropout_trains_the_zero_embedding_and_leaves_the_step_unchanged_at_0():
    torch.manual_seed(0)
    ref = PALDM.from_config(TINY).eval().requires_grad_(False)
    policy = PALDM.from_config(TINY)
    policy.load_state_dict(ref.state_dict())
    with torch.no_grad():  # a policy that reads the preference, unlike its reference
        policy.pref_proj.weight.normal_(0, 0.5)
    t, v = _sources(b=2)
    batch = {"thermal": t, "vis_y": v, "winner": t, "loser": v, "mask": torch.ones(2, 1, 32, 32),
             "preference": torch.nn.functional.normalize(torch.randn(2, 16), dim=1)}

    def step(b, dropout):
        return idpo_step(policy, ref, b, beta=100.0, generator=torch.Generator().manual_seed(3),
                         preference_dropout=dropout).loss.item()

    plain = step(batch, 0.0)
    assert plain == idpo_step(policy, ref, batch, beta=100.0, generator=torch.Generator().manual_seed(3)).loss.item()
    zeroed = step({**batch, "preference": torch.zeros(2, 16)}, 0.0)
    assert zeroed != pytest.approx(plain, abs=1e-6)
    assert step(batch, 0.999) == pytest.approx(zeroed, abs=1e-7)  # this seed drops both pairs: the zero embedding


def test_guidance_is_plain_sampling_at_1_and_the_zero_embedding_or_the_negative_preference_at_0():
    torch.manual_seed(0)
    model = PALDM.from_config(TINY).eval()
    t, v = _sources(b=1)
    pref = torch.nn.functional.normalize(torch.randn(1, 16), dim=1)

    def run(p, guidance):
        return model.sample(t, v, preference=p, steps=3, generator=torch.Generator().manual_seed(1), guidance=guidance)

    plain = run(pref, 1.0)
    assert torch.allclose(run(pref, 3.0), plain, atol=1e-6)  # a fresh PALDM ignores the preference: nothing to guide
    with torch.no_grad():
        model.pref_proj.weight.normal_(0, 0.5)
    cond, zero = run(pref, 1.0), run(torch.zeros_like(pref), 1.0)
    assert (cond - zero).abs().mean() > 1e-3
    assert torch.allclose(run(pref, 0.0), zero, atol=1e-5)  # guidance 0: the unconditional (zero embedding) sample
    assert (run(pref, 3.0) - zero).abs().mean() > (cond - zero).abs().mean()  # > 1: further from it than cond
    with pytest.raises(ConfigError, match="guidance needs a preference"):
        model.sample(t, v, steps=1, guidance=2.0)
    # a negative preference replaces the zero embedding: guidance 0 gives its sample, > 1 moves away from it
    other = torch.nn.functional.normalize(torch.randn(1, 16), dim=1)

    def away(guidance):
        return model.sample(t, v, preference=pref, steps=3, generator=torch.Generator().manual_seed(1),
                            guidance=guidance, negative=other)

    assert torch.allclose(away(1.0), cond, atol=1e-6)
    assert torch.allclose(away(0.0), run(other, 1.0), atol=1e-5)
    assert (away(3.0) - run(other, 1.0)).abs().mean() > (cond - run(other, 1.0)).abs().mean()
    assert not torch.allclose(away(3.0), run(pref, 3.0), atol=1e-4)  # not the zero embedding's guidance
    with pytest.raises(ConfigError, match="negative preference"):
        model.sample(t, v, preference=pref, steps=1, guidance=2.0, negative=torch.zeros(1, 8))


def test_preference_adapters_give_each_preset_its_own_run_mix_free_text_and_round_trip(tmp_path):
    from ivfusion.teacher.adapters import PreferenceAdapters, load_teacher

    torch.manual_seed(0)
    base = PALDM.from_config(TINY).eval()
    base.save_pretrained(tmp_path / "base")
    embeddings = {n: torch.nn.functional.normalize(torch.randn(16), dim=0) for n in ("visual", "detection")}
    runs = {}
    for i, name in enumerate(embeddings):  # two "fine-tuned runs": the base with its own change each
        run = PALDM.from_pretrained(tmp_path / "base")
        with torch.no_grad():
            for p in run.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * 0.02)
        runs[name] = run
        run.save_pretrained(tmp_path / name)
    adapters = PreferenceAdapters.from_runs(tmp_path / "base", {"visual": (tmp_path / "visual", 1.0),
                                                                 "detection": (tmp_path / "detection", 3.0)},
                                            embeddings)
    adapters.save_pretrained(tmp_path / "adapters")
    loaded = load_teacher(tmp_path / "adapters")
    assert isinstance(loaded, PreferenceAdapters) and loaded.names == ["visual", "detection"]
    assert isinstance(load_teacher(tmp_path / "base"), PALDM)
    t, v = _sources(b=1)

    def sample(model, pref, guidance=1.0):
        return model.sample(t, v, preference=None if pref is None else pref.view(1, -1), steps=3, guidance=guidance,
                            generator=torch.Generator().manual_seed(1))

    # a preset's embedding: exactly its run, at the guidance it was measured at; no preference: the PALDM
    vis, det = sample(loaded, embeddings["visual"]), sample(loaded, embeddings["detection"])
    assert torch.allclose(vis, sample(runs["visual"], embeddings["visual"]), atol=1e-5)
    assert torch.allclose(det, sample(runs["detection"], embeddings["detection"], 3.0), atol=1e-5)
    assert torch.allclose(sample(loaded, None), sample(base, None), atol=1e-6)
    assert (vis - det).abs().mean() > 1e-3
    # free text between the two presets mixes them: its weights are in between, its sample differs from both
    between = torch.nn.functional.normalize(embeddings["visual"] + embeddings["detection"], dim=0)
    w = loaded.routing(between)
    assert torch.allclose(w.sum(), torch.tensor(1.0)) and (w > 0.2).all()
    mixed = sample(loaded, between)
    assert (mixed - vis).abs().mean() > 1e-4 and (mixed - det).abs().mean() > 1e-4
    # a batch with both presets: each row as if sampled alone (shared noise)
    both = loaded.sample(t.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1),
                         preference=torch.stack([embeddings["visual"], embeddings["detection"]]), steps=3,
                         shared_noise=True, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(both[0:1], vis, atol=1e-5) and torch.allclose(both[1:2], det, atol=1e-5)
    # linked to the base folder with int8 deltas (models/teacher/pcldm's form): no copy of the base, each preset's
    # sample within the int8 rounding of its run's, and the folder is a fraction of the self-contained one
    linked = adapters.save_pretrained(tmp_path / "linked", base_dir=tmp_path / "base", int8=True)
    assert not (linked / "model.safetensors").exists()
    small = load_teacher(linked)
    assert small.names == ["visual", "detection"] and [s.guidance for s in small.specs] == [1.0, 3.0]
    for name, full in (("visual", vis), ("detection", det)):
        err = (sample(small, embeddings[name]) - full).abs().max()
        assert 0 < err < 0.02 * (full - sample(base, None)).abs().max()  # rounded, and far below the change
    size = (tmp_path / "linked" / "adapters.safetensors").stat().st_size
    assert size < 0.5 * (tmp_path / "adapters" / "adapters.safetensors").stat().st_size
    with pytest.raises(ConfigError, match="does not hold the PALDM"):
        adapters.save_pretrained(tmp_path / "bad", base_dir=tmp_path / "visual")
    moved = tmp_path / "elsewhere" / "linked"  # copied without the base folder beside it
    moved.mkdir(parents=True)
    for f in ("adapters.json", "adapters.safetensors"):
        (moved / f).write_bytes((linked / f).read_bytes())
    with pytest.raises(ConfigError, match="keep the two folders together"):
        load_teacher(moved)
    PALDM.from_pretrained(tmp_path / "visual").save_pretrained(tmp_path / "base")  # the base changed under the link
    with pytest.raises(ConfigError, match="SHA-256 differs"):
        load_teacher(linked)
    with pytest.raises(ConfigError, match="not a fine-tuned copy"):
        PALDM.from_config({**TINY, "cond_dim": 4}).save_pretrained(tmp_path / "other")
        PreferenceAdapters.from_runs(tmp_path / "base", {"visual": (tmp_path / "other", 1.0)}, embeddings)
    with pytest.raises(ConfigError, match="no embedding"):
        PreferenceAdapters.from_runs(tmp_path / "base", {"text": (tmp_path / "visual", 1.0)}, embeddings)


def test_committed_teacher_is_the_committed_paldm_plus_one_small_int8_change_per_preference():
    """models/teacher/pcldm as shipped: what docs/teacher.md measured is this folder's model."""
    from ivfusion.teacher.adapters import INT8, PreferenceAdapters, load_teacher

    root = Path(__file__).parents[2] / "models" / "teacher"
    config = json.loads((root / "pcldm" / "adapters.json").read_text())
    assert config["base"] == "../paldm" and config["deltas"] == INT8
    assert not (root / "pcldm" / "model.safetensors").exists()
    assert (root / "pcldm" / "adapters.safetensors").stat().st_size < 10e6  # two int8 deltas, not a copy of the base
    teacher, paldm = load_teacher(root / "pcldm"), load_teacher(root / "paldm")
    assert isinstance(teacher, PreferenceAdapters) and isinstance(paldm, PALDM)
    assert {s.name: s.guidance for s in teacher.specs} == {"visual": 1.0, "detection": 3.0}
    with pytest.raises(ConfigError, match="load_teacher"):  # not a PALDM folder: the message names the loader
        PALDM.from_pretrained(root / "pcldm")
    t, v = _sources(b=1, h=64, w=64)

    def sample(model, pref):
        return model.sample(t, v, preference=pref, steps=2, generator=torch.Generator().manual_seed(1)) * 255

    base = sample(paldm, None)
    assert torch.equal(sample(teacher, None), base)  # no preference: the PALDM itself
    out = {s.name: sample(teacher, teacher.embeddings[i].view(1, -1)) for i, s in enumerate(teacher.specs)}
    # each preset its own documented change: `visual` more contrast (SD), `detection` brighter
    assert out["visual"].std() > base.std() + 1.0
    assert (out["detection"] - base).mean() > 0.5
    assert (out["visual"] - out["detection"]).abs().mean() > 1.0


def test_adapter_arguments_and_guidance_curve_points_are_read_as_documented(tmp_path):
    import argparse
    import json

    parse = _script("teacher_adapters").parse_adapter
    assert parse("detection=outputs/train/idpo_v13_f0/final@3") == ("detection", "outputs/train/idpo_v13_f0/final", 3.0)
    assert parse("visual=runs/v12v") == ("visual", "runs/v12v", 1.0)
    for bad in ("visual", "=runs/x", "visual=runs/x@high"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
    row, det = {"labels": "fused", "diff": 0.03, "low": 0.001, "high": 0.06}, "PCLDM idpo_v13/detection (guidance 3)"
    (tmp_path / "r.json").write_text(json.dumps({
        "seeds": [0, 1],
        "bootstrap_vs_first": [{**row, "a": det}, {**row, "a": det, "labels": "union"},
                               {**row, "a": "PCLDM idpo_v13/visual (cross-fitted)"}],
        "metrics_vs_first": [{"a": det, "metric": "MI", "diff": -0.2}]}))
    points = _script("teacher_guidance_plot").points([tmp_path / "r.json"], "detection")
    assert points == {"idpo_v13": [{"guidance": 3.0, "seeds": "0,1", "map": (0.03, 0.001, 0.06), "MI": -0.2,
                                    "VIF": None}]}


# ----------------------------------------------------------------------------------------------- oracles
class _FakeDetector:
    def __init__(self, scores):
        self.scores, self.calls = list(scores), 0

    def detect(self, bgr):
        from ivfusion.detection import Detection

        s = self.scores[self.calls]
        self.calls += 1
        return [Detection(10, 10, 30, 30, s, 0, "person")] if s > 0 else []


def test_oracles_pick_winner_and_loser():
    cands = np.zeros((3, 64, 64), np.uint8)
    obj = View(None, None, (10, 10, 30, 30), ((10, 10, 30, 30),))
    det = DetectionOracle(_FakeDetector([0.4, 0.9, 0.0]), min_margin=0.05)
    assert det.prefer(obj, cands, 0) == (1, 2)
    assert DetectionOracle(_FakeDetector([0.5, 0.52, 0.5])).prefer(obj, cands, 0) is None
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 255, (64, 64)).astype(np.uint8)
    vi = cv2.GaussianBlur(rng.integers(0, 255, (64, 64)).astype(np.uint8), (5, 5), 0)
    good = ((ir.astype(int) + vi) // 2).astype(np.uint8)
    cands = np.stack([np.full((64, 64), 128, np.uint8), good, cv2.GaussianBlur(good, (9, 9), 0)])
    assert VisualOracle().prefer(View(ir, vi, (16, 16, 48, 48)), cands, 0) == (1, 0)
    ys, xs = VisualOracle().region((0, 60, 6, 64), 64)  # a box at the patch border still gets a full window
    assert (ys.start, ys.stop, xs.start, xs.stop) == (16, 64, 0, 48)
    codes = [c.text for c in ALL_CODES]

    def embed(texts):  # prompt i "means" code 7; codes are orthogonal one-hots
        rows = [torch.eye(9)[codes.index(x)] if x in codes else torch.eye(9)[7] + 0.1 * torch.eye(9)[0] for x in texts]
        return torch.stack(rows)

    text = TextOracle(["make hot targets bright"], embed)
    winner, loser = text.prefer(View(None, None, (0, 0, 1, 1)), cands, 0)
    assert winner == 7 and loser != 7 and text.preference_text(3) == "make hot targets bright"


class _SceneDetector:
    """Per candidate, a list of (box, score, class name)."""

    def __init__(self, per_candidate):
        self.per_candidate, self.calls, self.images = per_candidate, 0, []

    def detect(self, bgr):
        from ivfusion.detection import Detection

        self.images.append(bgr)
        dets = self.per_candidate[self.calls]
        self.calls += 1
        return [Detection(*box, s, 0, name) for box, s, name in dets]


def test_detection_oracle_scores_every_object_of_a_scene_by_class_in_colour():
    people, car = (4, 4, 20, 30), (30, 30, 60, 50)
    crcb = np.full((64, 64, 2), (150, 110), np.uint8)  # a reddish visible chroma
    view = View(None, None, (0, 0, 64, 64), (people, car), ("person", "car"), crcb)
    fake = _SceneDetector([
        [(people, 0.8, "person"), (car, 0.6, "car")],  # both found: (0.8 + 0.6) / 2
        [(people, 0.9, "person"), (car, 0.9, "truck")],  # the car is found as a truck: does not count
        [],  # nothing found
    ])
    oracle = DetectionOracle(fake, min_margin=0.05)
    assert oracle.scores(np.zeros((3, 64, 64), np.uint8), view) == pytest.approx([0.7, 0.45, 0.0])
    assert fake.images[0][..., 2].mean() > fake.images[0][..., 0].mean()  # BGR with the visible chroma, not gray
    assert oracle.prefer(View(None, None, (0, 0, 64, 64)), np.zeros((3, 64, 64), np.uint8), 0) is None  # no objects


def test_per_object_detection_verdict_pastes_the_best_candidate_per_object():
    from ivfusion.teacher.idpo import winner_image

    people, car = (4, 4, 20, 30), (30, 30, 60, 50)
    view = View(None, None, (0, 0, 64, 64), (people, car), ("person", "car"))
    per_candidate = [[] for _ in range(9)]
    per_candidate[4] = [(people, 0.3, "person"), (car, 0.5, "car")]  # the standard code
    per_candidate[0] = [(people, 0.8, "person"), (car, 0.1, "car")]  # better for the person only
    per_candidate[7] = [(people, 0.2, "person"), (car, 0.52, "car")]  # better for the car, but by < min_margin
    cands = np.stack([np.full((64, 64), 10 * k, np.uint8) for k in range(9)])
    verdict = DetectionOracle(_SceneDetector(per_candidate), min_margin=0.05, per_object=True).prefer(view, cands, 0)
    assert verdict == (4, 4, [[4, 4, 20, 30, 0]])
    img = winner_image(cands, {"winner": 4, "loser": 4, "paste": verdict[2]})
    assert (img[4:30, 4:20] == 0).all() and img[35, 40] == 40 and (cands[4] == 40).all()  # pasted, not mutated
    nothing = [[(people, 0.3, "person"), (car, 0.5, "car")] for _ in range(9)]
    assert DetectionOracle(_SceneDetector(nothing), per_object=True).prefer(view, cands, 0) is None
    # two candidates (PALDM's standard sample, a tuned teacher's; IDPO v8o): the standard one is index 0
    two = [[(people, 0.3, "person"), (car, 0.5, "car")], [(people, 0.2, "person"), (car, 0.7, "car")]]
    verdict = DetectionOracle(_SceneDetector(two), min_margin=0.05, per_object=True, base=0).prefer(view, cands[:2], 0)
    assert verdict == (0, 0, [[30, 30, 60, 50, 1]])
    with pytest.raises(ConfigError, match="base candidate 4"):
        DetectionOracle(_SceneDetector(two), per_object=True).prefer(view, cands[:2], 0)


def test_windows_keep_objects_they_mostly_show():
    from ivfusion.teacher.data import _window_boxes

    objs = [(10, 10, 30, 40, "person"),  # inside
            (80, 10, 120, 30, "car"),  # 25 of 40 px wide inside: 62 % shown, kept and clipped
            (-30, 50, 10, 70, "car"),  # 10 of 40 px inside: dropped
            (50, 50, 54, 90, "person")]  # 4 px wide: dropped
    assert _window_boxes(objs, 5, 0, 100, min_side=8) == [((5, 10, 25, 40), "person"), ((75, 10, 100, 30), "car")]


def test_scenes_hold_the_objects_and_masks_follow_the_oracle(tmp_path):
    write_tiny_pairs(tmp_path / "data", labels=True)  # one person box per image, centre (26, 20), 15.6 x 16 px
    images, resolved = load_images([{"name": str(tmp_path / "data")}])
    scenes = find_scenes(images, resolved, 32, cache_dir=tmp_path / "cache", min_side=4)
    assert len(scenes) == len(images) == 3
    for inst in scenes:
        assert inst.box == (0, 0, 32, 32) and inst.classes == ("person",) and len(inst.objects) == 1
        x1, y1, x2, y2 = inst.objects[0]
        assert (x1 + inst.x0, y1 + inst.y0) == (18, 12) and (x2 - x1, y2 - y1) == (16, 16)
        det, vis = instance_mask(inst, 32, "detection"), instance_mask(inst, 32, "visual")
        assert det.sum() == 16 * 16 and vis.sum() == 32 * 32
        view = instance_view(images, inst, 32)
        assert view.ir.shape == (32, 32) and view.crcb.shape == (32, 32, 2) and view.objects == inst.objects


def test_grid_windows_cover_the_frame_and_pseudo_objects_replace_the_labels(tmp_path, shared_root):
    from ivfusion.teacher.data import grid_origins

    origins = grid_origins(640, 480, 256)
    assert origins == [(0, 0), (192, 0), (384, 0), (0, 224), (192, 224), (384, 224)]
    cover = np.zeros((480, 640), bool)
    for x0, y0 in origins:
        cover[y0:y0 + 256, x0:x0 + 256] = True
    assert cover.all() and grid_origins(200, 100, 256) == [(0, 0)]

    if not (shared_root / "weights" / "yolov8n_int8_openvino_model" / "metadata.yaml").exists():
        pytest.skip(f"shared detector not found under {shared_root}: pseudo-labels are matched by its class names")
    write_tiny_pairs(tmp_path / "data", labels=True)  # 52 x 40, one labelled person at the centre
    images, resolved = load_images([{"name": str(tmp_path / "data")}])
    cache = tmp_path / "cache"
    cache.mkdir()
    # the shared detector's pseudo-labels, cached (so it is not run): on s0 a car at the left edge, and one below
    # the score threshold; nothing on s1, s2
    dets = {f"{resolved[0].label}/s{i}": [] for i in range(3)}
    dets[f"{resolved[0].label}/s0"] = [[0.0, 0.1, 0.3, 0.6, 2, 0.9], [0.6, 0.1, 0.9, 0.6, 2, 0.1]]
    (cache / "student_detections.json").write_text(json.dumps(dets))
    scenes = find_scenes(images, resolved, 32, cache_dir=cache, min_side=4, windows="grid", pseudo_only=True)
    assert len(scenes) == 3 * 4 and {s.key.split("#")[0] for s in scenes} == {i.key for i in images}
    classes = {s.key: s.classes for s in scenes}
    assert set(classes.values()) == {(), ("car",)}  # never the labelled person
    s0 = images[0].key
    assert [classes[f"{s0}#w{j}"] for j in range(4)] == [("car",), (), ("car",), ()]  # left column shows it
    labelled = find_scenes(images, resolved, 32, cache_dir=cache, min_side=4, windows="grid")
    assert {s.classes for s in labelled} <= {(), ("person",)} and any(s.objects for s in labelled)
    with pytest.raises(ConfigError, match="windows"):
        find_scenes(images, resolved, 32, cache_dir=cache, windows="tiles")
    # denser windows (one every quarter patch) see the car from more positions; skip_empty keeps only those
    assert grid_origins(640, 480, 256, overlap=0.75)[:8] == [(0, 0), (64, 0), (128, 0), (192, 0), (256, 0), (320, 0),
                                                              (384, 0), (0, 56)]
    dense = find_scenes(images, resolved, 32, cache_dir=cache, min_side=4, windows="grid", pseudo_only=True,
                        overlap=0.75, skip_empty=True)
    assert len(dense) > 2 and all(s.classes == ("car",) and s.key.startswith(s0) for s in dense)
    with pytest.raises(ConfigError, match="window_overlap"):
        find_scenes(images, resolved, 32, cache_dir=cache, windows="grid", overlap=1.0)


def test_folds_partition_the_images_and_cross_fitting_fuses_each_frame_with_the_run_that_held_it_out():
    from ivfusion.data.pairs import PairSample
    from ivfusion.teacher.data import fold_of, is_held_out
    from ivfusion.teacher.evaluate import CrossFitted

    keys = [f"msrs/{i:05d}N" for i in range(40)]
    for k in keys:
        held = [is_held_out(f"{k}#w3", {"folds": 3, "fold": f}) for f in range(3)]
        assert sum(held) == 1 and held[fold_of(k, 3)]  # exactly one fold holds each image out, by image
    assert 0 < sum(fold_of(k, 2) for k in keys) < len(keys)
    assert is_held_out(keys[0], 1.0) and not is_held_out(keys[0], 0.0)
    with pytest.raises(ConfigError, match="fold"):
        is_held_out(keys[0], {"folds": 2, "fold": 2})
    # datasets: only those are split; extra training data stays in every fold
    only_msrs = [{"folds": 2, "fold": f, "datasets": ["msrs"]} for f in range(2)]
    assert [is_held_out(keys[0], r) for r in only_msrs] == [is_held_out(keys[0], {"folds": 2, "fold": f})
                                                            for f in range(2)]
    assert not any(is_held_out(f"roadscene/{i}#w0", r) for i in range(20) for r in only_msrs)

    class Constant:  # a fusion method whose output names it
        def __init__(self, value: int) -> None:
            self.value = value

        def fuse(self, sample: PairSample) -> np.ndarray:
            return np.full((2, 2, 3), self.value, np.uint8)

    crossfit = CrossFitted([Constant(0), Constant(1)], "cross-fitted")
    for k in keys:
        sample = PairSample(k.split("/")[1], np.zeros((2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8))
        assert crossfit.fuse(sample)[0, 0, 0] == fold_of(k, 2)


def test_cached_frames_are_sampled_once_per_key_and_seed_and_read_back_byte_identical(tmp_path):
    from ivfusion.data.pairs import PairSample
    from ivfusion.teacher.evaluate import CachedFrames, CrossFitted

    @dataclass
    class Noisy:  # a sampler: its output depends on the seed; counts its calls
        seed: int = 0
        name: str = "noisy"
        kind: str = "ours"
        calls: list = field(default_factory=list)

        def fuse(self, sample: PairSample) -> np.ndarray:
            self.calls.append((sample.stem, self.seed))
            return np.random.default_rng(self.seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)

        def reseeded(self, seed: int):
            return replace(self, seed=seed)

    sample = PairSample("00001N", np.zeros((6, 8), np.uint8), np.zeros((6, 8, 3), np.uint8))
    inner = Noisy()
    method = CachedFrames(inner, tmp_path, key="a" * 64)
    first = method.fuse(sample)
    again = method.fuse(sample)
    assert np.array_equal(first, again) and inner.calls == [("00001N", 0)]  # the second came from disk
    assert [p.name for p in method.folder.iterdir()] == ["00001N.png"]  # no temporary file left behind
    other_seed = method.reseeded(1)
    assert other_seed.folder != method.folder and not np.array_equal(other_seed.fuse(sample), first)
    assert other_seed.method.calls == [("00001N", 0), ("00001N", 1)]  # the shared list: one more call, seed 1
    other_key = CachedFrames(Noisy(), tmp_path, key="b" * 64)
    other_key.fuse(sample)
    assert other_key.method.calls == [("00001N", 0)] and other_key.folder != method.folder
    assert method.name == "noisy" and method.kind == "ours"
    # cross-fitting caches per fold: each fold's run under its own key, reseeded together
    crossfit = CrossFitted([method, other_key], "cross-fitted").reseeded(2)
    assert crossfit.seed == 2 and {m.folder.name[-3:] for m in crossfit.methods} == {"_s2"}


# -------------------------------------------------------------------------------------- training loops
def _paldm_cfg(data, out, steps):
    return {"output_dir": str(out), "model": TINY, "data": {"sources": [{"name": str(data)}], "patch": 32},
            "train": {"seed": 1, "steps": steps, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
                      "checkpoint_every": 2, "threads": 1}}


def test_train_paldm_checkpoints_resumes_and_then_idpo_runs(tmp_path, monkeypatch):
    write_tiny_pairs(tmp_path / "data", labels=True)
    out = tmp_path / "paldm"
    train_paldm(_paldm_cfg(tmp_path / "data", out, 3), progress=False)
    assert latest_checkpoint(out).name == "step_0000003"
    files = {p.name for p in latest_checkpoint(out).iterdir()}
    assert {"model.safetensors", "config.json", "optimizer.pt", "state.json"} <= files
    final = train_paldm(_paldm_cfg(tmp_path / "data", out, 5), progress=False)  # resumes at 3, not 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5] and all(np.isfinite(r["loss"]) for r in log)
    assert {"diff", "pix", "grad"} <= set(log[0])
    PALDM.from_pretrained(final)

    cfg = {"output_dir": str(tmp_path / "idpo"), "init_from": str(final),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 48, "candidate_steps": 2,
                    "held_out": 0.1, "text_encoder": "hash", "cache_dir": str(tmp_path / "cache")},
           "oracles": {"visual": {"min_margin": 0.0},
                       "text": {"prompts": ["bright hot people", "soft visible look"]}},
           "train": {"seed": 2, "steps": 2, "batch_size": 2, "lr": 1e-4, "warmup": 1, "beta": 100.0, "log_every": 1,
                     "checkpoint_every": 2, "threads": 1, "sft_weight": 10.0},
           "eval": {"repeats": 1}}
    pcldm = train_idpo(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "idpo" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and {"margin", "dpo_acc", "dpo", "sft"} <= set(log[0])
    assert log[0]["loss"] == pytest.approx(log[0]["dpo"] + 10.0 * log[0]["sft"], rel=1e-5)
    summary = json.loads((tmp_path / "idpo" / "dpo_eval.json").read_text())
    assert summary["pairs_total"] >= 3 and summary["pairs_held_out"] >= 1 and "all" in summary["held_out_after"]
    assert (tmp_path / "idpo" / "preferences" / "candidates.safetensors").exists()
    PALDM.from_pretrained(pcldm)

    # train.oracles: learn from one oracle's cached verdicts only; an unknown name fails before any work
    import shutil

    only_text = {**cfg, "output_dir": str(tmp_path / "idpo_text"), "train": {**cfg["train"], "oracles": ["text"]}}
    shutil.copytree(tmp_path / "idpo" / "preferences", tmp_path / "idpo_text" / "preferences")
    train_idpo(only_text, progress=False)
    text_summary = json.loads((tmp_path / "idpo_text" / "dpo_eval.json").read_text())
    assert text_summary["trained_oracles"] == ["text"] and set(text_summary["held_out_after"]) <= {"text", "all"}
    with pytest.raises(ConfigError, match="train.oracles"):
        train_idpo({**cfg, "init_from": str(tmp_path / "nowhere"), "train": {**cfg["train"], "oracles": ["detectoin"]}})

    # train.winners: only the pairs one candidate won; a malformed list fails before any work
    cached = json.loads((tmp_path / "idpo" / "preferences" / "pairs.json").read_text())["pairs"]
    top = max({p["winner"] for p in cached}, key=[p["winner"] for p in cached].count)
    one_sided = {**cfg, "output_dir": str(tmp_path / "idpo_top"),
                 "train": {**cfg["train"], "winners": [top], "balance": "oracle", "preference_dropout": 0.5}}
    shutil.copytree(tmp_path / "idpo" / "preferences", tmp_path / "idpo_top" / "preferences")
    train_idpo(one_sided, progress=False)
    top_summary = json.loads((tmp_path / "idpo_top" / "dpo_eval.json").read_text())
    assert top_summary["trained_winners"] == [top] and top_summary["preference_dropout"] == 0.5
    assert top_summary["pairs_train"] + top_summary["pairs_held_out"] == sum(p["winner"] == top for p in cached)
    assert top_summary["pairs_train"] + top_summary["pairs_held_out"] < len(cached)
    for bad in ([], [-1], 1, [True]):
        with pytest.raises(ConfigError, match="train.winners"):
            train_idpo({**cfg, "init_from": str(tmp_path / "nowhere"), "train": {**cfg["train"], "winners": bad}})
    with pytest.raises(ConfigError, match="train.balance"):
        train_idpo({**cfg, "init_from": str(tmp_path / "nowhere"), "train": {**cfg["train"], "balance": "preset"}})
    with pytest.raises(ConfigError, match="train.preference_dropout"):
        train_idpo({**cfg, "init_from": str(tmp_path / "nowhere"), "train": {**cfg["train"], "preference_dropout": 1}})

    # the verdicts are kept, the candidates (deterministic, large) are regenerated where missing
    from safetensors.numpy import load_file as load_np

    import ivfusion.teacher.train as teacher_train

    def no_oracles(*args, **kwargs):
        raise AssertionError("the oracles ran again")

    prefs_dir = tmp_path / "idpo" / "preferences"
    before = load_np(str(prefs_dir / "candidates.safetensors"))["candidates"]
    (prefs_dir / "candidates.safetensors").unlink()
    monkeypatch.setattr(teacher_train, "build_oracles", no_oracles)  # the cached verdicts must be reused
    again = teacher_train.prepare_preferences(cfg, PALDM.from_pretrained(final), progress=False)
    # equal on the CPU; within 2 grey levels when the first set was sampled on a GPU (seen on an H100)
    assert np.abs(again["candidates"].astype(int) - before.astype(int)).max() <= (2 if torch.cuda.is_available() else 0)
    assert len(again["pairs"]) == summary["pairs_total"]
    assert (prefs_dir / "texts.safetensors").exists()
    cfg["oracles"] = {"visual": {"min_margin": 0.5}}  # another oracle config: its verdicts are not the cached ones
    with pytest.raises(AssertionError, match="oracles ran again"):
        teacher_train.prepare_preferences(cfg, PALDM.from_pretrained(final), progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.is_available() is False (no GPU lent here)")
def test_teacher_trains_and_samples_on_cuda_like_on_cpu(tmp_path):
    """PALDM and IDPO steps on the GPU; sampling draws its noise on the CPU, so candidates match the CPU's."""
    from ivfusion.teacher.evaluate import sample_codes

    write_tiny_pairs(tmp_path / "data", labels=True)
    final = train_paldm({**_paldm_cfg(tmp_path / "data", tmp_path / "paldm", 2)}, progress=False)
    cpu = PALDM.from_pretrained(final)
    gpu = PALDM.from_pretrained(final).to("cuda")
    assert gpu.device.type == "cuda"
    rng = np.random.default_rng(0)
    t, y = rng.integers(0, 255, (32, 48), dtype=np.uint8), rng.integers(0, 255, (32, 48), dtype=np.uint8)
    a, b = sample_codes(cpu, t, y, steps=3, seed=5), sample_codes(gpu, t, y, steps=3, seed=5)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    cfg = {"output_dir": str(tmp_path / "idpo"), "init_from": str(final),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 48, "instances": "scenes",
                    "candidate_steps": 2, "held_out": 0.0, "text_encoder": "hash", "cache_dir": str(tmp_path / "c")},
           "oracles": {"visual": {"min_margin": 0.0}},
           "train": {"seed": 2, "steps": 2, "batch_size": 2, "lr": 1e-4, "warmup": 1, "beta": 100.0, "log_every": 1,
                     "checkpoint_every": 2},
           "eval": {"repeats": 1}}
    train_idpo(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "idpo" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)


def _tiny_teacher_and_student(tmp_path, presets: tuple[str, ...]) -> None:
    """Pairs, a tiny PALDM and a tiny student with random preset embeddings under ``tmp_path``."""
    from ivfusion.models.student import StudentFusionNet

    write_tiny_pairs(tmp_path / "data", labels=True)
    torch.manual_seed(0)
    PALDM.from_config(TINY).save_pretrained(tmp_path / "teacher")
    student = StudentFusionNet.from_config({"width": 8, "grid_depth": 4, "downsample": 2, "cond_dim": 8, "text_dim": 16,
                                            "guide_hidden": 4})
    student.preset_embeddings = {n: torch.nn.functional.normalize(torch.randn(16), dim=0) for n in presets}
    student.save_pretrained(tmp_path / "student")


def test_distill_caches_teacher_outputs_and_fine_tunes_the_student(tmp_path):
    from ivfusion.models.student import StudentFusionNet
    from ivfusion.teacher.distill import train_distill

    _tiny_teacher_and_student(tmp_path, ("detection", "visual"))
    cfg = {"output_dir": str(tmp_path / "distill"), "teacher": str(tmp_path / "teacher"),
           "student_init": str(tmp_path / "student"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 32, "crops_per_image": 1, "steps": 2},
           "presets": {"detection": {"t0": 0.8}, "visual": {"t0": 0.0}},
           "train": {"seed": 3, "steps": 2, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
                     "checkpoint_every": 2, "threads": 1}}
    final = train_distill(cfg, progress=False)
    from safetensors.torch import load_file

    cache = load_file(str(tmp_path / "distill" / "teacher_cache.safetensors"))
    assert cache["teacher"].shape == (3, 2, 1, 32, 32) and cache["rgb"].shape == (3, 3, 32, 32)
    log = [json.loads(line) for line in (tmp_path / "distill" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and {"kd", "fusion"} <= set(log[0])
    assert set(StudentFusionNet.from_pretrained(final).preset_embeddings) == {"detection", "visual"}


def test_teacher_output_cache_is_rebuilt_when_its_inputs_change(tmp_path):
    from safetensors import safe_open

    from ivfusion.teacher.data import load_images
    from ivfusion.teacher.distill import cache_teacher_outputs

    _tiny_teacher_and_student(tmp_path, ("detection",))
    images, _ = load_images([{"name": str(tmp_path / "data")}])
    emb = {"detection": torch.nn.functional.normalize(torch.randn(16), dim=0)}
    out = tmp_path / "cache.safetensors"

    def make(steps, emb=emb):
        cache_teacher_outputs(tmp_path / "teacher", images, emb, patch=32, crops_per_image=1, steps=steps, seed=0,
                              out_file=out, progress=False)
        with safe_open(str(out), "pt") as f:
            return f.metadata()["key"]

    first = make(2)
    assert make(2) == first  # same inputs: reused
    assert make(3) != first  # other DDIM steps: rebuilt
    other = {"detection": torch.nn.functional.normalize(torch.randn(16), dim=0)}
    assert make(3, other) not in (first, make(3))  # another preset embedding: rebuilt


def test_residual_distillation_targets_the_students_own_output_plus_the_teachers_change(tmp_path):
    from ivfusion.teacher.distill import train_distill

    _tiny_teacher_and_student(tmp_path, ("detection",))
    # teacher = reference: IDPO changed nothing, so the target is the starting student itself and the first
    # (pre-update) distillation loss is exactly zero; a wrong crop/noise pairing of the two caches would not be
    cfg = {"output_dir": str(tmp_path / "distill"), "teacher": str(tmp_path / "teacher"),
           "reference": str(tmp_path / "teacher"), "student_init": str(tmp_path / "student"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 32, "crops_per_image": 1, "steps": 2},
           "presets": {"detection": {"t0": 0.8}},
           "train": {"seed": 3, "steps": 2, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
                     "checkpoint_every": 2, "threads": 1},
           "loss": {"fusion": 0.2}}
    train_distill(cfg, progress=False)
    assert (tmp_path / "distill" / "reference_cache.safetensors").exists()
    log = [json.loads(line) for line in (tmp_path / "distill" / "log.jsonl").read_text().splitlines()]
    assert log[0]["kd"] == 0.0 and log[1]["kd"] > 0.0
    # resumed: the residual base stays the *starting* student, not the checkpoint (with the checkpoint as base
    # the first resumed step would again be exactly 0)
    cfg["train"]["steps"] = 3
    train_distill(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "distill" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and log[2]["kd"] > 0.0


def test_residual_target_per_preset_teaches_only_the_named_presets():
    from ivfusion.teacher.distill import residual_gains, teacher_target

    names = ["detection", "visual"]
    assert residual_gains(2.0, names, residual=True) == {"detection": 2.0, "visual": 2.0}
    assert residual_gains({"visual": 1.0}, names, residual=True) == {"detection": 0.0, "visual": 1.0}
    for bad, residual in (({"visual": 1.0}, False), ({"balanced": 1.0}, True), ({"visual": 0.0}, True)):
        with pytest.raises(ConfigError, match="residual_gain"):
            residual_gains(bad, names, residual=residual)
    # a cache of one taught preset (visual): teacher 110, reference 100 everywhere
    teacher = torch.full((3, 1, 1, 2, 2), 110, dtype=torch.uint8)
    reference = torch.full((3, 1, 1, 2, 2), 100, dtype=torch.uint8)
    idx, k = torch.tensor([0, 2]), torch.tensor([0, 1])  # a detection crop, then a visual one
    column, gain = torch.tensor([-1, 0])[k], torch.tensor([0.0, 2.0])[k]
    y = teacher_target(teacher, reference, idx, column, gain)
    assert torch.equal(y[0], torch.zeros(1, 2, 2))  # untaught: the starting student is the target
    assert torch.allclose(y[1], torch.full((1, 2, 2), 2 * 10 / 255))
    assert torch.allclose(teacher_target(teacher, None, idx, torch.tensor([0, 0]), gain), torch.full_like(y, 110 / 255))


def test_residual_distillation_into_one_preset_caches_only_that_presets_teacher(tmp_path):
    from safetensors import safe_open

    from ivfusion.teacher.distill import train_distill

    _tiny_teacher_and_student(tmp_path, ("detection", "visual"))
    torch.manual_seed(1)
    PALDM.from_config(TINY).save_pretrained(tmp_path / "tuned")
    cfg = {"output_dir": str(tmp_path / "distill"), "teacher": str(tmp_path / "tuned"),
           "reference": str(tmp_path / "teacher"), "student_init": str(tmp_path / "student"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 32, "crops_per_image": 1, "steps": 2},
           "presets": {"detection": {"t0": 0.8}, "visual": {"t0": 0.0}},
           "train": {"seed": 3, "steps": 2, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
                     "checkpoint_every": 2, "threads": 1},
           "loss": {"fusion": 0.2, "residual_gain": {"visual": 1.0}}}
    train_distill(cfg, progress=False)
    for name in ("teacher_cache", "reference_cache"):
        with safe_open(str(tmp_path / "distill" / f"{name}.safetensors"), "pt") as f:
            assert f.metadata()["presets"] == "visual" and f.get_slice("teacher").get_shape()[1] == 1


def test_balanced_pick_shares_a_batch_between_oracles_and_is_the_plain_draw_for_one():
    from ivfusion.teacher.train import balanced_pick

    plain = np.random.default_rng((5, 7)).choice(40, size=8, replace=False)
    assert balanced_pick(np.random.default_rng((5, 7)), [list(range(40))], 8) == list(plain)  # earlier runs' draw
    detection, visual = list(range(0, 30)), list(range(30, 33))
    pick = balanced_pick(np.random.default_rng(0), [detection, [], visual], 8)
    assert len(set(pick)) == len(pick) == 7  # 4 of 30 and all 3 of the smaller group; the empty one is skipped
    assert sum(i in detection for i in pick) == 4 and set(visual) <= set(pick)


def test_distillation_pseudo_labels_follow_each_cached_crop_and_its_mirror(tmp_path):
    from ivfusion.teacher.distill import crop_pseudo_labels, mirror_targets, targets_mask

    write_tiny_pairs(tmp_path / "data")  # 40 x 52 pairs
    images, resolved = load_images([{"name": str(tmp_path / "data")}])
    # the student's pseudo-label cache, written by hand: a confident box on image 0, a faint one (dropped)
    cache = tmp_path / "dets.json"
    cache.write_text(json.dumps({img.key: [] for img in images} | {
        images[0].key: [[0.25, 0.25, 0.75, 0.75, 0, 0.9], [0.0, 0.0, 0.5, 0.5, 2, 0.1]]}))
    origin = torch.tensor([[0, 5, 10], [1, 0, 0]], dtype=torch.int32)
    t = crop_pseudo_labels(images, resolved, origin, 32, 0.3, cache)
    assert t.shape[0] == 2 and (t[1, :, 0] == -1).all() and (t[0, 1:, 0] == -1).all()
    # pixels [13, 10, 39, 30] in the 52 x 40 image, cut to the crop at x0 10, y0 5: [3, 5, 29, 25] of 32
    assert torch.allclose(t[0, 0], torch.tensor([0.0, 16 / 32, 15 / 32, 26 / 32, 20 / 32]))
    m = mirror_targets(t)
    assert torch.allclose(m[0, 0], torch.tensor([0.0, 16 / 32, 15 / 32, 26 / 32, 20 / 32]))  # centred: unchanged
    shifted = t.clone()
    shifted[0, 0, 1] = 0.25
    assert mirror_targets(shifted)[0, 0, 1] == pytest.approx(0.75) and torch.equal(mirror_targets(shifted)[1], t[1])
    mask = targets_mask(t, 32)  # the fusion loss's object mask: exactly the cut box, nothing for the empty crop
    assert mask[0, 0, 5:25, 3:29].all() and mask[0].sum() == 20 * 26 and mask[1].sum() == 0


def test_distillation_with_the_students_detector_loss_logs_it_and_refuses_student_only_knobs(tmp_path, shared_root):
    from ivfusion.teacher.distill import train_distill

    weights = shared_root / "weights" / "yolov8n_int8_openvino_model"
    if not weights.is_dir():
        pytest.skip(f"shared detector not found at {weights}: the detector loss is its PyTorch copy")
    _tiny_teacher_and_student(tmp_path, ("detection", "visual"))
    detector = {"weight": 1.0, "preset": "detection", "target_score": 0.25, "weights": str(weights),
                "quantize_activations": True}
    cfg = {"output_dir": str(tmp_path / "distill"), "teacher": str(tmp_path / "teacher"),
           "reference": str(tmp_path / "teacher"), "student_init": str(tmp_path / "student"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 32, "crops_per_image": 2, "steps": 2,
                    "cache_dir": str(tmp_path / "cache")},
           "presets": {"detection": {"t0": 0.8}, "visual": {"t0": 0.0}},
           "train": {"seed": 3, "steps": 3, "batch_size": 4, "lr": 1e-3, "warmup": 1, "log_every": 1,
                     "checkpoint_every": 3, "threads": 1},
           "loss": {"distill": 10.0, "fusion": 1.0, "detector": detector}}
    train_distill(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "distill" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert any("det" in r for r in log) and all(np.isfinite(r["det"]) for r in log if "det" in r)
    assert (tmp_path / "cache" / "student_detections.json").exists()  # the student's pseudo-labels, reused
    for bad, match in (({"anchor": 10.0}, "student-training knob"), ({"preset": "fog"}, "not one of the distilled")):
        cfg["loss"]["detector"] = detector | bad
        with pytest.raises(ConfigError, match=match):
            train_distill(cfg, progress=False, resume=False)
