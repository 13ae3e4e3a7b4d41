"""Student -> ONNX (``torch_to_onnx``), the export check against PyTorch, and the ONNX Runtime runner.

The graph takes ``thermal`` (N,1,H,W), ``visible`` (N,3,H,W, RGB) as float32 in [0,1] and ``preference``
(N,384) float32 (all-MiniLM-L6-v2 unit vector), with dynamic N, H, W; it returns ``fused`` (N,3,H,W, RGB in
[0,1]) and ``degradation`` (N,8) probabilities of the auto head. Opset 17 (Resize, AveragePool, elementwise:
no GridSample needed because slicing is written out). Exported with the TorchScript-based exporter
(``dynamo=False``), which needs no extra package. The file describes itself in ``metadata_props`` (model
name, format version, input-size policy, channel order, normalisation, preference encoder, the student's
config), and :class:`OnnxStudent` checks them on load.

Variants (``ivfusion export student --static WxH --presets all``): a static export fixes N=1 and H x W; a
preset export folds that preset's conditioning into constants and drops the ``preference`` input. Both are
checked against PyTorch like the general file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from ivfusion.errors import ConfigError

OPSET = 17
ONNX_FORMAT_VERSION = "1"
INPUT_NAMES = ("thermal", "visible", "preference")
OUTPUT_NAMES = ("fused", "degradation")


def _wrapper(model, preset: str | None = None):
    """The export graph: (thermal, visible, preference) -> (fused, degradation), or without ``preference``.

    With ``preset`` the preset's embedding becomes a constant buffer, so the exporter's constant folding
    turns the whole text-conditioning MLP into constants: one input less for TensorRT/other consumers, and
    no embedding to ship beside the file.
    """
    import torch

    class _Export(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, thermal, visible, preference):
            out = self.net(thermal, visible, preference)
            return out.rgb, torch.sigmoid(out.degradation_logits)

    class _Constant(torch.nn.Module):
        """Stands in for the text MLP: its output for the preset, computed once here (folded by hand, not left
        to the exporter, whose constant folding does not reach through Gemm)."""

        def __init__(self, value) -> None:
            super().__init__()
            self.register_buffer("value", value.detach().clone())

        def forward(self, preference):
            return self.value

    class _ExportPreset(torch.nn.Module):
        def __init__(self, net, embedding) -> None:
            super().__init__()
            with torch.no_grad():
                cond = net.text_mlp(embedding.reshape(1, -1).float())
            self.net = copy.deepcopy(net)  # the caller's model keeps its text MLP
            self.net.text_mlp = _Constant(cond)  # (1, cond_dim) broadcasts over the batch

        def forward(self, thermal, visible):
            out = self.net(thermal, visible, thermal.new_zeros(1, 1))  # preference unused by _Constant
            return out.rgb, torch.sigmoid(out.degradation_logits)

    if preset is None:
        return _Export(model).eval()
    return _ExportPreset(model, model.preset(preset)).eval()


def metadata(model, *, static_size: tuple[int, int] | None = None, preset: str | None = None) -> dict[str, str]:
    from ivfusion import __version__ as pkg_version
    from ivfusion.models.student import DEGRADATIONS

    return {
        "ivfusion.model": "student",
        "ivfusion.format_version": ONNX_FORMAT_VERSION,
        "ivfusion.package_version": str(pkg_version),
        "ivfusion.opset": str(OPSET),
        "ivfusion.input_size_policy": (
            f"static N=1, H={static_size[0]}, W={static_size[1]}; thermal registered to visible" if static_size else
            "any H x W >= 1, dynamic N/H/W; thermal registered to visible; output at input size"),
        "ivfusion.static_size": f"{static_size[0]}x{static_size[1]}" if static_size else "",
        "ivfusion.preset": preset or "",
        "ivfusion.channel_order": "thermal: 1 channel; visible: RGB (not BGR); fused: RGB",
        "ivfusion.normalisation": "float32 = uint8 / 255 (0..1), no mean/std; output 0..1 (multiply by 255)",
        "ivfusion.preference": (f"constant: the {preset!r} preset embedding is folded into the graph" if preset else
                                "384-d L2-normalised all-MiniLM-L6-v2 embedding (presets: presets.safetensors)"),
        "ivfusion.degradation_labels": ",".join(DEGRADATIONS),
        "ivfusion.config": json.dumps(model.config, sort_keys=True),
    }


def torch_to_onnx(model, path: str | Path, *, sample_size: tuple[int, int] = (96, 128), static: bool = False,
                 preset: str | None = None) -> Path:
    """Export ``model`` (a StudentFusionNet) to ``path`` with self-describing metadata; onnx.checker runs on it.

    ``static``: fixed N=1 and H x W = ``sample_size`` (what a TensorRT engine without profiles, or an NPU,
    wants); otherwise N/H/W are dynamic. ``preset``: bake that preset's embedding in as a constant (the
    graph then has no ``preference`` input). Constant folding is on in both cases.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    h, w = sample_size
    g = torch.Generator().manual_seed(0)
    args: tuple = (torch.rand(1, 1, h, w, generator=g), torch.rand(1, 3, h, w, generator=g))
    inputs = INPUT_NAMES if preset is None else INPUT_NAMES[:2]
    if preset is None:
        args += (torch.nn.functional.normalize(torch.randn(1, model.config["text_dim"], generator=g), dim=1),)
    dyn = None
    if not static:
        dyn = {"thermal": {0: "N", 2: "H", 3: "W"}, "visible": {0: "N", 2: "H", 3: "W"},
               "fused": {0: "N", 2: "H", 3: "W"}, "degradation": {0: "N"}}
        if preset is None:
            dyn["preference"] = {0: "N"}
    with torch.no_grad():
        torch.onnx.export(_wrapper(model, preset), args, str(path), input_names=list(inputs),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dyn, opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)
    proto = onnx.load(str(path))
    for k, v in metadata(model, static_size=(h, w) if static else None, preset=preset).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "ivfusion"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def check_against_torch(model, path: str | Path, sizes=((77, 101), (128, 160)), seed: int = 1) -> float:
    """Max abs difference of the ONNX Runtime output from PyTorch over random inputs at ``sizes``.

    Reads the file's own metadata: a static export is checked at its size, a preset export with its preset.
    """
    import torch

    runner = OnnxStudent(path)
    if runner.static_size is not None:
        sizes = (runner.static_size,)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        t, v = torch.rand(1, 1, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
        e = torch.nn.functional.normalize(torch.randn(1, model.config["text_dim"], generator=g), dim=1)
        if runner.preset is not None:
            e = model.preset(runner.preset)
        with torch.no_grad():
            ref = model.eval()(t, v, e)
        fused, deg = runner.run(t.numpy(), v.numpy(), e.numpy())
        worst = max(worst, float(np.abs(fused - ref.rgb.numpy()).max()),
                    float(np.abs(deg - torch.sigmoid(ref.degradation_logits).numpy()).max()))
    return worst


class OnnxStudent:
    """ONNX Runtime session of an exported student; checks the file's metadata on load.

    ``providers``: ONNX Runtime execution providers in order (``engines.ort.providers_for``); CPU by default.
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, providers: list | None = None) -> None:
        from ivfusion.engines.ort import make_session, session_device

        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"student ONNX file {self.path} does not exist (ivfusion export student)")
        self.session = make_session(self.path, threads=threads, providers=providers)
        self.device = session_device(self.session)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("ivfusion.model") != "student":
            raise ConfigError(f"{self.path}: not an ivfusion student export (metadata ivfusion.model = "
                              f"{meta.get('ivfusion.model')!r})")
        if meta.get("ivfusion.format_version") != ONNX_FORMAT_VERSION:
            raise ConfigError(f"{self.path}: format version {meta.get('ivfusion.format_version')!r}, this code reads "
                              f"{ONNX_FORMAT_VERSION!r}; re-export with `ivfusion export student`")
        self.metadata = dict(meta)
        self.preset: str | None = meta.get("ivfusion.preset") or None
        static = meta.get("ivfusion.static_size") or ""
        self.static_size: tuple[int, int] | None = tuple(map(int, static.split("x"))) if static else None  # type: ignore[assignment]
        expected = INPUT_NAMES[:2] if self.preset else INPUT_NAMES
        names = tuple(i.name for i in self.session.get_inputs())
        if names != expected:
            raise ConfigError(f"{self.path}: inputs {names}, expected {expected}")

    def run(self, thermal: np.ndarray, visible: np.ndarray,
            preference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``preference`` is ignored by a preset export (its embedding is a constant of the graph)."""
        if self.static_size is not None and tuple(thermal.shape[2:]) != self.static_size:
            raise ConfigError(f"{self.path} is a static {self.static_size[0]}x{self.static_size[1]} (HxW) export, "
                              f"got {thermal.shape[2]}x{thermal.shape[3]}; use the dynamic student.onnx")
        feeds = {"thermal": np.ascontiguousarray(thermal, np.float32), "visible": np.ascontiguousarray(visible, np.float32)}
        if self.preset is None:
            if preference is None:
                raise ConfigError(f"{self.path} takes the preference embedding as an input; none given")
            feeds["preference"] = np.ascontiguousarray(preference, np.float32)
        fused, deg = self.session.run(list(OUTPUT_NAMES), feeds)
        return fused, deg
