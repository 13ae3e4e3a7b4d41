"""ONNX export of a tiny student matches PyTorch, runs in ONNX Runtime, describes itself, and backs the backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivfusion.errors import ConfigError
from ivfusion.fusion.preference import parse_preference

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.unit.test_student import tiny

    from ivfusion.export.onnx import torch_to_onnx

    d = tmp_path_factory.mktemp("student")
    model = tiny(11)
    model.save_pretrained(d)
    torch_to_onnx(model, d / "student.onnx")
    return model, d


def test_onnx_matches_torch(exported):
    from ivfusion.export.onnx import OPSET, OnnxStudent, check_against_torch

    model, d = exported
    proto = onnx.load(str(d / "student.onnx"))
    onnx.checker.check_model(proto)
    assert any(o.domain in ("", "ai.onnx") and o.version == OPSET for o in proto.opset_import)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["ivfusion.model"] == "student" and "RGB" in meta["ivfusion.channel_order"]
    assert "255" in meta["ivfusion.normalisation"] and "dynamic" in meta["ivfusion.input_size_policy"]
    assert check_against_torch(model, d / "student.onnx", sizes=((33, 45), (64, 80))) < 1e-4
    fused, deg = OnnxStudent(d / "student.onnx").run(np.random.rand(2, 1, 19, 23), np.random.rand(2, 3, 19, 23),
                                                     np.random.rand(2, 384))
    assert fused.shape == (2, 3, 19, 23) and deg.shape == (2, 8)


def test_onnxruntime_backend_matches_torch_backend_and_follows_preference(exported):
    from ivfusion.fusion.student import StudentFusion

    _, d = exported
    ort, pt = StudentFusion(d), StudentFusion(d, runtime="torch")
    assert ort.runtime == "onnxruntime"
    rng = np.random.default_rng(0)
    t = rng.integers(0, 256, (30, 44), dtype=np.uint8)
    v = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)
    a = ort.fuse(t, v, parse_preference("detection"))
    b = pt.fuse(t, v, parse_preference("detection"))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    c = ort.fuse(t, v, parse_preference("visual"))
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5


def test_foreign_onnx_is_rejected(tmp_path):
    from ivfusion.export.onnx import OnnxStudent

    class Id(torch.nn.Module):
        def forward(self, x):
            return x * 1.0

    path = tmp_path / "other.onnx"
    torch.onnx.export(Id(), (torch.rand(1, 2),), str(path), opset_version=17, dynamo=False)
    with pytest.raises(ConfigError, match="not an ivfusion student"):
        OnnxStudent(path)
