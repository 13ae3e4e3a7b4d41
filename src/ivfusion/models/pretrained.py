"""The ``save_pretrained`` folder format shared by the student and the teacher (diffusers-style).

A folder holds ``config.json`` (constructor arguments plus ``_class_name`` / ``_format_version``) next to
``model.safetensors``; reading one never unpickles anything. Both model classes call these two helpers so that
both report a missing file, an unknown key or a too-new format the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ivfusion.errors import ConfigError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def constructor_args(cls: type, config: dict[str, Any], what: str) -> dict[str, Any]:
    """``config`` without its ``_`` bookkeeping keys, checked against ``cls.__init__``'s keyword-only arguments."""
    known = set(cls.__init__.__kwdefaults__ or {})
    args = {k: v for k, v in config.items() if not k.startswith("_")}
    unknown = set(args) - known
    if unknown:
        raise ConfigError(f"{what} config: unknown keys {sorted(unknown)}")
    return args


def write_pretrained(directory: str | Path, model: Any, class_name: str, format_version: int,
                     dtype: Any = None) -> Path:
    """``config.json`` (``model.config`` + bookkeeping) and ``model.safetensors`` (state dict, optionally cast)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"_class_name": class_name, "_format_version": format_version, **model.config}
    (directory / CONFIG_NAME).write_text(json.dumps(doc, indent=2) + "\n")
    state = {k: v.detach().cpu().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "class": class_name})
    return directory


def read_pretrained(directory: str | Path, what: str, format_version: int) -> tuple[dict[str, Any], Path]:
    """The parsed ``config.json`` of a ``save_pretrained`` folder and the path of its weights."""
    directory = Path(directory)
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.exists():
            raise ConfigError(f"{what}: {p} does not exist (a save_pretrained folder holds {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME})")
    doc = json.loads(cfg_path.read_text())
    if doc.get("_format_version", format_version) > format_version:
        raise ConfigError(f"{what}: {cfg_path} has format version {doc['_format_version']}; this code reads "
                          f"<= {format_version}")
    return doc, w_path


def load_pretrained(cls: Any, directory: str | Path, what: str, format_version: int, map_location: str = "cpu") -> Any:
    """``cls.from_config`` on the saved config, then the safetensors weights: the common part of every
    ``from_pretrained``."""
    from safetensors.torch import load_file

    doc, w_path = read_pretrained(directory, what, format_version)
    model = cls.from_config(doc)
    model.load_state_dict(load_file(str(w_path), device=map_location))
    return model
