"""A differentiable PyTorch copy of the shared detector, rebuilt from its OpenVINO INT8 IR without any pickle.

Why: the `detection` preference is "what the downstream detector finds", and the only detector in this
workplace is an OpenVINO INT8 export, which cannot pass gradients. Its weights are all in the IR, though: each
convolution reads ``int8 constant -> Convert -> Multiply(per-channel scale)`` and adds a bias constant (batch
norm was folded in at export), and the node names keep the PyTorch module paths (``__module.model.4.m.1.cv2
.conv``). So an Ultralytics ``DetectionModel`` built from its YAML (offline, no download), fused the same way
the exporter fused it, takes the dequantised weights one for one. What is *not* reproduced is the INT8
quantisation of activations (FakeQuantize nodes); :func:`parity` measures how far that leaves the two apart.

The converted weights are the third party's weights in another format, so they are never written into the
repository: :func:`load_torch_yolo` builds the model from the shared IR each time (about a second).
"""

from __future__ import annotations

import re
from pathlib import Path

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


def openvino_conv_weights(xml: str | Path) -> dict[str, torch.Tensor]:
    """``{"model.4.m.1.cv2.conv.weight": ..., ".bias": ...}`` for every convolution in the IR, dequantised."""
    import openvino as ov

    xml = ir_xml(xml)
    model = ov.Core().read_model(str(xml))
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


def load_torch_yolo(weights: str | Path, *, yaml: str = "yolov8n.yaml") -> torch.nn.Module:
    """The OpenVINO detector at ``weights`` (folder or .xml) as a fused, frozen, eval-mode ``DetectionModel``.

    The model takes RGB in [0, 1], (B, 3, H, W) with H and W multiples of 32, and returns what Ultralytics'
    ``DetectionModel`` returns in eval mode: ``(decoded (B, 4 + nc, anchors), raw per-level maps)``.
    """
    from ultralytics.nn.tasks import DetectionModel

    weights = Path(weights)
    state = openvino_conv_weights(weights)
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
    model.names = class_names(weights, nc)
    model.eval().requires_grad_(False)
    return model


def class_names(weights: str | Path, nc: int = 80) -> dict[int, str]:
    """Class names from the IR export's metadata.yaml (safe YAML), else the indices as strings."""
    import yaml as yaml_lib

    metadata = ir_xml(Path(weights)).parent / "metadata.yaml"
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
