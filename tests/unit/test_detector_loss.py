"""The detector-aware loss: the PyTorch copy of the shared detector, pseudo-labels, crops, gradients, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ivfusion.training.data import MAX_TARGETS, crop_targets, merge_pseudo_labels

from tests.unit.tiny_data import write_tiny_pairs

WEIGHTS = "weights/yolov8n_int8_openvino_model"


@pytest.fixture(scope="module")
def ir_path(shared_root: Path) -> Path:
    path = shared_root / WEIGHTS
    if not path.is_dir():
        pytest.skip(f"shared detector not found at {path}: the PyTorch copy is built from it")
    return path


@pytest.fixture(scope="module")
def msrs_rgb(shared_root: Path) -> np.ndarray:
    import cv2

    path = shared_root / "datasets" / "msrs" / "vi" / "00001D.png"
    if not path.exists():
        pytest.skip(f"shared MSRS frame not found at {path}")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def torch_yolo(ir_path: Path):
    from ivfusion.detection.torch_yolo import load_torch_yolo

    return load_torch_yolo(ir_path)


@pytest.fixture(scope="module")
def quantized_yolo(ir_path: Path):
    from ivfusion.detection.torch_yolo import load_torch_yolo

    return load_torch_yolo(ir_path, quantize_activations=True)


def test_every_convolution_of_the_ir_is_loaded_dequantised(ir_path: Path) -> None:
    from ivfusion.detection.torch_yolo import openvino_conv_weights

    w = openvino_conv_weights(ir_path)
    convs = [k for k in w if k.endswith(".weight")]
    assert len(convs) == 64 and w["model.0.conv.weight"].shape == (16, 3, 3, 3)
    assert w["model.0.conv.weight"].dtype == torch.float32
    # per-channel INT8: each output channel takes at most 255 distinct values
    assert all(len(torch.unique(ch)) <= 255 for ch in w["model.2.cv1.conv.weight"])


def test_torch_copy_agrees_with_openvino(torch_yolo, ir_path: Path, msrs_rgb: np.ndarray) -> None:
    from ivfusion.detection.torch_yolo import parity

    # activations are not quantised in the copy: scores differ by a few hundredths, never by a different model
    assert max(parity(torch_yolo, ir_path, [msrs_rgb])) < 0.3
    with pytest.raises(Exception):
        parity(torch_yolo, ir_path, [msrs_rgb[:, :, :1]])  # a bad input fails loudly instead of scoring garbage


def test_activation_quantisation_brings_the_copy_closer_to_openvino(ir_path: Path, torch_yolo, quantized_yolo,
                                                                    msrs_rgb: np.ndarray) -> None:
    from ivfusion.detection.torch_yolo import activation_quantizers, parity

    sites = activation_quantizers(ir_path)
    assert len(sites) == 67 and sites[0].module == "model.0" and sites[0].on_input  # the image itself: [0, 1]
    assert {s.module for s in sites} >= {"model.4.m.0", "model.10", "model.22.dfl.conv"}  # add, upsample, DFL
    quantized = quantized_yolo
    assert quantized.quantized_sites == 67
    # 00001D: 0.08 float vs 0.02 quantised (bench/torch_detector_parity.py has all 35 frames)
    assert max(parity(quantized, ir_path, [msrs_rgb])) < 0.5 * max(parity(torch_yolo, ir_path, [msrs_rgb]))


def test_quantised_copy_passes_gradients_straight_through(quantized_yolo) -> None:
    from ivfusion.detection.torch_yolo import QuantSite

    site = QuantSite("x", False, low=-1.0, high=1.0, levels=3)  # grid -1, 0, 1
    x = torch.tensor([-2.0, -0.4, 0.3, 0.6, 2.0], requires_grad=True)
    y = site(x)
    assert y.tolist() == [-1.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # identity inside the range, clamped outside

    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    quantized_yolo(image)[0][:, 4:].max().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_class_weights_name_the_detectors_classes(torch_yolo) -> None:
    from ivfusion.training.detector_loss import DetectorLossConfig, class_weight_vector

    assert torch_yolo.names[0] == "person" and torch_yolo.names[1] == "bicycle"  # from the IR's metadata.yaml
    w = class_weight_vector({"bicycle": 4.0}, torch_yolo.names)
    assert w.shape == (80,) and w[1] == 4.0 and float(w.sum()) == 83.0
    with pytest.raises(Exception, match="unknown classes"):
        class_weight_vector({"bicycel": 4.0}, torch_yolo.names)
    with pytest.raises(Exception, match="must be > 0"):
        DetectorLossConfig(weight=1.0, class_weights={"bicycle": 0.0})


def test_class_names_come_from_the_export_folder_with_or_without_the_ir(ir_path: Path, tmp_path: Path) -> None:
    import shutil

    from ivfusion.detection.torch_yolo import class_names

    assert class_names(ir_path)[0] == "person" and class_names(ir_path / "yolov8n.xml")[2] == "car"
    names_only = tmp_path / "names_only"  # what a GPU machine is given (scripts/teacher_gpu_bundle.py)
    names_only.mkdir()
    shutil.copy2(ir_path / "metadata.yaml", names_only / "metadata.yaml")
    assert class_names(names_only) == class_names(ir_path)
    assert class_names(tmp_path, nc=3) == {0: "0", 1: "1", 2: "2"}  # no metadata: indices, which match nothing


def test_a_saved_torch_copy_is_the_same_detector_without_openvino(ir_path: Path, quantized_yolo, tmp_path: Path,
                                                                   msrs_rgb: np.ndarray) -> None:
    from ivfusion.detection.torch_yolo import TORCH_COPY, class_names, load_torch_yolo, save_torch_copy
    from ivfusion.errors import DetectorError

    # a bundle's export folder: the copy and no .xml (the GPU machine has no OpenVINO)
    folder = tmp_path / "yolov8n_int8_openvino_model"
    save_torch_copy(ir_path, folder / TORCH_COPY)
    loaded = load_torch_yolo(folder, quantize_activations=True)
    assert loaded.quantized_sites == 67 and loaded.names == quantized_yolo.names
    assert class_names(folder) == quantized_yolo.names
    x = torch.from_numpy(msrs_rgb[:320, :320].transpose(2, 0, 1).copy()).float()[None] / 255.0
    assert torch.equal(loaded(x)[0], quantized_yolo(x)[0])  # same weights, same rounding: bit for bit
    (tmp_path / "other.safetensors").write_bytes((folder / TORCH_COPY).read_bytes()[:64])
    with pytest.raises(Exception):
        load_torch_yolo(tmp_path / "other.safetensors")  # truncated: fails loudly
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(DetectorError, match="not a detector copy"):
        load_torch_yolo(tmp_path / "plain.safetensors")


def test_pseudo_labels_merge_both_bands() -> None:
    ir = [[0.1, 0.1, 0.3, 0.5, 0, 0.9], [0.6, 0.6, 0.8, 0.9, 2, 0.2]]  # the car is below the score floor
    vi = [[0.11, 0.1, 0.31, 0.5, 0, 0.7], [0.5, 0.1, 0.7, 0.4, 0, 0.8]]  # same person again + another one
    merged = merge_pseudo_labels(ir + vi, min_score=0.3)
    assert merged.shape == (2, 5)
    assert np.allclose(merged[0], [0.1, 0.1, 0.3, 0.5, 0])  # the higher-scoring duplicate wins
    assert merge_pseudo_labels([], 0.3).shape == (0, 5)


def test_crop_targets_cut_flip_and_drop_slivers() -> None:
    boxes = np.array([[10, 20, 30, 60, 0],   # inside the crop at (0, 0) of side 64
                      [50, 0, 90, 40, 2],    # 14 of 40 px wide inside: a sliver, dropped
                      [200, 200, 220, 230, 0]], np.float32)  # outside
    t = crop_targets(boxes, 0, 0, 64, flip=False, size=64)
    assert t.shape == (MAX_TARGETS, 5) and (t[:, 0] >= 0).sum() == 1
    assert torch.allclose(t[0], torch.tensor([0, 20 / 64, 40 / 64, 20 / 64, 40 / 64]))
    f = crop_targets(boxes, 0, 0, 64, flip=True, size=64)
    assert torch.allclose(f[0, 1], torch.tensor((64 - 20) / 64))  # mirrored centre
    padded = crop_targets(boxes, 0, 0, 48, flip=False, size=64)  # 48-px image padded to 64: cut at 48, same pixels
    assert torch.allclose(padded[0, 1:], torch.tensor([20 / 64, 34 / 64, 20 / 64, 28 / 64]))


def test_detector_loss_prefers_the_image_the_labels_came_from(ir_path: Path, msrs_rgb: np.ndarray) -> None:
    import cv2

    from ivfusion.detection import Detector, DetectorConfig
    from ivfusion.training.detector_loss import DetectorLoss, DetectorLossConfig

    crop = np.ascontiguousarray(cv2.resize(msrs_rgb, (320, 256), interpolation=cv2.INTER_AREA))
    dets = Detector(DetectorConfig(weights=str(ir_path), conf=0.3)).detect(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    assert dets, "the detector should find objects in the first MSRS daytime frame"
    labels = np.array([[d.x1, d.y1, d.x2, d.y2, d.class_index] for d in dets], np.float32)
    h, w = crop.shape[:2]
    targets = torch.full((1, MAX_TARGETS, 5), -1.0)
    for i, (x1, y1, x2, y2, c) in enumerate(labels[:MAX_TARGETS]):
        targets[0, i] = torch.tensor([c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
    loss = DetectorLoss(DetectorLossConfig(weight=1.0, weights=str(ir_path)))
    image = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255).requires_grad_(True)
    on_image, parts = loss(image, targets)
    flat = torch.full_like(image, 0.5)
    on_flat, _ = loss(flat, targets)
    assert {"det_box", "det_cls", "det_dfl"} <= set(parts)
    assert on_image.detach().item() < 0.5 * on_flat.item(), (on_image.detach().item(), on_flat.item())
    on_image.backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in loss.model.parameters())  # the detector stays frozen
    with pytest.raises(Exception, match="multiples of 32"):
        loss(image[..., :250], targets)


def test_training_with_the_detector_loss_logs_it(tmp_path: Path, ir_path: Path) -> None:
    from ivfusion.training.trainer import train

    data = write_tiny_pairs(tmp_path / "data", h=64, w=72)
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "model": {"width": 8, "grid_depth": 4, "downsample": 2, "cond_dim": 16, "guide_hidden": 4},
        "data": {"sources": [{"name": str(data)}], "crop": 64, "text_encoder": "random",
                 "cache_dir": str(tmp_path / "cache"), "degradation": {"prob": 0.5}},
        "train": {"seed": 1, "steps": 2, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
                  "checkpoint_every": 10, "threads": 1},
        "loss": {"detector": {"weight": 0.5, "target_score": 0.25, "weights": str(ir_path),
                              "class_weights": {"bicycle": 2.0}}},
        "presets": {"detection": {"t0": 0.8}, "visual": {"t0": 0.0}, "balanced": {}, "low_light": {}, "fog": {}},
    }
    train(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert all(np.isfinite(r["det"]) and np.isfinite(r["det_fusion"]) for r in log)
    cache = json.loads((tmp_path / "cache" / "student_detections.json").read_text())
    assert all(len(b) == 6 for boxes in cache.values() for b in boxes)  # class and score kept for pseudo-labels
    cfg["loss"]["detector"]["preset"] = "nope"
    with pytest.raises(Exception, match="not one of the presets"):
        train(cfg, progress=False, resume=False)


def test_embedding_tuning_changes_only_the_detection_preset(tmp_path: Path, ir_path: Path) -> None:
    from safetensors.torch import load_file

    from ivfusion.training.trainer import train

    data = write_tiny_pairs(tmp_path / "data", h=64, w=72)
    presets = {"detection": {"t0": 0.8}, "visual": {"t0": 0.0}, "balanced": {}}
    base = {
        "model": {"width": 8, "grid_depth": 4, "downsample": 2, "cond_dim": 16, "guide_hidden": 4},
        "data": {"sources": [{"name": str(data)}], "crop": 64, "text_encoder": "random",
                 "cache_dir": str(tmp_path / "cache"), "degradation": {"prob": 0.5}},
        "presets": presets,
    }
    start = train({**base, "output_dir": str(tmp_path / "start"),
                   "train": {"seed": 1, "steps": 1, "batch_size": 2, "warmup": 1, "threads": 1}}, progress=False)
    tuned_cfg = {**base, "output_dir": str(tmp_path / "tuned"),
                 "train": {"seed": 2, "steps": 3, "stop_at_step": 2, "batch_size": 2, "lr": 0.05, "warmup": 1,
                           "weight_decay": 0.0, "log_every": 1, "checkpoint_every": 1, "threads": 1,
                           "tune": "embedding", "init_from": str(start)},
                 "loss": {"detector": {"weight": 1.0, "target_score": 0.25, "weights": str(ir_path)}}}
    first = train(tuned_cfg, progress=False)
    tuned = train({**tuned_cfg, "train": {**tuned_cfg["train"], "stop_at_step": 0}}, progress=False)  # resumes
    log = [json.loads(line) for line in (tmp_path / "tuned" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    # logged before each update: 0 at step 1; step 3 (after the resume) continues from the learned vector
    assert log[2]["embedding_shift"] > log[1]["embedding_shift"] > log[0]["embedding_shift"] == 0
    net0, net1 = load_file(str(start / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    assert all(torch.equal(net0[k], net1[k]) for k in net0)  # the network is frozen
    p0, p1 = load_file(str(start / "presets.safetensors")), load_file(str(tuned / "presets.safetensors"))
    assert not torch.equal(p0["detection"], p1["detection"])
    assert all(torch.equal(p0[k], p1[k]) for k in ("visual", "balanced"))  # the other presets are untouched
    assert first == tuned
    with pytest.raises(Exception, match="loss.detector.weight > 0"):
        train({**tuned_cfg, "loss": {}}, progress=False, resume=False)


def test_one_preference_update_leaves_the_other_presets_to_the_anchor(tmp_path: Path, ir_path: Path) -> None:
    from ivfusion.training.detector_loss import DetectorLossConfig
    from ivfusion.training.trainer import train

    with pytest.raises(Exception, match="needs an anchor"):
        DetectorLossConfig(weight=1.0, mixed_fusion=0.0)
    data = write_tiny_pairs(tmp_path / "data", h=64, w=72)
    base = {
        "model": {"width": 8, "grid_depth": 4, "downsample": 2, "cond_dim": 16, "guide_hidden": 4},
        "data": {"sources": [{"name": str(data)}], "crop": 64, "text_encoder": "random",
                 "cache_dir": str(tmp_path / "cache"), "degradation": {"prob": 0.5}},
        "presets": {"detection": {"t0": 0.8}, "visual": {"t0": 0.0}, "balanced": {}},
    }
    for mixed in (0.0, 1.0):
        train({**base, "output_dir": str(tmp_path / f"mixed{mixed}"),
               "train": {"seed": 2, "steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 1, "log_every": 1,
                         "threads": 1},
               "loss": {"degradation": 0.1, "detector": {"weight": 0.5, "fusion": 0.7, "target_score": 0.25,
                                                         "weights": str(ir_path), "anchor": 2.0,
                                                         "mixed_fusion": mixed}}}, progress=False)
        for r in (json.loads(line) for line in (tmp_path / f"mixed{mixed}" / "log.jsonl").read_text().splitlines()):
            held = 0.5 * r["det"] + 0.7 * r["det_fusion"] + 0.1 * r["deg"] + 2.0 * r["anchor"]
            # mixed 0: the presets' own fusion pass is out of the objective; the anchor alone holds the others
            assert r["objective"] == pytest.approx(held + mixed * r["loss"], rel=1e-5), (mixed, r)
