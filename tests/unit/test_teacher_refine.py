"""Reward-refined IDPO candidates (ivfusion.teacher.refine) and oracles that judge a chosen subset of candidates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivfusion.detection import Detection
from ivfusion.errors import ConfigError
from ivfusion.teacher.data import View, to_tensor
from ivfusion.teacher.oracles import DetectionOracle, VisualOracle
from ivfusion.teacher.refine import RefineConfig, Refiner, local_edit
from ivfusion.training.losses import PresetLoss, fusion_loss
from tests.unit.test_teacher import _one_thread, _script  # noqa: F401  (_one_thread: autouse, one thread)

BOX = (16, 16, 48, 48)
VISUAL_LOSS = {"t0": 0.0, "sal_gain": 0.3, "intensity": 0.0, "gradient": 2.0, "ssim_t": 5.0, "ssim_v": 5.0,
               "color": 0.0, "scd": 1.0}



class BrightnessDetector:
    """Finds the object at BOX with a confidence = its mean brightness: a judge whose preference is known."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        x1, y1, x2, y2 = BOX
        return [Detection(*BOX, float(bgr[y1:y2, x1:x2].mean() / 255.0), 0, "person")]


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    ir = np.where((xx - 32) ** 2 + (yy - 32) ** 2 < 12 ** 2, 220, 60).astype(np.uint8)
    vi = (110 + 40 * np.sin(xx / 3.0) + rng.normal(0, 3, (64, 64))).clip(0, 255).astype(np.uint8)
    cand = ((ir.astype(int) + vi) // 2 // 2 + 40).astype(np.uint8)  # a dull, soft fusion: room to improve
    return ir, vi, cand


def test_local_edit_is_the_identity_at_zero_and_moves_towards_thermal_with_the_mix_map():
    ir, _, cand = _scene()
    cfg = RefineConfig("detection", cell=16)
    y, t = to_tensor(cand).unsqueeze(0), to_tensor(ir).unsqueeze(0)
    assert torch.allclose(local_edit(y, t, torch.zeros(1, 3, 4, 4), cfg), y, atol=1e-6)
    more_thermal = torch.zeros(1, 3, 4, 4)
    more_thermal[:, 0] = 10.0  # tanh -> 1: mix max_mix of the way to thermal everywhere
    out = local_edit(y, t, more_thermal, cfg)
    assert (out - t).abs().mean() == pytest.approx((1 - cfg.max_mix) * (y - t).abs().mean().item(), rel=0.02)


def test_detection_refinement_raises_the_real_judges_score_and_never_lowers_it():
    ir, vi, cand = _scene()
    detector = BrightnessDetector()
    oracle = DetectionOracle(detector, iou=0.5)
    view = View(ir, vi, (0, 0, 64, 64), (BOX,), ("person",))
    refiner = Refiner(RefineConfig("detection", cell=16, iterations=3, population=8, elite=2), oracle)
    refined = refiner(cand, view, seed=1)
    before, after = oracle.scores(np.stack([cand, refined]), view)
    assert after > before + 0.05  # the search found brighter renderings of the object
    assert detector.calls == 1 + 3 * 8 + 2  # the unchanged candidate, 3 rounds of 8, the check above
    empty = View(ir, vi, (0, 0, 64, 64))
    assert refiner(cand, empty) is cand  # nothing for the detector to find: nothing to refine
    strict = Refiner(RefineConfig("detection", cell=16, iterations=3, population=8, elite=2, fidelity=100.0), oracle)
    assert strict(cand, view, seed=1) is cand  # every brighter edit costs more in fidelity than it gains


def test_a_detection_search_is_redone_exactly_from_its_maps():
    from ivfusion.teacher.data import Image, Instance
    from ivfusion.teacher.refine import apply_maps

    ir, vi, cand = _scene()
    cfg = RefineConfig("detection", cell=16, iterations=2, population=6, elite=2, base=0)
    view = View(ir, vi, (0, 0, 64, 64), (BOX,), ("person",))
    refined, maps = Refiner(cfg, DetectionOracle(BrightnessDetector(), iou=0.5)).refine(cand, view, seed=2)
    assert maps.shape == (3, 4, 4) and maps.any() and not np.array_equal(refined, cand)
    img = Image("x/0", ir, vi, np.dstack([vi] * 3), 1.0)
    inst = Instance("x/0#w0", 0, 0, 0, (0, 0, 64, 64), (BOX,), ("person",))
    redone = apply_maps([img], [inst], cand[None, None], 64, cfg, maps[None])
    assert np.array_equal(redone[0], refined)  # a few numbers per window carry the whole refinement
    kept, zeros = Refiner(cfg, DetectionOracle(BrightnessDetector())).refine(cand, View(ir, vi, (0, 0, 64, 64)))
    assert kept is cand and not zeros.any()  # nothing to search for: zero maps, which redo the identity
    assert np.array_equal(apply_maps([img], [inst], cand[None, None], 64, cfg, zeros[None])[0], cand)
    with pytest.raises(ConfigError, match="only detection"):
        apply_maps([img], [inst], cand[None, None], 64, RefineConfig("visual"), maps[None])
    with pytest.raises(ConfigError, match="base candidate"):
        apply_maps([img], [inst], cand[None, None], 64, RefineConfig("detection", cell=16), maps[None])


def test_visual_refinement_lowers_the_fusion_loss_within_its_bound():
    ir, vi, cand = _scene()
    cfg = RefineConfig("visual", steps=20, lr=0.05, max_delta=0.1, loss=VISUAL_LOSS)
    refined = Refiner(cfg)(cand, View(ir, vi, (0, 0, 64, 64)))
    w = PresetLoss(**VISUAL_LOSS).as_tensor().unsqueeze(0)
    t, v = to_tensor(ir).unsqueeze(0), to_tensor(vi).unsqueeze(0)

    def loss(img):
        y = to_tensor(img).unsqueeze(0)
        return fusion_loss(y, y.expand(-1, 3, -1, -1), t, v, v.expand(-1, 3, -1, -1), w)[0].item()

    assert loss(refined) < 0.9 * loss(cand)
    assert np.abs(refined.astype(int) - cand).max() <= round(0.1 * 255) + 1


def test_refine_config_rejects_what_it_cannot_do():
    with pytest.raises(ConfigError, match="objective"):
        RefineConfig("beauty")
    with pytest.raises(ConfigError, match="unknown knobs"):
        RefineConfig("visual", loss={"sharpness": 1.0})


def test_oracles_judge_only_the_candidates_they_are_given():
    people = (4, 4, 20, 30)
    view = View(None, None, (0, 0, 64, 64), (people,), ("person",))
    cands = np.stack([np.full((64, 64), 20 * k, np.uint8) for k in range(11)])

    class ByBrightness:
        def detect(self, bgr):
            return [Detection(*people, float(bgr.mean() / 255.0), 0, "person")]

    # all 11: brightest (10) beats darkest (0); only [4, 9]: 9 beats 4, indices mapped back to the stack
    assert DetectionOracle(ByBrightness()).prefer(view, cands, 0) == (10, 0)
    assert DetectionOracle(ByBrightness(), candidates=[4, 9]).prefer(view, cands, 0) == (9, 4)
    with pytest.raises(ConfigError, match="only 11 candidates"):
        DetectionOracle(ByBrightness(), candidates=[4, 11]).prefer(view, cands, 0)
    with pytest.raises(ConfigError, match="per_object"):
        DetectionOracle(ByBrightness(), per_object=True, candidates=[4, 9])
    ir, vi, soft = _scene()
    good = ((ir.astype(int) + vi) // 2).astype(np.uint8)
    stack = np.stack([np.full((64, 64), 128, np.uint8)] * 4 + [soft] + [np.full((64, 64), 128, np.uint8)] * 4 + [good])
    verdict = VisualOracle(metrics=["MI", "SCD", "VIF", "Qabf", "SSIM"], min_margin=0.6,
                           candidates=[4, 9]).prefer(View(ir, vi, (8, 8, 56, 56)), stack, 0)
    assert verdict == (9, 4)


def test_idpo_preferences_append_refined_candidates_and_cache_them(tmp_path, monkeypatch):
    import ivfusion.teacher.refine as refine
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.train import prepare_preferences
    from tests.unit.test_teacher import TINY
    from tests.unit.tiny_data import write_tiny_pairs

    write_tiny_pairs(tmp_path / "data", labels=True)
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    cfg = {"output_dir": str(tmp_path / "idpo"), "init_from": str(tmp_path / "paldm"),
           "data": {"sources": [{"name": str(tmp_path / "data")}], "patch": 48, "candidate_steps": 1,
                    "instances": "scenes", "held_out": 0.1, "text_encoder": "hash", "cache_dir": str(tmp_path)},
           "refine": [{"objective": "visual", "steps": 20, "lr": 0.05, "loss": VISUAL_LOSS}],
           "oracles": {"visual": {"metrics": ["MI", "SCD", "VIF", "Qabf", "SSIM"], "min_margin": 0.2, "candidates": [4, 9]}},
           "train": {"seed": 3}}
    prefs = prepare_preferences(cfg, PALDM.from_pretrained(tmp_path / "paldm"), progress=False)
    cands = prefs["candidates"]
    assert cands.shape == (3, 10, 48, 48)  # 9 property codes + 1 refinement
    assert not np.array_equal(cands[:, 9], cands[:, 4])  # the refinement changed the standard candidate
    assert prefs["pairs"] and all({p["winner"], p["loser"]} == {4, 9} for p in prefs["pairs"])
    assert (tmp_path / "idpo" / "preferences" / "refined.safetensors").exists()

    def no_refinement(*args, **kwargs):
        raise AssertionError("refined again")

    monkeypatch.setattr(refine, "refine_candidates", no_refinement)  # cached: not refined again
    again = prepare_preferences(cfg, PALDM.from_pretrained(tmp_path / "paldm"), progress=False)
    assert np.array_equal(again["candidates"], cands)
    cfg["refine"][0]["steps"] = 21  # other settings: the cache does not match
    with pytest.raises(AssertionError, match="refined again"):
        prepare_preferences(cfg, PALDM.from_pretrained(tmp_path / "paldm"), progress=False)


def test_a_gpu_machine_rebuilds_refinements_from_maps_and_samples_only_the_codes_asked_for(tmp_path, monkeypatch):
    """The CPU/GPU split of IDPO v6: the CPU searches with the detector, ``scripts/teacher_gpu_bundle.py`` packs the
    verdicts and only the searches' maps, and the other machine (here: a fresh output folder reading the bundle's
    shared root) regenerates the one standard candidate per window and rebuilds the refinement from the maps."""
    import shutil

    import yaml

    import ivfusion.teacher.oracles as oracles
    from ivfusion.teacher.data import instance_patch
    from ivfusion.teacher.evaluate import sample_codes
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.train import cached_text_embeddings, prepare_preferences
    from tests.unit.test_teacher import TINY
    from tests.unit.tiny_data import write_tiny_pairs

    shared = tmp_path / "shared"  # a shared root whose "m3fd" is the tiny synthetic set
    write_tiny_pairs(shared / "datasets" / "m3fd", labels=True)
    (shared / "weights" / "yolov8n_int8_openvino_model").mkdir(parents=True)
    (shared / "weights" / "yolov8n_int8_openvino_model" / "metadata.yaml").write_text("names: {0: person}\n")
    monkeypatch.setenv("IVFUSION_SHARED", str(shared))
    PALDM.from_config(TINY).save_pretrained(tmp_path / "paldm")
    model = PALDM.from_pretrained(tmp_path / "paldm")
    cfg = {"output_dir": str(tmp_path / "cpu"), "init_from": str(tmp_path / "paldm"),
           "data": {"sources": [{"name": "m3fd"}], "patch": 48, "candidate_steps": 1,
                    "candidate_codes": [4], "instances": "scenes", "held_out": 0.1, "text_encoder": "hash",
                    "cache_dir": str(tmp_path / "cache")},
           "refine": [{"objective": "detection", "cell": 16, "iterations": 2, "population": 4, "elite": 2, "base": 0}],
           "oracles": {"detection": {"iou": 0.3, "min_margin": 0.0, "candidates": [0, 1]}},
           "train": {"seed": 3}}

    class Bright(oracles.DetectionOracle):  # a judge whose preference is known: the object's mean brightness
        def __init__(self, **kw):
            super().__init__(BrightnessDetector(), **kw)

        def object_scores(self, candidates, view):
            return np.array([[c[y1:y2, x1:x2].mean() / 255.0 for x1, y1, x2, y2 in view.objects] for c in candidates])

    with monkeypatch.context() as m:  # the search's and the verdicts' judge (both build DetectionOracle)
        m.setattr(oracles, "DetectionOracle", Bright)
        cpu = prepare_preferences(cfg, model, progress=False)
    cands = cpu["candidates"]
    assert cands.shape == (3, 2, 48, 48)  # one code sampled + its refinement
    t, y = instance_patch(cpu["images"], cpu["instances"][0], 48)
    assert np.array_equal(cands[0, 0], sample_codes(model, t, y, steps=1, seed=3 * 100003, codes=[4])[0])
    assert np.abs(cands[0, 0].astype(int) - sample_codes(model, t, y, steps=1, seed=3 * 100003)[4]).max() <= 1
    assert cpu["pairs"] and any(not np.array_equal(c[0], c[1]) for c in cands)
    texts = sorted({p["text"] for p in cpu["pairs"]})  # the embeddings train_idpo caches beside the verdicts
    cached_text_embeddings(tmp_path / "cpu" / "preferences" / "texts.safetensors", texts, "hash", model.text_dim)

    config = tmp_path / "idpo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    script = _script("teacher_gpu_bundle")
    out = tmp_path / "bundle"
    script.bundle(config, out)
    assert (out / "preferences" / "refined.safetensors").stat().st_size < 2000  # maps, not images
    assert (out / "shared" / "datasets" / "m3fd" / "labels").is_dir()  # a labelled run keeps its labels
    # the GPU machine: the bundle's shared root, PALDM and verdicts, nothing else (train_idpo's own layout)
    monkeypatch.setenv("IVFUSION_SHARED", str(out / "shared"))
    gpu = tmp_path / "gpu"
    shutil.copytree(out / "preferences", gpu / "preferences")
    cfg = {**cfg, "output_dir": str(gpu), "init_from": str(out / "init")}
    again = prepare_preferences(cfg, PALDM.from_pretrained(out / "init"), progress=False)
    assert np.array_equal(again["candidates"], cands) and again["pairs"] == cpu["pairs"]
    assert set(cached_text_embeddings(gpu / "preferences" / "texts.safetensors", texts, "hash", model.text_dim)) == set(texts)
    with pytest.raises(ConfigError, match="text oracle"):
        prepare_preferences({**cfg, "oracles": {"text": {"prompts": ["x"]}}}, model, progress=False)


def test_window_mask_widens_a_detection_pairs_loss_from_its_boxes_to_the_window():
    from ivfusion.teacher.data import Image, Instance
    from ivfusion.teacher.train import _pair_batch

    img = Image("x/0", np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.uint8), 1.0)
    inst = Instance("x/0#scene", 0, 0, 0, (0, 0, 64, 64), ((8, 8, 24, 40),), ("person",))
    prefs = {"images": [img], "instances": [inst], "candidates": np.zeros((1, 10, 64, 64), np.uint8), "patch": 64}
    row = {"instance": 0, "oracle": "detection", "winner": 9, "loser": 4, "text": "t"}
    emb = {"t": torch.zeros(4)}
    assert _pair_batch(prefs, [row], emb)["mask"].sum() == 16 * 32  # the judged box
    assert _pair_batch(prefs, [row], emb, window_mask=True)["mask"].sum() == 64 * 64  # the whole window
