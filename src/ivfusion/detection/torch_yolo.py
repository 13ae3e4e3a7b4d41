"""A differentiable PyTorch copy of the shared detector, rebuilt from its OpenVINO INT8 IR without any pickle.

Why: the `detection` preference is "what the downstream detector finds", and the only detector in this
workplace is an OpenVINO INT8 export, which cannot pass gradients. Its weights are all in the IR, though: each
convolution reads ``int8 constant -> Convert -> Multiply(per-channel scale)`` and adds a bias constant (batch
norm was folded in at export), and the node names keep the PyTorch module paths (``__module.model.4.m.1.cv2
.conv``). So an Ultralytics ``DetectionModel`` built from its YAML (offline, no download), fused the same way
the exporter fused it, takes the dequantised weights one for one. The INT8 quantisation of activations (the
IR's 67 per-tensor FakeQuantize nodes) is reproduced on request (``quantize_activations=True``) by hooks that
round each quantised tensor onto the same 256-level grid, with a straight-through gradient
(:func:`activation_quantizers`); without them the copy is a float proxy. :func:`parity` measures how far apart
either variant and the IR are.

The converted weights are the third party's weights in another format, so they are never written into the
repository: :func:`load_torch_yolo` builds the model from the shared IR each time (about a second).
:func:`save_torch_copy` writes them, with the activation quantisers and class names, into one safetensors file
for a training machine without OpenVINO (the GPU half of a run; scripts/teacher_gpu_bundle.py puts it in an
ignored bundle folder); :func:`load_torch_yolo` reads such a file, or an export folder holding only it, in place
of the IR.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivfusion.errors import DetectorError

_CONV_NAME = re.compile(r"^__module\.(model\.[\w.]+?)(?:\.conv)?/aten::_convolution/Convolution$")


def _const(node) -> np.ndarray:
    """Evaluate the constant sub-graph feeding a weight input (Constant / Convert / Multiply / Subtract)."""
    kind = node.get_type_name()
    if kind == "Constant":
        return np.asarray(node.get_data())
    args = [_const(i.get_source_output().get_node()) for i in node.inputs()]
    if kind == "Convert":
        return args[0].astype(np.float32)
    if kind == "Multiply":
        return args[0] * args[1]
    if kind == "Subtract":
        return args[0] - args[1]
    if kind == "Reshape":
        return args[0].reshape(args[1].astype(np.int64))
    raise DetectorError(f"unexpected {kind} node {node.get_friendly_name()!r} in a weight path")


def ir_xml(path: str | Path) -> Path:
    """The IR's ``.xml``, given the export folder (as Ultralytics writes it) or the file itself."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.xml"))
    if not found:
        raise DetectorError(f"{path}: no OpenVINO .xml in the folder")
    return found[0]


TORCH_COPY = "torch_copy.safetensors"  # the name save_torch_copy's file has inside an export folder
_COPY_FORMAT = "ivfusion-torch-yolo/1"


def _torch_copy_file(path: Path) -> Path | None:
    """The torch copy that stands in for the IR at ``path``: the file itself, or an export folder's copy when the
    folder has no ``.xml`` (a bundle made for a machine without OpenVINO)."""
    if path.suffix == ".safetensors":
        return path
    if path.is_dir() and not any(path.glob("*.xml")) and (path / TORCH_COPY).exists():
        return path / TORCH_COPY
    return None


def save_torch_copy(weights: str | Path, out: str | Path) -> Path:
    """The IR's dequantised convolutions, activation quantisers and class names in one safetensors file ``out``
    (metadata as JSON, so reading it runs no code). Third-party weights: keep the file out of the repository."""
    from safetensors.torch import save_file

    xml, ir = _read_ir(weights)
    state = _conv_weights(xml, ir)
    nc = int(state["model.22.cv3.0.2.weight"].shape[0])
    metadata = {"format": _COPY_FORMAT, "names": json.dumps(class_names(weights, nc)),
                "quant_sites": json.dumps([asdict(s) for s in _quant_sites(xml, ir)])}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata=metadata)
    return out


def _copy_metadata(file: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not file.exists():
        raise DetectorError(f"{file}: no such detector copy")
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != _COPY_FORMAT:
        raise DetectorError(f"{file}: not a detector copy written by save_torch_copy (format "
                            f"{meta.get('format')!r}, expected {_COPY_FORMAT!r})")
    return meta


def _copy_names(meta: dict[str, str]) -> dict[int, str]:
    return {int(k): str(v) for k, v in json.loads(meta["names"]).items()}


def _read_torch_copy(file: Path) -> tuple[dict[str, torch.Tensor], list[QuantSite], dict[int, str]]:
    from safetensors.torch import load_file

    meta = _copy_metadata(file)
    sites = [QuantSite(**s) for s in json.loads(meta["quant_sites"])]
    return load_file(str(file)), sites, _copy_names(meta)


def _read_ir(weights: str | Path) -> tuple[Path, Any]:
    """(the .xml, the parsed OpenVINO model): parsed once for both the weights and the quantisation sites."""
    import openvino as ov

    xml = ir_xml(weights)
    return xml, ov.Core().read_model(str(xml))


def openvino_conv_weights(xml: str | Path) -> dict[str, torch.Tensor]:
    """``{"model.4.m.1.cv2.conv.weight": ..., ".bias": ...}`` for every convolution in the IR, dequantised."""
    return _conv_weights(*_read_ir(xml))


def _conv_weights(xml: Path, model: Any) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        m = _CONV_NAME.match(op.get_friendly_name())
        if m is None:
            raise DetectorError(f"{xml}: convolution {op.get_friendly_name()!r} has no module path")
        name = m.group(1) + (".conv" if ".conv/" in op.get_friendly_name() else "")
        out[f"{name}.weight"] = torch.from_numpy(_const(op.input_value(1).get_node()).copy())
        adds = [t.get_node() for t in op.output(0).get_target_inputs() if t.get_node().get_type_name() == "Add"]
        if adds:
            bias = [i.get_source_output().get_node() for i in adds[0].inputs()
                    if i.get_source_output().get_node().get_type_name() == "Constant"]
            if bias:
                out[f"{name}.bias"] = torch.from_numpy(_const(bias[0]).reshape(-1).copy())
    if not out:
        raise DetectorError(f"{xml}: no convolutions found")
    return out


def load_torch_yolo(weights: str | Path, *, yaml: str = "yolov8n.yaml",
                    quantize_activations: bool = False) -> torch.nn.Module:
    """The OpenVINO detector at ``weights`` (folder or .xml) as a fused, frozen, eval-mode ``DetectionModel``.

    The model takes RGB in [0, 1], (B, 3, H, W) with H and W multiples of 32, and returns what Ultralytics'
    ``DetectionModel`` returns in eval mode: ``(decoded (B, 4 + nc, anchors), raw per-level maps)``.
    ``quantize_activations`` adds the IR's activation quantisation (straight-through gradients), so that
    training judges what the INT8 detector sees rather than its float ancestor.
    """
    from ultralytics.nn.tasks import DetectionModel

    weights = Path(weights)
    copy = _torch_copy_file(weights)
    if copy is not None:
        state, sites, names = _read_torch_copy(copy)
    else:
        xml, ir = _read_ir(weights)
        state = _conv_weights(xml, ir)
        sites, names = (_quant_sites(xml, ir) if quantize_activations else []), None
    nc = int(state["model.22.cv3.0.2.weight"].shape[0])
    model = DetectionModel(yaml, nc=nc, verbose=False)
    model.fuse(verbose=False)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.startswith("model.22.dfl")]
    wrong = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or wrong or set(state) - set(own):
        raise DetectorError(f"{weights}: the IR does not match {yaml}: missing {missing[:4]}, shape mismatch "
                            f"{wrong[:4]}, extra {sorted(set(state) - set(own))[:4]}")
    model.load_state_dict({**own, **{k: v for k, v in state.items() if not k.startswith("model.22.dfl")}})
    model.names = names or class_names(weights, nc)
    model.eval().requires_grad_(False)
    if quantize_activations:
        modules = dict(model.named_modules())
        for site in sites:
            if site.module not in modules:
                raise DetectorError(f"{weights}: FakeQuantize at {site.module!r} has no module in {yaml}")
            if site.on_input:
                modules[site.module].register_forward_pre_hook(lambda m, args, q=site: (q(args[0]), *args[1:]))
            else:
                modules[site.module].register_forward_hook(lambda m, args, out, q=site: q(out))
        model.quantized_sites = len(sites)
    return model


@dataclass(frozen=True)
class QuantSite:
    """One activation FakeQuantize of the IR, placed on the PyTorch module whose output (or input) it rounds."""

    module: str  # e.g. "model.4.m.0" (output of that Bottleneck's residual add)
    on_input: bool  # True: the module's input (the image, the DFL softmax); False: its output
    low: float
    high: float
    levels: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """OpenVINO's FakeQuantize (input range = output range, as in this IR) with a straight-through gradient:
        inside the range the rounding passes the gradient unchanged, outside it the clamp stops it."""
        step = (self.high - self.low) / (self.levels - 1)
        clamped = x.clamp(self.low, self.high)
        rounded = torch.round((clamped - self.low) / step) * step + self.low
        return clamped + (rounded - clamped).detach()


_MODULE = re.compile(r"^__module\.(model\.[\w.]+?)/")


def activation_quantizers(xml: str | Path) -> list[QuantSite]:
    """Every activation FakeQuantize of the IR, mapped onto Ultralytics module paths by the graph around it.

    The IR names its SiLU nodes after one shared module (Ultralytics reuses one ``SiLU`` instance), so a
    quantised activation is located through the convolution that feeds it; residual adds and upsamplings keep
    their own module paths; the image input and the DFL softmax quantise the input of ``model.0`` and of
    ``model.22.dfl.conv``.
    """
    return _quant_sites(*_read_ir(xml))


def _quant_sites(xml: Path, model: Any) -> list[QuantSite]:
    sites: list[QuantSite] = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        ranges = [float(np.asarray(op.input_value(i).get_node().get_data()).reshape(-1)[0]) for i in range(1, 5)]
        if ranges[:2] != ranges[2:]:
            raise DetectorError(f"{xml}: FakeQuantize {op.get_friendly_name()!r} rescales its output; not supported")
        module, on_input = _placement(op.input_value(0).get_node(), f"{xml}: FakeQuantize {op.get_friendly_name()!r}")
        sites.append(QuantSite(module, on_input, ranges[0], ranges[1], int(op.get_levels())))
    return sites


def _placement(src: Any, what: str) -> tuple[str, bool]:
    """(module path, whether the module's input rather than its output) for what a FakeQuantize rounds."""
    kind = src.get_type_name()
    if kind == "Parameter":
        return "model.0", True
    if kind == "Softmax":
        return "model.22.dfl.conv", True
    m = None
    if kind == "Swish":  # Swish <- Add(bias) <- Convolution "model.X.cv1.conv": the Conv block's output
        m = _CONV_NAME.match(src.input_value(0).get_node().input_value(0).get_node().get_friendly_name())
    elif kind in ("Add", "Interpolate"):  # the residual add of "model.4.m.0", the upsampling "model.10"
        m = _MODULE.match(src.get_friendly_name())
    if m is None:
        raise DetectorError(f"{what}: cannot be placed after a {kind} node")
    return m.group(1), False


def class_names(weights: str | Path, nc: int = 80) -> dict[int, str]:
    """Class names from the IR export's metadata.yaml (safe YAML), else the indices as strings."""
    import yaml as yaml_lib

    weights = Path(weights)
    copy = _torch_copy_file(weights)
    if copy is not None:
        return _copy_names(_copy_metadata(copy))
    # the export folder's metadata.yaml, even without the IR beside it (a machine given only the names)
    metadata = weights / "metadata.yaml" if weights.is_dir() else weights.parent / "metadata.yaml"
    names = (yaml_lib.safe_load(metadata.read_text()) or {}).get("names") if metadata.exists() else None
    return {int(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {i: str(i) for i in range(nc)}


@torch.no_grad()
def parity(model: torch.nn.Module, weights: str | Path, images_rgb: list[np.ndarray], imgsz: int = 640) -> list[float]:
    """Per image, max abs difference of the decoded class scores, PyTorch copy vs the OpenVINO IR (compiled once),
    on square-resized frames -- the cost of not quantising activations."""
    import cv2
    import openvino as ov

    compiled = ov.Core().compile_model(str(ir_xml(weights)), "CPU")
    out = []
    for image_rgb in images_rgb:
        x = cv2.resize(image_rgb, (imgsz, imgsz), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x = x.transpose(2, 0, 1)[None]
        ref = compiled(x)[0]
        ours = model(torch.from_numpy(x))[0].numpy()
        out.append(float(np.abs(ref[:, 4:] - ours[:, 4:]).max()))
    return out
