"""Weight-space combinations of teacher runs fine-tuned from one PALDM: soups and extrapolation.

Two uses, one operation (``sum_i w_i * theta_i`` over models of one architecture):

* a *soup* (Wortsman et al. 2022): equal weights over replicates; what the seeds share stays, each seed's own noise
  cancels (docs/teacher.md, session 11);
* *extrapolation* along the fine-tuning direction (ExPO, Zheng et al. 2024): ``theta_ref + alpha (theta_tuned -
  theta_ref)``, weights ``(1 - alpha, alpha)``. DPO with a strong KL anchor (beta 5000 here) moves the policy a small
  way towards what the verdicts prefer; alpha > 1 goes further along the same direction without another run, at the
  price of going further from the reference (its fidelity too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ivfusion.errors import ConfigError
from ivfusion.teacher.paldm import PALDM


def combine(folders: Sequence[str | Path], weights: Sequence[float] | None = None) -> PALDM:
    """The first model with every floating-point weight replaced by ``sum_i weights[i] * model_i``.

    ``weights`` default to the mean. They must sum to 1: anything else rescales the network instead of moving
    inside the span of the runs.
    """
    if len(folders) < 2:
        raise ConfigError("a weight-space combination needs at least two models")
    weights = [1.0 / len(folders)] * len(folders) if weights is None else [float(w) for w in weights]
    if len(weights) != len(folders):
        raise ConfigError(f"{len(weights)} weights for {len(folders)} models")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ConfigError(f"weights {weights} sum to {sum(weights):g}, not 1")
    models = [PALDM.from_pretrained(f) for f in folders]
    if len({str(dict(m.config)) for m in models}) > 1:
        raise ConfigError(f"{[str(f) for f in folders]}: the models' configs differ; weights combine one architecture")
    states = [m.state_dict() for m in models]
    if any(s.keys() != states[0].keys() for s in states):
        raise ConfigError(f"{[str(f) for f in folders]}: the models hold different parameters")
    merged = {k: (sum(w * s[k].double() for w, s in zip(weights, states)).to(v.dtype) if v.is_floating_point() else v)
              for k, v in states[0].items()}
    models[0].load_state_dict(merged)
    return models[0]


def extrapolate(reference: str | Path, tuned: str | Path, alpha: float) -> PALDM:
    """``reference + alpha * (tuned - reference)``: alpha 1 is ``tuned``, 0 the reference, 2 twice the step."""
    return combine([reference, tuned], [1.0 - alpha, alpha])
