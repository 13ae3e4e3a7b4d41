"""The student's training loop: a YAML config in, a ``save_pretrained`` folder out, resumable.

Hugging Face ``accelerate`` places the model, optimizer and loader on the device(s) (CPU here, one or more
GPUs when launched with ``accelerate launch``); checkpoints hold the weights as safetensors and the optimizer
state as a tensors-only ``torch.save`` file that is read back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from ivfusion.errors import ConfigError
from ivfusion.models.color import luma
from ivfusion.models.student import StudentFusionNet
from ivfusion.training.data import FusionPairs, SourceSpec, detector_boxes, resolve_source
from ivfusion.training.degradations import DegradationConfig
from ivfusion.training.losses import PresetLoss, degradation_loss, fusion_loss

SECTIONS = ("model", "data", "train", "loss", "presets", "output_dir")


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"training config {path} does not exist")
    cfg = yaml.safe_load(path.read_text()) or {}
    unknown = set(cfg) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    for key in ("data", "train", "presets", "output_dir"):
        if key not in cfg:
            raise ConfigError(f"{path}: missing section {key!r}")
    return cfg


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


def latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted((output_dir / "checkpoints").glob("step_*"))
    return ckpts[-1] if ckpts else None


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of ``base`` (shared by the student and teacher trainers)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: dict[str, Any], *, resume: bool = True, progress: bool = True) -> Path:
    """Train per ``cfg`` (see config/train/student.yaml); returns the final ``save_pretrained`` folder."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    tcfg, dcfg, lcfg = cfg["train"], cfg["data"], cfg.get("loss", {})
    seed = int(tcfg.get("seed", 0))
    steps, batch_size = int(tcfg["steps"]), int(tcfg.get("batch_size", 8))
    out = Path(cfg["output_dir"])
    accelerator = Accelerator(cpu=bool(tcfg.get("cpu", not torch.cuda.is_available())))
    set_seed(seed)
    if "threads" in tcfg:
        torch.set_num_threads(int(tcfg["threads"]))

    model = StudentFusionNet.from_config(cfg.get("model", {}))
    if tcfg.get("init_from"):  # start from another run's weights (fine-tuning, distillation); not a resume
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(Path(tcfg["init_from"]) / "model.safetensors")))
    prompts = _prompt_embeddings(dcfg.get("text_encoder", "minilm"), model.config["text_dim"], seed)
    model.preset_embeddings = {n: p[0].clone() for n, p in prompts.items()}
    presets = {n: PresetLoss(**(v or {})) for n, v in cfg["presets"].items()}
    sources = [resolve_source(SourceSpec(**s) if isinstance(s, dict) else SourceSpec(str(s))) for s in dcfg["sources"]]
    boxes = None
    if dcfg.get("boxes", True):
        boxes = detector_boxes(sources, Path(dcfg.get("cache_dir", "outputs/cache")) / "student_boxes.json")
    dataset = FusionPairs(sources, crop=int(dcfg.get("crop", 192)), presets=presets, prompt_embeddings=prompts,
                          degradation=DegradationConfig(**dcfg.get("degradation", {})),
                          max_side=int(dcfg.get("max_side", 800)), boxes=boxes, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                                         drop_last=True, num_workers=int(dcfg.get("num_workers", 0)),
                                         generator=torch.Generator().manual_seed(seed))
    base_lr, warmup = float(tcfg.get("lr", 2e-3)), int(tcfg.get("warmup", 100))
    optimizer = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=float(tcfg.get("weight_decay", 1e-4)))

    step, epoch = 0, 0
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        state = json.loads((ckpt / "state.json").read_text())
        step, epoch = int(state["step"]), int(state["epoch"])
        accelerator.print(f"resumed from {ckpt} at step {step}")

    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    w_deg = float(lcfg.get("degradation", 0.1))
    ckpt_every, log_every = int(tcfg.get("checkpoint_every", 500)), int(tcfg.get("log_every", 50))
    keep = int(tcfg.get("keep_checkpoints", 2))
    max_minutes = float(tcfg.get("max_minutes", 0)) or None
    stop_at = int(tcfg.get("stop_at_step", 0)) or None  # stop early but keep the schedule of train.steps
    start = time.monotonic()
    bar = tqdm(total=steps, initial=step, desc="train student", unit="step", disable=not progress)
    log = (out / "log.jsonl").open("a")
    model.train()
    while step < steps:
        dataset.epoch = epoch
        for batch in loader:
            if step >= steps:
                break
            lr = lr_at(step, steps, base_lr, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            o = model(batch["thermal_in"], batch["rgb_in"], batch["preference"])
            loss, parts = fusion_loss(o.y, o.rgb, batch["thermal"], luma(batch["rgb"]), batch["rgb"], batch["weights"],
                                      batch["box"])
            l_deg = degradation_loss(o.degradation_logits, batch["degradation"])
            total = loss + w_deg * l_deg
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(total)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            bar.update(1)
            if step % log_every == 0 or step == steps:
                rec = {"step": step, "lr": lr, "loss": loss.item(), "deg": l_deg.item(),
                       **{k: v.item() for k, v in parts.items()}, "minutes": (time.monotonic() - start) / 60}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{rec['loss']:.4f}", deg=f"{rec['deg']:.3f}")
            if step % ckpt_every == 0 or step == steps:
                _checkpoint(accelerator, model, optimizer, out, step, epoch, keep=keep)
            over_time = max_minutes is not None and (time.monotonic() - start) / 60 > max_minutes
            if over_time or (stop_at is not None and step >= stop_at):
                accelerator.print(f"stopping at step {step} (" + ("time budget" if over_time else "stop_at_step") + ")")
                steps = step
                _checkpoint(accelerator, model, optimizer, out, step, epoch, keep=keep)
                break
        epoch += 1
    bar.close()
    log.close()
    final = out / "final"
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(final)
    return final


def _checkpoint(accelerator, model, optimizer, out: Path, step: int, epoch: int, keep: int) -> None:
    if not accelerator.is_main_process:
        return
    d = out / "checkpoints" / f"step_{step:07d}"
    accelerator.unwrap_model(model).save_pretrained(d)
    torch.save(optimizer.state_dict(), d / "optimizer.pt")
    (d / "state.json").write_text(json.dumps({"step": step, "epoch": epoch}))
    for old in sorted((out / "checkpoints").glob("step_*"))[:-keep]:
        shutil.rmtree(old)
