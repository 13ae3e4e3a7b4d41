"""One teacher for several preferences: a PALDM plus one weight delta per preference, chosen by the embedding.

Why: a single PCLDM trained on both preferences' pairs keeps neither single-preference run's gain (IDPO v9 blended
them; v13's ``visual`` loses SSIM however it is guided, docs/teacher.md sessions 18 and 19), while the runs trained
for one preference each do what that preference asks (v12v for ``visual``). Keeping each run's change as its own
delta from the PALDM (a task vector, Ilharco et al. 2023; the role LoRA adapters play in diffusers'
``set_adapters``) keeps the changes apart by construction, and the preference embedding still controls the model:
a preset's own embedding selects its delta, free text mixes the deltas by how close it is to each preset.

Each adapter also carries the classifier-free guidance its run was measured at (``PALDM.guided``), because that is
part of what was measured: v13 under ``detection`` is tested at guidance 3.

Files (``save_pretrained``): the PALDM's own folder files (``config.json``, ``model.safetensors``,
``scheduler_config.json``) plus ``adapters.json`` (names, guidance, routing temperature, sources) and
``adapters.safetensors`` (each preset's embedding and each parameter's delta). No pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ivfusion.errors import ConfigError
from ivfusion.teacher.paldm import PALDM

ADAPTERS_CONFIG = "adapters.json"
ADAPTERS_WEIGHTS = "adapters.safetensors"
ADAPTERS_FORMAT = 1


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

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """The base PALDM's folder plus ``adapters.json`` and ``adapters.safetensors`` (deltas in ``dtype``)."""
        from safetensors.torch import save_file

        self._load(self.routing(None))  # the base weights, not a mixture, go to model.safetensors
        directory = self.model.save_pretrained(directory, dtype=dtype)
        tensors = {f"embedding.{s.name}": e.contiguous() for s, e in zip(self.specs, self.embeddings.cpu())}
        for spec, delta in zip(self.specs, self._deltas):
            tensors |= {f"delta.{spec.name}.{k}": (v if dtype is None else v.to(dtype)).contiguous()
                        for k, v in delta.items()}
        save_file(tensors, str(Path(directory) / ADAPTERS_WEIGHTS))
        config = {"format": ADAPTERS_FORMAT, "temperature": self.temperature,
                  "adapters": [asdict(s) for s in self.specs]}
        (Path(directory) / ADAPTERS_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> PreferenceAdapters:
        from safetensors.torch import load_file

        directory = Path(directory)
        path = directory / ADAPTERS_CONFIG
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"adapters: cannot read {path}: {exc}") from exc
        if config.get("format") != ADAPTERS_FORMAT:
            raise ConfigError(f"adapters: {path} has format {config.get('format')}, this code reads {ADAPTERS_FORMAT}")
        specs = [AdapterSpec(**a) for a in config["adapters"]]
        tensors = load_file(str(directory / ADAPTERS_WEIGHTS), device=map_location)
        try:
            embeddings = torch.stack([tensors[f"embedding.{s.name}"] for s in specs])
        except KeyError as exc:
            raise ConfigError(f"adapters: {directory / ADAPTERS_WEIGHTS} lacks {exc}") from exc
        deltas = [{k[len(f"delta.{s.name}."):]: v for k, v in tensors.items() if k.startswith(f"delta.{s.name}.")}
                  for s in specs]
        return cls(PALDM.from_pretrained(directory, map_location), specs, embeddings, deltas,
                   config.get("temperature", 0.05)).eval()


def load_teacher(directory: str | Path, map_location: str = "cpu") -> PALDM | PreferenceAdapters:
    """A teacher folder as its model: :class:`PreferenceAdapters` where it holds ``adapters.json``, else a PALDM."""
    if (Path(directory) / ADAPTERS_CONFIG).exists():
        return PreferenceAdapters.from_pretrained(directory, map_location)
    return PALDM.from_pretrained(directory, map_location)
