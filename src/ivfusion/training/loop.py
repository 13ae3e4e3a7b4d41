"""The training loop every model here shares (student, PALDM, IDPO, distillation).

Hugging Face ``accelerate`` places model, optimizer and loader on the device(s) (CPU here, one or more GPUs under
``accelerate launch``); checkpoints hold the weights as safetensors (``save_pretrained``) and the optimizer
state as a tensors-only ``torch.save`` file read back with ``weights_only=True``; ``state.json`` holds the step
and the data epoch, so a resumed run continues the schedule and reshuffles as the original would have.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from ivfusion.errors import ConfigError

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, Any]]]  # (loss, logged parts: floats or 0-d tensors)


def latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted((output_dir / "checkpoints").glob("step_*"))
    return ckpts[-1] if ckpts else None


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def load_config(path: str | Path, sections: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    """A training YAML with only known top-level sections and every required one (student and teacher configs).

    ``base: other.yaml`` (relative to this file) starts from that config and overrides it section by section, key
    by key (null removes a key): a fold or a variant of a recipe names only what differs
    (config/train/reward_g_f1.yaml)."""
    cfg = _read_with_base(Path(path), ())
    unknown = set(cfg) - set(sections)
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; known: {', '.join(sections)}")
    for key in required:
        if key not in cfg:
            raise ConfigError(f"{path}: missing section {key!r}")
    return cfg


def _read_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"training config {path} does not exist")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: `base` chain loops back to itself ({' -> '.join(map(str, seen))})")
    cfg = yaml.safe_load(path.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a training config is a mapping of sections, got {type(cfg).__name__}")
    base = cfg.pop("base", None)
    if base is None:
        return cfg
    return merge_config(_read_with_base(path.parent / str(base), (*seen, path.resolve())), cfg)


def merge_config(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it: mappings merge key by key, anything else (lists too) is replaced, and a
    key set to null is removed (a variant that drops one of its base's oracles)."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


def make_accelerator(tcfg: dict[str, Any]) -> Any:
    """Accelerator for ``train.cpu`` (default: CPU when no CUDA), global seed ``train.seed``, ``train.threads``."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(cpu=bool(tcfg.get("cpu", not torch.cuda.is_available())))
    set_seed(int(tcfg.get("seed", 0)))
    if "threads" in tcfg:
        torch.set_num_threads(int(tcfg["threads"]))
    return accelerator


def epochs(loader: Any, dataset: Any, loop: TrainLoop) -> Iterator[Any]:
    """Batches of ``loader`` forever; ``dataset.epoch`` (its crop seed) and ``loop.epoch`` advance per pass."""
    while True:
        dataset.epoch = loop.epoch
        yield from loader
        loop.epoch += 1


class TrainLoop:
    """Optimizer, resume, checkpoints, jsonl log, progress bar, time budget and early stop around a step function.

    ``defaults`` are the model's own defaults for ``lr``, ``warmup``, ``weight_decay``, ``log_every`` (the YAML's
    ``train`` section overrides them); ``prepare`` are extra objects (data loaders) for ``accelerator.prepare``,
    returned prepared in ``self.prepared``; ``postfix`` names logged parts shown on the progress bar.
    """

    def __init__(self, cfg: dict[str, Any], model: Any, params: Any, *, resume: bool, progress: bool, name: str,
                 defaults: dict[str, float] | None = None, accelerator: Any = None, prepare: tuple = (),
                 postfix: tuple[str, ...] = ()) -> None:
        d = {"lr": 2e-4, "warmup": 50, "weight_decay": 0.0, "log_every": 25, **(defaults or {})}
        tcfg = cfg["train"]
        self.out = Path(cfg["output_dir"])
        self.accelerator = accelerator if accelerator is not None else make_accelerator(tcfg)
        self.steps = int(tcfg["steps"])
        self.base_lr, self.warmup = float(tcfg.get("lr", d["lr"])), int(tcfg.get("warmup", d["warmup"]))
        self.optimizer = torch.optim.AdamW(params, lr=self.base_lr,
                                           weight_decay=float(tcfg.get("weight_decay", d["weight_decay"])))
        self.step, self.epoch = 0, 0
        self.resumed_from = ckpt = latest_checkpoint(self.out) if resume else None
        if ckpt is not None:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
            self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
            state = json.loads((ckpt / "state.json").read_text())
            self.step, self.epoch = int(state["step"]), int(state.get("epoch", 0))
            self.accelerator.print(f"resumed from {ckpt} at step {self.step}")
        self.model, self.optimizer, *self.prepared = self.accelerator.prepare(model, self.optimizer, *prepare)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.log_every = int(tcfg.get("log_every", d["log_every"]))
        self.ckpt_every = int(tcfg.get("checkpoint_every", 500))
        self.keep = int(tcfg.get("keep_checkpoints", 2))
        self.max_minutes = float(tcfg.get("max_minutes", 0)) or None
        self.stop_at = int(tcfg.get("stop_at_step", 0)) or None  # stop early but keep the schedule of train.steps
        self.postfix = postfix
        self.bar = tqdm(total=self.steps, initial=self.step, desc=f"train {name}", unit="step", disable=not progress)
        self.log = (self.out / "log.jsonl").open("a")

    def run(self, step_fn: StepFn) -> Path:
        """Call ``step_fn(step) -> (loss, parts)`` until ``steps``, the time budget or ``stop_at_step``; backprop
        ``loss`` and log ``parts`` (a ``"loss"`` entry there replaces the logged loss); returns ``final/``.

        The time budget counts from here: data preparation between construction and ``run`` (IDPO candidates,
        distillation caches) must not eat into training."""
        self.start = time.monotonic()
        self.model.train()
        while self.step < self.steps:
            lr = lr_at(self.step, self.steps, self.base_lr, self.warmup)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, parts = step_fn(self.step)
            if not torch.isfinite(loss):
                raise ConfigError(f"{self.out}: loss became {loss.item()} at step {self.step}; lower train.lr")
            self.optimizer.zero_grad(set_to_none=True)
            self.accelerator.backward(loss)
            self.accelerator.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], 1.0)
            self.optimizer.step()
            self.step += 1
            self.bar.update(1)
            if self.step % self.log_every == 0 or self.step == self.steps:
                rec = {"step": self.step, "lr": lr, "loss": loss.detach().item(),
                       **{k: float(torch.as_tensor(v).detach()) for k, v in parts.items()},
                       "minutes": (time.monotonic() - self.start) / 60}
                self.log.write(json.dumps(rec) + "\n")
                self.log.flush()
                self.bar.set_postfix(loss=f"{rec['loss']:.4f}", **{k: f"{rec[k]:.3f}" for k in self.postfix})
            over_time = self.max_minutes is not None and (time.monotonic() - self.start) / 60 > self.max_minutes
            stop = over_time or (self.stop_at is not None and self.step >= self.stop_at)
            if self.step % self.ckpt_every == 0 or self.step == self.steps or stop:
                self.checkpoint()
            if stop:
                self.accelerator.print(f"stopping at step {self.step} ("
                                       + ("time budget" if over_time else "stop_at_step") + ")")
                break
        self.bar.close()
        self.log.close()
        final = self.out / "final"
        if self.accelerator.is_main_process:
            self.accelerator.unwrap_model(self.model).save_pretrained(final)
        return final

    def checkpoint(self) -> None:
        if not self.accelerator.is_main_process:
            return
        d = self.out / "checkpoints" / f"step_{self.step:07d}"
        self.accelerator.unwrap_model(self.model).save_pretrained(d)
        torch.save(self.optimizer.state_dict(), d / "optimizer.pt")
        (d / "state.json").write_text(json.dumps({"step": self.step, "epoch": self.epoch}))
        for old in sorted((self.out / "checkpoints").glob("step_*"))[:-self.keep]:
            shutil.rmtree(old)
