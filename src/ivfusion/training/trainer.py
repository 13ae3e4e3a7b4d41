"""The student's training: a YAML config in, a ``save_pretrained`` folder out, resumable.

Data, losses and the model are set up here; the loop itself (accelerate, checkpoints, log, resume) is the
shared :class:`ivfusion.training.loop.TrainLoop`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from ivfusion.errors import ConfigError
from ivfusion.models.color import luma
from ivfusion.models.student import StudentFusionNet
from ivfusion.training.data import FusionPairs, SourceSpec, detector_labels, resolve_source
from ivfusion.training.detector_loss import DetectorLoss, DetectorLossConfig
from ivfusion.training.degradations import DegradationConfig
from ivfusion.training.losses import PresetLoss, degradation_loss, fusion_loss
from ivfusion.training.loop import TrainLoop, epochs, latest_checkpoint, make_accelerator  # noqa: F401 (latest_checkpoint re-exported)
from ivfusion.training.loop import load_config as load_yaml_config

SECTIONS = ("model", "data", "train", "loss", "presets", "output_dir")
TUNE = ("all", "embedding")  # train.tune: every weight, or only the detector preset's cached embedding
REQUIRED = ("data", "train", "presets", "output_dir")


def load_config(path: str | Path, sections: tuple[str, ...] = SECTIONS,
                required: tuple[str, ...] = REQUIRED) -> dict[str, Any]:
    """The student's training YAML (``training.loop.load_config`` with its sections)."""
    return load_yaml_config(path, sections, required)


def _prompt_embeddings(kind: str, text_dim: int, seed: int) -> dict[str, torch.Tensor]:
    from ivfusion.models.text import PRESET_PROMPTS

    if kind == "minilm":
        from ivfusion.models.text import prompt_embeddings

        return prompt_embeddings()
    if kind == "random":  # tests: deterministic unit vectors, no encoder needed
        g = torch.Generator().manual_seed(seed)
        return {n: torch.nn.functional.normalize(torch.randn(len(p), text_dim, generator=g), dim=1)
                for n, p in PRESET_PROMPTS.items()}
    raise ConfigError(f"data.text_encoder must be 'minilm' or 'random', got {kind!r}")


def train(cfg: dict[str, Any], *, resume: bool = True, progress: bool = True) -> Path:
    """Train per ``cfg`` (see config/train/student.yaml); returns the final ``save_pretrained`` folder."""
    tcfg, dcfg, lcfg = cfg["train"], cfg["data"], cfg.get("loss", {})
    seed = int(tcfg.get("seed", 0))
    batch_size = int(tcfg.get("batch_size", 8))
    accelerator = make_accelerator(tcfg)  # seeds before the model is built: the initial weights follow train.seed

    model = StudentFusionNet.from_config(cfg.get("model", {}))
    prompts = _prompt_embeddings(dcfg.get("text_encoder", "minilm"), model.config["text_dim"], seed)
    model.preset_embeddings = {n: p[0].clone() for n, p in prompts.items()}
    if init := tcfg.get("init_from"):  # another run's weights and presets (a tuned preset carries over); not a resume
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(Path(init) / "model.safetensors")))
        model.preset_embeddings.update(StudentFusionNet.load_presets(init))
    presets = {n: PresetLoss(**(v or {})) for n, v in cfg["presets"].items()}
    sources = [resolve_source(SourceSpec(**s) if isinstance(s, dict) else SourceSpec(str(s))) for s in dcfg["sources"]]
    det_cfg = DetectorLossConfig(**lcfg.get("detector", {}))
    if det_cfg.weight > 0 and det_cfg.preset not in presets:
        raise ConfigError(f"loss.detector.preset {det_cfg.preset!r} is not one of the presets {sorted(presets)}")
    detections = None
    if dcfg.get("boxes", True) or det_cfg.weight > 0:
        detections = detector_labels(sources, Path(dcfg.get("cache_dir", "outputs/cache")) / "student_detections.json")
    dataset = FusionPairs(sources, crop=int(dcfg.get("crop", 192)), presets=presets, prompt_embeddings=prompts,
                          degradation=DegradationConfig(**dcfg.get("degradation", {})),
                          max_side=int(dcfg.get("max_side", 800)), detections=detections,
                          target_score=det_cfg.target_score if det_cfg.weight > 0 else None, seed=seed)
    tune = str(tcfg.get("tune", "all"))
    if tune not in TUNE:
        raise ConfigError(f"train.tune must be one of {TUNE}, got {tune!r}")
    if tune == "embedding" and det_cfg.weight <= 0:
        raise ConfigError("train.tune: embedding learns the detector preset's embedding; set loss.detector.weight > 0")
    det_loss = reference = learned = start_embedding = None
    params: Any = model.parameters()
    if det_cfg.weight > 0:
        det_loss = DetectorLoss(det_cfg, accelerator.device)
        det_prompts = prompts[det_cfg.preset]
        det_weights = presets[det_cfg.preset].as_tensor().to(accelerator.device)
        det_index = dataset.preset_names.index(det_cfg.preset)
        det_pick = torch.Generator().manual_seed(seed + 1)
        if tune == "embedding":
            learned, start_embedding = _learned_embedding(model, det_cfg.preset, accelerator.device)
            params = [learned]
        elif det_cfg.anchor > 0:  # the starting model, frozen: an update for one preference, like DPO's reference
            reference = copy.deepcopy(model).eval().requires_grad_(False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                                         drop_last=True, num_workers=int(dcfg.get("num_workers", 0)),
                                         generator=torch.Generator().manual_seed(seed))
    loop = TrainLoop(cfg, model, params, resume=resume, progress=progress, name="student",
                     defaults={"lr": 2e-3, "warmup": 100, "weight_decay": 1e-4, "log_every": 50},
                     accelerator=accelerator, prepare=(loader,),
                     postfix=("det",) if learned is not None else ("deg", "det") if det_loss else ("deg",))
    if learned is not None and loop.resumed_from is not None:  # the learned vector lives in the presets file
        with torch.no_grad():
            learned.copy_(StudentFusionNet.load_presets(loop.resumed_from)[det_cfg.preset].view(-1))
    batches = epochs(loop.prepared[0], dataset, loop)
    w_deg = float(lcfg.get("degradation", 0.1))

    def detector_pass(batch: dict[str, torch.Tensor], vis_y: torch.Tensor
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The same inputs under the detector's preference: detector loss + that preset's fusion losses."""
        b = batch["rgb"].shape[0]
        if learned is not None:
            emb = learned.view(1, -1).expand(b, -1)
        else:
            emb = det_prompts[torch.randint(len(det_prompts), (b,), generator=det_pick)].to(batch["rgb"])
        od = loop.model(batch["thermal_in"], batch["rgb_in"], emb)
        l_fus, _ = fusion_loss(od.y, od.rgb, batch["thermal"], vis_y, batch["rgb"], det_weights.expand(b, -1),
                               batch["box"])
        l_det, det_parts = det_loss(od.rgb, batch["targets"])
        return det_cfg.weight * l_det + det_cfg.fusion * l_fus, {"det": l_det.detach(), "det_fusion": l_fus.detach(),
                                                                 **det_parts}

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch = next(batches)
        vis_y = luma(batch["rgb"])
        if learned is not None:  # the network is frozen: only the detector preset's pass has a gradient
            total, logged = detector_pass(batch, vis_y)
            logged["embedding_shift"] = (learned - start_embedding).norm().detach()
            return total, logged
        o = loop.model(batch["thermal_in"], batch["rgb_in"], batch["preference"])
        loss, parts = fusion_loss(o.y, o.rgb, batch["thermal"], vis_y, batch["rgb"], batch["weights"], batch["box"])
        l_deg = degradation_loss(o.degradation_logits, batch["degradation"])
        # mixed_fusion 0 (with the detector pass): a one-preference update; the anchor alone holds the other presets
        mixed = det_cfg.mixed_fusion if det_loss is not None else 1.0
        total, logged = mixed * loss + w_deg * l_deg, {"loss": loss.detach(), "deg": l_deg.detach(), **parts}
        if det_loss is not None:
            l_pass, pass_parts = detector_pass(batch, vis_y)
            total = total + l_pass
            logged.update(pass_parts)
            if reference is not None:
                with torch.no_grad():
                    ref = reference(batch["thermal_in"], batch["rgb_in"], batch["preference"]).rgb
                other = (batch["preset"] != det_index).to(ref)
                l_anchor = ((o.rgb - ref).abs().mean(dim=(1, 2, 3)) * other).sum() / other.sum().clamp(min=1)
                total = total + det_cfg.anchor * l_anchor
                logged["anchor"] = l_anchor.detach()
            logged["objective"] = total.detach()
        # backprop the total; log the fusion loss as "loss", the degradation BCE as "deg", the detector's as "det"
        return total, logged

    return loop.run(step_fn)


def _learned_embedding(model: StudentFusionNet, preset: str,
                       device: torch.device) -> tuple[torch.nn.Parameter, torch.Tensor]:
    """Freeze the network and make ``preset``'s cached embedding the only trainable tensor (prompt tuning);
    returns it and a copy of its starting value.

    Why: a detector-aware update of shared weights also moves every other preset (docs/student.md, v3); learning
    only this preset's embedding leaves the others bit-identical, and ``save_pretrained`` writes the learned
    vector to presets.safetensors, where the node and the ONNX graph already read it.
    """
    model.requires_grad_(False)
    start = model.preset_embeddings[preset].detach().clone().view(-1).to(device)
    learned = torch.nn.Parameter(start.clone())
    model.preset_embeddings[preset] = learned
    return learned, start
