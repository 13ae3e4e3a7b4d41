"""Student -> ONNX (``torch_to_onnx``), the export check against PyTorch, and the ONNX Runtime runner.

The graph takes ``thermal`` (N,1,H,W), ``visible`` (N,3,H,W, RGB) as float32 in [0,1] and ``preference``
(N,384) float32 (all-MiniLM-L6-v2 unit vector), with dynamic N, H, W; it returns ``fused`` (N,3,H,W, RGB in
[0,1]) and ``degradation`` (N,8) probabilities of the auto head. Opset 17 (Resize, AveragePool, elementwise:
no GridSample needed because slicing is written out). Exported with the TorchScript-based exporter
(``dynamo=False``), which needs no extra package. The file describes itself in ``metadata_props`` (model
name, format version, input-size policy, channel order, normalisation, preference encoder, the student's
config), and :class:`OnnxStudent` checks them on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ivfusion.errors import ConfigError

OPSET = 17
ONNX_FORMAT_VERSION = "1"
INPUT_NAMES = ("thermal", "visible", "preference")
OUTPUT_NAMES = ("fused", "degradation")


def _wrapper(model):
    import torch

    class _Export(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, thermal, visible, preference):
            out = self.net(thermal, visible, preference)
            return out.rgb, torch.sigmoid(out.degradation_logits)

    return _Export(model).eval()


def metadata(model) -> dict[str, str]:
    from ivfusion import __version__ as pkg_version
    from ivfusion.models.student import DEGRADATIONS

    return {
        "ivfusion.model": "student",
        "ivfusion.format_version": ONNX_FORMAT_VERSION,
        "ivfusion.package_version": str(pkg_version),
        "ivfusion.opset": str(OPSET),
        "ivfusion.input_size_policy": "any H x W >= 1, dynamic N/H/W; thermal registered to visible; output at input size",
        "ivfusion.channel_order": "thermal: 1 channel; visible: RGB (not BGR); fused: RGB",
        "ivfusion.normalisation": "float32 = uint8 / 255 (0..1), no mean/std; output 0..1 (multiply by 255)",
        "ivfusion.preference": "384-d L2-normalised all-MiniLM-L6-v2 embedding (presets: presets.safetensors)",
        "ivfusion.degradation_labels": ",".join(DEGRADATIONS),
        "ivfusion.config": json.dumps(model.config, sort_keys=True),
    }


def torch_to_onnx(model, path: str | Path, *, sample_size: tuple[int, int] = (96, 128)) -> Path:
    """Export ``model`` (a StudentFusionNet) to ``path`` with dynamic N/H/W and self-describing metadata."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    h, w = sample_size
    g = torch.Generator().manual_seed(0)
    args = (torch.rand(1, 1, h, w, generator=g), torch.rand(1, 3, h, w, generator=g),
            torch.nn.functional.normalize(torch.randn(1, model.config["text_dim"], generator=g), dim=1))
    dyn = {"thermal": {0: "N", 2: "H", 3: "W"}, "visible": {0: "N", 2: "H", 3: "W"}, "preference": {0: "N"},
           "fused": {0: "N", 2: "H", 3: "W"}, "degradation": {0: "N"}}
    with torch.no_grad():
        torch.onnx.export(_wrapper(model), args, str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(path))
    for k, v in metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "ivfusion"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def check_against_torch(model, path: str | Path, sizes=((77, 101), (128, 160)), seed: int = 1) -> float:
    """Max abs difference of the ONNX Runtime output from PyTorch over random inputs at ``sizes``."""
    import torch

    runner = OnnxStudent(path)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        t, v = torch.rand(1, 1, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
        e = torch.nn.functional.normalize(torch.randn(1, model.config["text_dim"], generator=g), dim=1)
        with torch.no_grad():
            ref = model.eval()(t, v, e)
        fused, deg = runner.run(t.numpy(), v.numpy(), e.numpy())
        worst = max(worst, float(np.abs(fused - ref.rgb.numpy()).max()),
                    float(np.abs(deg - torch.sigmoid(ref.degradation_logits).numpy()).max()))
    return worst


class OnnxStudent:
    """ONNX Runtime session of an exported student; checks the file's metadata on load."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"student ONNX file {self.path} does not exist (ivfusion export student)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # In the node the detector runs right after fusion on the same cores: ORT's default spin-waiting
        # threads would keep burning them between calls and starve it (measured: 8 of 12 demo frames dropped).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("ivfusion.model") != "student":
            raise ConfigError(f"{self.path}: not an ivfusion student export (metadata ivfusion.model = "
                              f"{meta.get('ivfusion.model')!r})")
        if meta.get("ivfusion.format_version") != ONNX_FORMAT_VERSION:
            raise ConfigError(f"{self.path}: format version {meta.get('ivfusion.format_version')!r}, this code reads "
                              f"{ONNX_FORMAT_VERSION!r}; re-export with `ivfusion export student`")
        self.metadata = dict(meta)
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUT_NAMES:
            raise ConfigError(f"{self.path}: inputs {names}, expected {INPUT_NAMES}")

    def run(self, thermal: np.ndarray, visible: np.ndarray, preference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"thermal": np.ascontiguousarray(thermal, np.float32), "visible": np.ascontiguousarray(visible, np.float32),
                 "preference": np.ascontiguousarray(preference, np.float32)}
        fused, deg = self.session.run(list(OUTPUT_NAMES), feeds)
        return fused, deg
