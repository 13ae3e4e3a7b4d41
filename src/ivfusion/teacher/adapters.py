"""One teacher for several preferences: a PALDM plus one weight delta per preference, chosen by the embedding.

Why: a single PCLDM trained on both preferences' pairs keeps neither single-preference run's gain (IDPO v9 blended
them; v13's ``visual`` loses SSIM however it is guided, docs/teacher.md sessions 18 and 19), while the runs trained
for one preference each do what that preference asks (v12v for ``visual``). Keeping each run's change as its own
delta from the PALDM (a task vector, Ilharco et al. 2023; the role LoRA adapters play in diffusers'
``set_adapters``) keeps the changes apart by construction, and the preference embedding still controls the model:
a preset's own embedding selects its delta, free text mixes the deltas by how close it is to each preset.

Each adapter also carries the classifier-free guidance its run was measured at (``PALDM.guided``), because that is
part of what was measured: v13 under ``detection`` is tested at guidance 3.

Files (``save_pretrained``): ``adapters.json`` (names, guidance, routing temperature, sources) and
``adapters.safetensors`` (each preset's embedding and each parameter's delta), beside either the PALDM's own folder
files (``config.json``, ``model.safetensors``, ``scheduler_config.json``: a self-contained folder) or a link to the
PALDM folder they were made from (``base``: a relative path and its weights' SHA-256), as diffusers keeps LoRA
weights apart from the pipeline they load onto. Linked adapters with int8 deltas are what ``models/teacher/pcldm``
ships: the PALDM is committed once, and each preference costs a quarter of a full model. No pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ivfusion.errors import ConfigError
from ivfusion.models.pretrained import WEIGHTS_NAME
from ivfusion.paths import REPO_ROOT
from ivfusion.teacher.paldm import PALDM

ADAPTERS_CONFIG = "adapters.json"
DEFAULT_TEACHER_DIR = REPO_ROOT / "models" / "teacher" / "pcldm"  # the shipped teacher (linked to ../paldm)
ADAPTERS_WEIGHTS = "adapters.safetensors"
ADAPTERS_FORMAT = 2
READS_FORMATS = (1, 2)  # 1: always a self-contained folder with float deltas (session 20)
INT8 = "int8-rowwise"


@dataclass(frozen=True)
class AdapterSpec:
    """One preference's adapter: its preset name, the guidance it was measured at, and where its delta came from."""

    name: str
    guidance: float = 1.0
    source: str = ""


class PreferenceAdapters(nn.Module):
    """A PALDM whose weights follow the preference: ``base + sum_k w_k(e) * delta_k``.

    ``w(e) = softmax(cos(e, e_k) / temperature)`` over the adapters' preset embeddings ``e_k``; a preset's own
    embedding gives exactly its own delta. The sampling guidance is mixed with the same weights.
    ``sample`` has :meth:`PALDM.sample`'s signature, so evaluation and distillation take either model.
    """

    def __init__(self, base: PALDM, specs: list[AdapterSpec], embeddings: torch.Tensor,
                 deltas: list[dict[str, torch.Tensor]], temperature: float = 0.05) -> None:
        super().__init__()
        if not specs or len(specs) != len(deltas) or embeddings.shape[0] != len(specs):
            raise ConfigError(f"adapters: {len(specs)} specs, {len(deltas)} deltas, {embeddings.shape[0]} embeddings")
        if len({s.name for s in specs}) < len(specs):
            raise ConfigError(f"adapters: two adapters share a name: {[s.name for s in specs]}")
        if temperature <= 0:
            raise ConfigError(f"adapters: temperature must be > 0, got {temperature}")
        params = {k: v for k, v in base.state_dict().items() if v.is_floating_point()}
        for spec, delta in zip(specs, deltas):
            if delta.keys() != params.keys() or any(delta[k].shape != params[k].shape for k in params):
                raise ConfigError(f"adapters: {spec.name!r}'s delta does not match the base model's parameters")
        self.model = base
        self.specs = list(specs)
        self.temperature = float(temperature)
        self.register_buffer("embeddings", embeddings.float(), persistent=False)
        self._base = {k: v.detach().clone() for k, v in params.items()}
        self._deltas = [{k: v.float() for k, v in d.items()} for d in deltas]
        self._loaded: tuple[float, ...] | None = None  # the mixing weights now in self.model

    # --------------------------------------------------------------------------------------------- routing
    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def deltas(self) -> list[dict[str, torch.Tensor]]:
        """Each adapter's change from the base, per parameter (float32), in ``specs`` order."""
        return self._deltas

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def multiple(self) -> int:
        return self.model.multiple

    @property
    def text_dim(self) -> int:
        return self.model.text_dim

    def routing(self, preference: torch.Tensor | None) -> torch.Tensor:
        """(K,) mixing weights of one (text_dim,) embedding; None (no preference) gives the PALDM: all zeros."""
        if preference is None:
            return torch.zeros(len(self.specs))
        cos = F.cosine_similarity(preference.detach().float().view(1, -1).cpu(), self.embeddings.cpu(), dim=1)
        if cos.max() > 1 - 1e-6:  # a preset's own embedding: exactly its adapter, the model its run measured
            return (cos == cos.max()).float() / (cos == cos.max()).sum()
        return torch.softmax(cos / self.temperature, dim=0)

    def _load(self, weights: torch.Tensor) -> None:
        """Put ``base + sum_k weights[k] * delta_k`` into the model (skipped when those weights are already in)."""
        key = tuple(round(float(w), 6) for w in weights)
        if key == self._loaded:
            return
        state = {}
        for name, base in self._base.items():
            value = base.double()
            for w, delta in zip(weights.tolist(), self._deltas):
                if w:
                    value = value + w * delta[name].double()
            state[name] = value.to(base.dtype)
        self.model.load_state_dict(state, strict=False)
        self._loaded = key

    # -------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, thermal: torch.Tensor, vis_y: torch.Tensor, code: torch.Tensor | int = 4,
               preference: torch.Tensor | None = None, *, steps: int = 10, eta: float = 0.0,
               generator: torch.Generator | None = None, shared_noise: bool = False,
               guidance: float = 1.0, negative: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`PALDM.sample` with the weights and guidance of each row's preference.

        ``guidance`` scales each adapter's own (1 = as measured). Rows that share a preference are sampled as one
        batch; with ``shared_noise`` every group starts from the same draw of ``generator``, as one batch would.
        """
        if preference is None:
            self._load(self.routing(None))
            return self.model.sample(thermal, vis_y, code, None, steps=steps, eta=eta, generator=generator,
                                     shared_noise=shared_noise, guidance=guidance, negative=negative)
        b = thermal.shape[0]
        if preference.shape[0] != b:
            raise ConfigError(f"teacher: one preference per image wanted ({b}), got {preference.shape[0]}")
        code = torch.full((b,), code, dtype=torch.long, device=thermal.device) if isinstance(code, int) else code
        groups: dict[bytes, list[int]] = {}
        for i in range(b):
            groups.setdefault(preference[i].detach().float().cpu().numpy().tobytes(), []).append(i)
        state = generator.get_state() if generator is not None else None
        out = torch.empty_like(thermal)
        for rows in groups.values():
            if generator is not None and shared_noise:
                generator.set_state(state)
            weights = self.routing(preference[rows[0]])
            self._load(weights)
            mixed = float(sum(w * s.guidance for w, s in zip(weights.tolist(), self.specs)))
            idx = torch.tensor(rows, device=thermal.device)
            out[idx] = self.model.sample(
                thermal[idx], vis_y[idx], code[idx], preference[idx], steps=steps, eta=eta, generator=generator,
                shared_noise=shared_noise, guidance=guidance * mixed,
                negative=None if negative is None else negative[idx])
        return out

    # ----------------------------------------------------------------------------------------------- files
    @classmethod
    def from_runs(cls, base_dir: str | Path, runs: Mapping[str, tuple[str | Path, float]],
                  embeddings: Mapping[str, torch.Tensor], temperature: float = 0.05) -> PreferenceAdapters:
        """Adapters from fine-tuned runs of one PALDM: ``runs[name] = (run folder, guidance)``; each delta is the
        run's weights minus ``base_dir``'s."""
        base = PALDM.from_pretrained(base_dir)
        ref = base.state_dict()
        specs, deltas = [], []
        for name, (folder, guidance) in runs.items():
            run = PALDM.from_pretrained(folder)
            if str(dict(run.config)) != str(dict(base.config)):
                raise ConfigError(f"adapters: {folder} is not a fine-tuned copy of {base_dir} (the configs differ)")
            specs.append(AdapterSpec(name, float(guidance), str(folder)))
            deltas.append({k: v - ref[k] for k, v in run.state_dict().items() if v.is_floating_point()})
        missing = [n for n in runs if n not in embeddings]
        if missing:
            raise ConfigError(f"adapters: no embedding for {missing}")
        return cls(base, specs, torch.stack([embeddings[n].float().view(-1) for n in runs]), deltas, temperature)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None, *,
                        base_dir: str | Path | None = None, int8: bool = False) -> Path:
        """``adapters.json`` and ``adapters.safetensors``, plus the base PALDM's folder files in ``dtype``, or,
        with ``base_dir``, a link to that folder (which must hold exactly this base) instead of a copy.

        ``int8`` stores each delta as int8 with one float32 scale per output row (absmax / 127): a quarter of
        float32. IDPO's deltas are small and dense, so rounding them moves the sample far less than the deltas do
        (``models/teacher/README.md`` has the measured difference).
        """
        from safetensors.torch import save_file

        from ivfusion.engines.cache import file_sha256

        directory = Path(directory)
        self._load(self.routing(None))  # the base weights, not a mixture, are what a copy or a link must hold
        config: dict = {"format": ADAPTERS_FORMAT, "temperature": self.temperature,
                        "deltas": INT8 if int8 else "float", "adapters": [asdict(s) for s in self.specs]}
        if base_dir is None:
            self.model.save_pretrained(directory, dtype=dtype)
        else:
            linked = PALDM.from_pretrained(base_dir)
            state = linked.state_dict()
            if dict(linked.config) != dict(self.model.config) or any(
                    not torch.equal(state[k].float(), v.float()) for k, v in self._base.items()):
                raise ConfigError(f"adapters: {base_dir} does not hold the PALDM these adapters were made from")
            directory.mkdir(parents=True, exist_ok=True)
            config["base"] = os.path.relpath(Path(base_dir).resolve(), directory.resolve())
            config["base_sha256"] = file_sha256(Path(base_dir) / WEIGHTS_NAME)
        tensors = {f"embedding.{s.name}": e.contiguous() for s, e in zip(self.specs, self.embeddings.cpu())}
        for spec, delta in zip(self.specs, self._deltas):
            for k, v in delta.items():
                if int8:
                    q, scale = quantize_int8(v)
                    tensors |= {f"delta.{spec.name}.{k}": q, f"scale.{spec.name}.{k}": scale}
                else:
                    tensors[f"delta.{spec.name}.{k}"] = (v if dtype is None else v.to(dtype)).contiguous()
        save_file(tensors, str(directory / ADAPTERS_WEIGHTS))
        (directory / ADAPTERS_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> PreferenceAdapters:
        from safetensors.torch import load_file

        directory = Path(directory)
        path = directory / ADAPTERS_CONFIG
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"adapters: cannot read {path}: {exc}") from exc
        if config.get("format") not in READS_FORMATS:
            raise ConfigError(f"adapters: {path} has format {config.get('format')}, this code reads {READS_FORMATS}")
        specs = [AdapterSpec(**a) for a in config["adapters"]]
        tensors = load_file(str(directory / ADAPTERS_WEIGHTS), device=map_location)
        try:
            embeddings = torch.stack([tensors[f"embedding.{s.name}"] for s in specs])
        except KeyError as exc:
            raise ConfigError(f"adapters: {directory / ADAPTERS_WEIGHTS} lacks {exc}") from exc
        int8 = config.get("deltas", "float") == INT8
        deltas = []
        for s in specs:
            prefix = f"delta.{s.name}."
            delta = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if int8:
                try:
                    delta = {k: dequantize_int8(v, tensors[f"scale.{s.name}.{k}"]) for k, v in delta.items()}
                except KeyError as exc:
                    raise ConfigError(f"adapters: {directory / ADAPTERS_WEIGHTS} lacks the int8 scale {exc}") from exc
            deltas.append(delta)
        return cls(PALDM.from_pretrained(_base_folder(directory, config), map_location), specs, embeddings, deltas,
                   config.get("temperature", 0.05)).eval()


def _base_folder(directory: Path, config: dict) -> Path:
    """The folder holding the base PALDM: the adapters' own, or the linked one, checked by its weights' hash."""
    from ivfusion.engines.cache import file_sha256

    if "base" not in config:
        return directory
    base = (directory / config["base"]).resolve()
    weights = base / WEIGHTS_NAME
    if not weights.exists():
        raise ConfigError(f"adapters: {directory} is a set of deltas over the PALDM in {config['base']!r} "
                          f"(relative to it), and {base} holds no {WEIGHTS_NAME}; keep the two folders together")
    if file_sha256(weights) != config.get("base_sha256"):
        raise ConfigError(f"adapters: {weights} is not the PALDM {directory}'s deltas were made "
                          f"from (SHA-256 differs from {ADAPTERS_CONFIG}'s base_sha256)")
    return base


def quantize_int8(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scale per output row): symmetric absmax over each row, so small rows keep precision."""
    rows = value.detach().float().reshape(value.shape[0] if value.dim() > 1 else 1, -1)
    scale = rows.abs().amax(dim=1).clamp_min(1e-30) / 127
    q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(value.shape).contiguous(), scale.contiguous()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    rows = q.float().reshape(scale.shape[0], -1) * scale[:, None].float()
    return rows.reshape(q.shape)


def load_teacher(directory: str | Path, map_location: str = "cpu") -> PALDM | PreferenceAdapters:
    """A teacher folder as its model: :class:`PreferenceAdapters` where it holds ``adapters.json``, else a PALDM."""
    if (Path(directory) / ADAPTERS_CONFIG).exists():
        return PreferenceAdapters.from_pretrained(directory, map_location)
    return PALDM.from_pretrained(directory, map_location)
