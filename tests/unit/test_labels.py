"""Ground-truth label reading: YOLO txt, VOC XML, dataset label sets and the ir/vi union."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.data import GroundTruth, PairsFolder, read_voc_labels, read_yolo_labels
from ivfusion.data.labels import (
    find_label_file,
    merge_label_sets,
    read_class_names,
    write_voc_labels,
    write_yolo_labels,
)
from ivfusion.errors import IvfusionError

MSRS_CLASSES = {"person", "bicycle", "car"}


@pytest.fixture(scope="module")
def msrs(shared_root: Path) -> PairsFolder:
    root = shared_root / "datasets" / "msrs"
    if not (root / "labels").is_dir():
        pytest.skip(f"shared MSRS labels not found at {root}")
    return PairsFolder(root)


# ------------------------------------------------------------------------------------------ real MSRS


def test_msrs_label_sets_parse_into_the_image(msrs: PairsFolder) -> None:
    for which in ("ir", "vi", "fused", "union"):
        assert msrs.has_labels(which)
    total = 0
    for stem in msrs.stems[:6] + msrs.stems[-3:]:
        w, h = cv2.imread(str(msrs.paths(stem)[1])).shape[1::-1]
        for which in ("ir", "vi", "fused"):
            boxes = msrs.labels(stem, which)
            path = msrs.root / "labels" / which / f"{stem}.txt"
            n_lines = sum(1 for line in path.read_text().splitlines() if line.strip())
            assert boxes is not None and len(boxes) == n_lines
            for b in boxes:
                assert b.class_name in MSRS_CLASSES
                assert -0.5 <= b.x1 < b.x2 <= w + 0.5 and -0.5 <= b.y1 < b.y2 <= h + 0.5, (stem, which, b)
            total += len(boxes)
    assert total > 20


def test_msrs_first_box_is_scaled_to_pixels(msrs: PairsFolder) -> None:
    # labels/vi/00001D.txt line 1: "0 0.360938 0.566667 0.175000 0.575000" on a 640x480 image.
    first = msrs.labels("00001D", "vi")[0]
    assert first.class_name == "person"
    np.testing.assert_allclose(
        [first.x1, first.y1, first.x2, first.y2],
        [(0.360938 - 0.0875) * 640, (0.566667 - 0.2875) * 480, (0.360938 + 0.0875) * 640, (0.566667 + 0.2875) * 480],
        atol=1e-6,
    )


def test_msrs_empty_label_file_means_no_objects(msrs: PairsFolder) -> None:
    path = msrs.root / "labels" / "vi" / "00858N.txt"
    if not path.exists() or path.read_text().strip():
        pytest.skip("the empty label file this test relies on is not there")
    assert msrs.labels("00858N", "vi") == []


def test_msrs_union_is_ir_plus_new_vi_boxes(msrs: PairsFolder) -> None:
    for stem in msrs.stems[:8]:
        ir, vi, union = msrs.labels(stem, "ir"), msrs.labels(stem, "vi"), msrs.labels(stem, "union")
        assert union[: len(ir)] == ir
        assert max(len(ir), len(vi)) <= len(union) <= len(ir) + len(vi)
        assert all(b in vi for b in union[len(ir) :])


def test_unknown_stem_and_label_set_are_errors(msrs: PairsFolder) -> None:
    with pytest.raises(IvfusionError, match="nope"):
        msrs.labels("nope", "vi")
    with pytest.raises(IvfusionError, match="label set"):
        msrs.labels(msrs.stems[0], "thermal")


# ------------------------------------------------------------------------------------------ YOLO txt


def test_yolo_round_trip_and_blank_lines(tmp_path: Path) -> None:
    names = ["person", "bicycle", "car"]
    boxes = [GroundTruth("car", 10, 20, 110, 70), GroundTruth("person", 300, 5, 340, 95)]
    path = tmp_path / "a.txt"
    write_yolo_labels(path, boxes, (640, 480), names)
    path.write_text("\n# a comment\n" + path.read_text() + "   \n")
    back = read_yolo_labels(path, (640, 480), names)
    assert [b.class_name for b in back] == ["car", "person"]
    coords = [[b.x1, b.y1, b.x2, b.y2] for b in back]
    np.testing.assert_allclose(coords, [[10, 20, 110, 70], [300, 5, 340, 95]], atol=1e-3)


def test_yolo_empty_and_missing_files_have_no_objects(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    assert read_yolo_labels(tmp_path / "empty.txt", (10, 10), ["a"]) == []
    assert read_yolo_labels(tmp_path / "missing.txt", (10, 10), ["a"]) == []


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("0 0.5 0.5 0.1", "5 fields"),
        ("0 0.5 0.5 0.1 0.1 0.9", "5 fields"),
        ("0 0.5 half 0.1 0.1", "non-numeric"),
        ("3 0.5 0.5 0.1 0.1", "class id"),
        ("1.5 0.5 0.5 0.1 0.1", "class id"),
        ("-1 0.5 0.5 0.1 0.1", "class id"),
        ("0 0.5 0.5 -0.1 0.1", "negative"),
        ("0 nan 0.5 0.1 0.1", "non-finite"),
    ],
)
def test_malformed_yolo_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "frame_0007.txt"
    path.write_text(f"0 0.5 0.5 0.2 0.2\n\n{bad_line}\n2 0.1 0.1 0.1 0.1\n")
    with pytest.raises(IvfusionError, match=message) as info:
        read_yolo_labels(path, (640, 480), ["person", "bicycle", "car"])
    assert f"{path}:3" in str(info.value)


def test_class_names_files(tmp_path: Path) -> None:
    (tmp_path / "indexed.txt").write_text("1 bicycle\n0 person\n\n2 traffic light\n")
    assert read_class_names(tmp_path / "indexed.txt") == ["person", "bicycle", "traffic light"]
    (tmp_path / "plain.txt").write_text("person\nbicycle\ncar\n")
    assert read_class_names(tmp_path / "plain.txt") == ["person", "bicycle", "car"]
    (tmp_path / "gap.txt").write_text("0 person\n2 car\n")
    with pytest.raises(IvfusionError, match="0..1"):
        read_class_names(tmp_path / "gap.txt")


# ------------------------------------------------------------------------------------------- VOC XML


def test_voc_round_trip_keeps_difficult(tmp_path: Path) -> None:
    boxes = [
        GroundTruth("person", 12.5, 30.0, 50.25, 120.0),
        GroundTruth("car", 100.0, 80.0, 260.0, 190.0, difficult=True),
    ]
    path = tmp_path / "frame.xml"
    write_voc_labels(path, boxes, (640, 480), filename="frame.png")
    assert "<difficult>1</difficult>" in path.read_text()
    assert read_voc_labels(path) == boxes


def test_voc_without_difficult_and_bad_box(tmp_path: Path) -> None:
    path = tmp_path / "hand.xml"
    path.write_text(
        "<annotation><object><name>car</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>"
    )
    assert read_voc_labels(path) == [GroundTruth("car", 1, 2, 30, 40, False)]
    path.write_text("<annotation><object><name>car</name><bndbox><xmin>1</xmin></bndbox></object></annotation>")
    with pytest.raises(IvfusionError, match="ymin"):
        read_voc_labels(path)
    path.write_text("<annotation><object>")
    with pytest.raises(IvfusionError, match="hand.xml"):
        read_voc_labels(path)


# ----------------------------------------------------------------------------------- dataset layouts


def _pairs(root: Path, stems: list[str], size: tuple[int, int] = (200, 100)) -> None:
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
        for stem in stems:
            cv2.imwrite(str(root / sub / f"{stem}.png"), np.zeros((size[1], size[0], 3), np.uint8))


def test_per_set_yolo_and_voc_and_missing_sets(tmp_path: Path) -> None:
    _pairs(tmp_path, ["a", "b", "c"])
    (tmp_path / "classes.txt").write_text("0 person\n1 car\n")
    (tmp_path / "labels" / "vi").mkdir(parents=True)
    (tmp_path / "labels" / "vi" / "a.txt").write_text("1 0.5 0.5 0.5 0.2\n")  # 200x100 image
    write_voc_labels(tmp_path / "labels" / "vi" / "b.xml", [GroundTruth("person", 1, 2, 3, 4)], (200, 100))
    pairs = PairsFolder(tmp_path)
    assert pairs.labels("a", "vi") == [GroundTruth("car", 50.0, 40.0, 150.0, 60.0)]
    assert pairs.labels("b", "vi") == [GroundTruth("person", 1, 2, 3, 4)]
    assert pairs.labels("c", "vi") == []  # the set exists, the stem has no file: no objects
    assert find_label_file(tmp_path, "c", "vi") is None
    assert pairs.has_labels("vi") and not pairs.has_labels("ir") and not pairs.has_labels("fused")
    assert pairs.labels("a", "ir") is None and pairs.labels("a", "fused") is None
    assert pairs.labels("a", "union") == pairs.labels("a", "vi")  # only one of the two sets exists


def test_flat_single_set_layout_serves_every_band(tmp_path: Path) -> None:
    _pairs(tmp_path, ["a"], size=(100, 100))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "classes.txt").write_text("person\n")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    pairs = PairsFolder(tmp_path)
    expected = [GroundTruth("person", 40.0, 40.0, 60.0, 60.0)]
    for which in ("ir", "vi", "fused", "union"):
        assert pairs.has_labels(which)
        assert pairs.labels("a", which) == expected


def test_yolo_labels_without_classes_file_are_an_error(tmp_path: Path) -> None:
    _pairs(tmp_path, ["a"])
    (tmp_path / "labels" / "ir").mkdir(parents=True)
    (tmp_path / "labels" / "ir" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(IvfusionError, match="classes.txt"):
        PairsFolder(tmp_path).labels("a", "ir")


def test_no_labels_folder_at_all(tmp_path: Path) -> None:
    _pairs(tmp_path, ["a"])
    pairs = PairsFolder(tmp_path)
    assert not any(pairs.has_labels(w) for w in ("ir", "vi", "fused", "union"))
    assert pairs.labels("a", "union") is None


# --------------------------------------------------------------------------------------------- union


def test_union_deduplicates_same_class_overlaps_one_to_one() -> None:
    ir = [
        GroundTruth("person", 0, 0, 10, 20),
        GroundTruth("person", 100, 0, 110, 20),
        GroundTruth("person", 102, 0, 112, 20),  # overlaps the previous one (IoU 0.67): both stay
    ]
    vi = [
        GroundTruth("person", 1, 0, 11, 20),  # IoU 9/11 = 0.82 with ir[0]: duplicate, dropped
        GroundTruth("person", 0, 3, 10, 23),  # IoU 170/230 = 0.74 with ir[0], which vi[0] took: kept
        GroundTruth("car", 0, 0, 10, 20),  # same box, other class: kept
        GroundTruth("person", 101, 0, 111, 20),  # IoU 0.82 with both ir[1] and ir[2]: dropped once
        GroundTruth("person", 200, 0, 210, 20),  # only in vi (e.g. a person invisible in thermal): kept
        GroundTruth("person", 0, 0, 10, 10),  # IoU exactly 0.5 with ir[0], which is taken: kept
    ]
    merged = merge_label_sets(ir, vi)
    assert merged[:3] == ir
    assert merged[3:] == [vi[1], vi[4], vi[5], vi[2]]  # secondary order, grouped by class
    # At exactly IoU 0.5 a duplicate counts (>= 0.5); just below it does not.
    assert merge_label_sets([GroundTruth("car", 0, 0, 10, 10)], [GroundTruth("car", 0, 0, 10, 5)]) == [
        GroundTruth("car", 0, 0, 10, 10)
    ]
    assert len(merge_label_sets([GroundTruth("car", 0, 0, 10, 10)], [GroundTruth("car", 0, 0, 10, 4.9)])) == 2


def test_union_keeps_a_box_difficult_only_if_both_were() -> None:
    ir = [GroundTruth("person", 0, 0, 10, 20, difficult=True), GroundTruth("car", 50, 50, 90, 80, difficult=True)]
    vi = [GroundTruth("person", 0, 0, 10, 19), GroundTruth("car", 50, 50, 90, 81, difficult=True)]
    assert merge_label_sets(ir, vi) == [GroundTruth("person", 0, 0, 10, 20), ir[1]]
