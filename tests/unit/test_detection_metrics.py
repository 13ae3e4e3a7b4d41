"""COCO-style detection AP: hand-computed cases, and agreement with pycocotools on synthetic and real data."""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivfusion.data.labels import GroundTruth
from ivfusion.errors import IvfusionError
from ivfusion.metrics.detection import (
    DATASET_TO_COCO,
    LENIENT_VEHICLES,
    Prediction,
    box_iou,
    evaluate_detections,
    map_predictions,
)

G = GroundTruth
P = Prediction


def _eval(preds, gts, classes=("car",), **kw):
    return evaluate_detections(preds, gts, list(classes), **kw)


# ------------------------------------------------------------------------------------- hand-computed


def test_box_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [0, 0, 0, 0]])
    iou = box_iou(a, np.array([[0, 0, 10, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1, 0], [25 / 175, 0], [0, 0]])
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_perfect_predictions_score_one() -> None:
    gts = {
        "a": [G("car", 0, 0, 10, 10), G("person", 20, 20, 30, 40)],
        "b": [G("car", 5, 5, 50, 30), G("car", 60, 5, 90, 30)],
    }
    preds = {
        k: [P(g.class_name, g.x1, g.y1, g.x2, g.y2, 0.5 + 0.1 * i) for i, g in enumerate(v)] for k, v in gts.items()
    }
    s = _eval(preds, gts, ("person", "car"))
    assert s.map50 == pytest.approx(1.0) and s.map50_95 == pytest.approx(1.0)
    assert s.per_class["car"].n_gt == 3 and s.per_class["car"].n_pred == 3 and s.n_images == 2


def test_false_positive_ranked_above_the_true_positive() -> None:
    # One GT. Ranked predictions: FP (0.9), TP (0.8).
    #   rank 1: TP=0 FP=1 -> recall 0,  precision 0
    #   rank 2: TP=1 FP=1 -> recall 1,  precision 1/2
    # Monotone precision (max to the right): [1/2, 1/2]. Every recall point r in 0..1 is first reached at
    # rank 1 (r = 0) or rank 2, where the monotone precision is 1/2, so AP = 101 * (1/2) / 101 = 0.5
    # at every threshold (the TP is a perfect box).
    gts = {"a": [G("car", 0, 0, 10, 10)]}
    preds = {"a": [P("car", 50, 50, 60, 60, 0.9), P("car", 0, 0, 10, 10, 0.8)]}
    s = _eval(preds, gts)
    assert s.map50 == pytest.approx(0.5) and s.map50_95 == pytest.approx(0.5)


def test_false_positive_between_two_true_positives() -> None:
    # Two GTs. Ranked: TP (0.9), FP (0.8), TP (0.7).
    #   recall    [1/2, 1/2, 1  ]
    #   precision [1,   1/2, 2/3]  -> monotone [1, 2/3, 2/3]
    # Recall points 0.00..0.50 (51 of them) are reached at rank 1 -> precision 1;
    # points 0.51..1.00 (50) at rank 3 -> 2/3.  AP = (51 * 1 + 50 * 2/3) / 101 = 0.834983...
    gts = {"a": [G("car", 0, 0, 10, 10)], "b": [G("car", 0, 0, 10, 10)]}
    preds = {"a": [P("car", 0, 0, 10, 10, 0.9), P("car", 30, 30, 40, 40, 0.8)], "b": [P("car", 0, 0, 10, 10, 0.7)]}
    expected = (51 + 50 * 2 / 3) / 101
    s = _eval(preds, gts)
    assert s.map50 == pytest.approx(expected) and s.map50_95 == pytest.approx(expected)


def test_duplicate_prediction_on_one_gt_is_a_false_positive() -> None:
    # Ranked: TP (0.9), duplicate FP (0.8) -> precision [1, 1/2] monotone [1, 1/2]; recall reaches 1 at
    # rank 1, so every recall point reads precision 1: AP = 1. The duplicate *above* a miss shows up:
    # with a second GT found only at rank 3 (0.7): recall [1/2, 1/2, 1], precision [1, 1/2, 2/3] -> the
    # same numbers as the FP-between-TPs case above.
    gts = {"a": [G("car", 0, 0, 10, 10)]}
    dup = {"a": [P("car", 0, 0, 10, 10, 0.9), P("car", 0.5, 0, 10.5, 10, 0.8)]}
    assert _eval(dup, gts).map50 == pytest.approx(1.0)
    gts2 = {"a": [G("car", 0, 0, 10, 10), G("car", 100, 100, 110, 110)]}
    dup2 = {"a": dup["a"] + [P("car", 100, 100, 110, 110, 0.7)]}
    assert _eval(dup2, gts2).map50 == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_wrong_class_is_a_false_positive_and_no_match() -> None:
    gts = {"a": [G("car", 0, 0, 10, 10), G("person", 50, 0, 60, 30)]}
    # A perfect "person" box on the car: the car GT is missed (AP 0), the person class gets an FP ranked
    # above its TP (AP 0.5, as in the hand case above).
    preds = {"a": [P("person", 0, 0, 10, 10, 0.9), P("person", 50, 0, 60, 30, 0.8)]}
    s = _eval(preds, gts, ("car", "person"))
    assert s.per_class["car"].ap50 == 0.0 and s.per_class["person"].ap50 == pytest.approx(0.5)
    assert s.map50 == pytest.approx(0.25)
    assert s.per_class["person"].n_pred == 2 and s.per_class["car"].n_pred == 0


def test_box_at_iou_0_6_counts_up_to_threshold_0_6() -> None:
    # Prediction [0,0,10,6] on GT [0,0,10,10]: intersection 60, union 100, IoU exactly 0.6.
    # It is a TP at t = 0.50, 0.55, 0.60 and a miss at 0.65..0.95: mAP50 = 1, mAP50:95 = 3/10.
    gts = {"a": [G("car", 0, 0, 10, 10)]}
    preds = {"a": [P("car", 0, 0, 10, 6, 0.9)]}
    s = _eval(preds, gts)
    assert s.map50 == 1.0 and s.map50_95 == pytest.approx(0.3)
    # IoU 0.62 (inter 62): the same three thresholds; IoU 0.58: only 0.50 and 0.55.
    assert _eval({"a": [P("car", 0, 0, 10, 6.2, 0.9)]}, gts).map50_95 == pytest.approx(0.3)
    assert _eval({"a": [P("car", 0, 0, 10, 5.8, 0.9)]}, gts).map50_95 == pytest.approx(0.2)


def test_highest_iou_unmatched_gt_is_taken() -> None:
    # Two overlapping GTs; the top prediction overlaps A at 0.9 and B at 0.55. It must take A, leaving B
    # for the second prediction (IoU 1 with B). Taking "the first GT above threshold" would leave A
    # unmatched at t > 0.55 and make the second prediction an FP.
    a, b = G("car", 0, 0, 100, 100), G("car", 0, 0, 100, 60)
    pa = P("car", 0, 0, 100, 90, 0.9)  # IoU 0.9 with A, 60/90 = 0.667 with B
    pb = P("car", 0, 0, 100, 60, 0.8)  # IoU 1 with B, 0.6 with A
    s = _eval({"x": [pa, pb]}, {"x": [b, a]})
    assert s.map50 == pytest.approx(1.0)
    # t = .50 ... .90 (9 thresholds; pycocotools' 0.8999.. included): both TPs, AP 1.
    # t = .95: pa (IoU 0.9 / 0.667) is an FP ranked first, pb a TP, A is missed: recall [0, 1/2],
    # precision [0, 1/2] -> monotone [1/2, 1/2]; recall points 0..0.50 (51) read 1/2, the 50 above 0.
    # AP(.95) = 51 * 0.5 / 101, mAP50:95 = (9 + 25.5 / 101) / 10 = 0.92525.
    # ("First GT above threshold" would give pa B at t <= .65 and make pb an FP at t = .65.)
    assert s.map50_95 == pytest.approx((9 + 25.5 / 101) / 10)


def test_no_predictions_scores_zero_and_missing_images_count_as_empty() -> None:
    gts = {"a": [G("car", 0, 0, 10, 10)], "b": [G("car", 0, 0, 10, 10)]}
    s = _eval({}, gts)
    assert s.map50 == 0.0 and s.map50_95 == 0.0 and s.n_images == 2
    # Only image "a" predicted: recall tops out at 1/2; precision 1 up to there -> 51 points of 101.
    half = _eval({"a": [P("car", 0, 0, 10, 10, 0.9)]}, gts)
    assert half.map50 == pytest.approx(51 / 101)


def test_class_without_ground_truth_is_excluded() -> None:
    gts = {"a": [G("car", 0, 0, 10, 10)]}
    preds = {"a": [P("car", 0, 0, 10, 10, 0.9), P("bicycle", 50, 50, 60, 60, 0.95)]}
    s = _eval(preds, gts, ("car", "bicycle", "person"))
    assert s.map50 == 1.0 and s.map50_95 == 1.0
    assert math.isnan(s.per_class["bicycle"].ap50) and s.per_class["bicycle"].n_pred == 1
    assert s.per_class["bicycle"].n_gt == 0 and math.isnan(s.per_class["person"].ap50_95)
    assert math.isnan(_eval(preds, {"a": []}, ("car",)).map50)


def test_classes_outside_the_list_are_ignored_on_both_sides() -> None:
    gts = {"a": [G("car", 0, 0, 10, 10), G("dog", 50, 50, 60, 60)]}
    preds = {"a": [P("car", 0, 0, 10, 10, 0.5), P("truck", 0, 0, 10, 10, 0.9)]}
    s = _eval(preds, gts, ("car",))
    assert s.map50 == 1.0 and list(s.per_class) == ["car"]


def test_difficult_ground_truth_is_ignored() -> None:
    gts = {"a": [G("car", 0, 0, 10, 10), G("car", 50, 50, 60, 60, difficult=True)]}
    # A hit on the difficult box (ranked first) is neither TP nor FP; missing it costs nothing.
    s = _eval({"a": [P("car", 50, 50, 60, 60, 0.9), P("car", 0, 0, 10, 10, 0.8)]}, gts)
    assert s.map50 == 1.0 and s.per_class["car"].n_gt == 1
    assert _eval({"a": [P("car", 0, 0, 10, 10, 0.8)]}, gts).map50 == 1.0
    # A prediction that overlaps both prefers the normal box even when the difficult one fits better.
    gts2 = {"a": [G("car", 0, 0, 10, 10, difficult=True), G("car", 0, 0, 10, 8)]}
    assert _eval({"a": [P("car", 0, 0, 10, 9.5, 0.9)]}, gts2).map50 == 1.0


def test_max_dets_keeps_the_top_scores_per_image_and_class() -> None:
    gts = {"a": [G("car", 0, 0, 10, 10)]}
    fps = [P("car", 100 + 20 * i, 0, 110 + 20 * i, 10, 0.9) for i in range(3)]
    preds = {"a": fps + [P("car", 0, 0, 10, 10, 0.5)]}
    assert _eval(preds, gts, max_dets=3).map50 == 0.0
    assert _eval(preds, gts, max_dets=4).map50 == pytest.approx(0.25)  # TP at rank 4: precision 1/4


def test_predictions_for_unknown_images_are_an_error() -> None:
    with pytest.raises(IvfusionError, match="ghost"):
        _eval({"ghost": [P("car", 0, 0, 1, 1, 0.5)]}, {"a": []})


def test_detection_objects_and_class_mapping() -> None:
    from ivfusion.detection import Detection

    dets = [
        Detection(0, 0, 10, 10, 0.9, 2, "car"),
        Detection(20, 0, 30, 10, 0.8, 7, "truck"),
        Detection(40, 0, 50, 10, 0.7, 5, "bus"),
        Detection(60, 0, 70, 10, 0.6, 3, "motorcycle"),
        Detection(80, 0, 90, 10, 0.5, 0, "person"),
        Detection(90, 0, 99, 10, 0.4, 16, "dog"),
    ]
    strict = map_predictions(dets)
    assert [p.class_name for p in strict] == ["car", "person"]
    assert strict[0] == Prediction("car", 0, 0, 10, 10, 0.9)
    lenient = map_predictions(dets, LENIENT_VEHICLES)
    assert [p.class_name for p in lenient] == ["car", "car", "car", "bicycle", "person"]
    assert set(DATASET_TO_COCO.items()) <= set(LENIENT_VEHICLES.items())
    gts = {"a": [G("car", 20, 0, 30, 10)]}
    assert _eval({"a": strict}, gts).map50 == 0.0  # the truck box is not a car under the strict mapping
    assert _eval({"a": lenient}, gts).map50 == pytest.approx(0.5)  # car FP (0.9) above the truck TP (0.8)
    # Raw Detection objects are accepted directly (duck typing).
    assert _eval({"a": dets}, {"a": [G("car", 0, 0, 10, 10)]}).map50 == 1.0


# ------------------------------------------------------------------------------------------ pycocotools


def _coco_reference(
    preds: Mapping[str, Sequence], gts: Mapping[str, Sequence[GroundTruth]], classes: Sequence[str], max_dets: int = 100
) -> tuple[float, float, dict[str, float]]:
    """pycocotools' AP@0.5 and AP@[.5:.95] (area all, maxDets ``max_dets``) and per-class AP50."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = sorted(gts)
    img_id = {k: i + 1 for i, k in enumerate(images)}
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    anns = []
    for k in images:
        for g in gts[k]:
            if g.class_name in cat_id:
                w, h = g.x2 - g.x1, g.y2 - g.y1
                # A difficult box becomes COCO's "ignore" through an area outside the (all) range.
                area = -1.0 if g.difficult else w * h
                anns.append(
                    dict(id=len(anns) + 1, image_id=img_id[k], category_id=cat_id[g.class_name],
                         bbox=[g.x1, g.y1, w, h], area=area, iscrowd=0)
                )
    results = [
        dict(image_id=img_id[k], category_id=cat_id[p.class_name], bbox=[p.x1, p.y1, p.x2 - p.x1, p.y2 - p.y1],
             score=float(p.score))
        for k in images
        for p in preds.get(k, ())
        if p.class_name in cat_id
    ]
    assert results, "pycocotools cannot load an empty result list"
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dict(images=[dict(id=i) for i in img_id.values()], annotations=anns,
                            categories=[dict(id=i, name=c) for c, i in cat_id.items()])
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [max_dets]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K): area all, the one maxDets
    ap50 = {c: float(prec[0, :, k].mean()) for c, k in ((c, cat_id[c] - 1) for c in classes) if prec[0, 0, k] > -1}
    return float(prec[0][prec[0] > -1].mean()), float(prec[prec > -1].mean()), ap50


def _random_case(rng: np.random.Generator, n_images: int, classes: Sequence[str], difficult: bool = False):
    gts: dict[str, list[GroundTruth]] = {}
    preds: dict[str, list[Prediction]] = {}
    for i in range(n_images):
        key = f"img{i:03d}"
        boxes = []
        for _ in range(rng.integers(0, 9)):
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(8, 120, 2)
            boxes.append(G(str(rng.choice(classes)), x, y, x + w, y + h, bool(difficult and rng.random() < 0.15)))
        gts[key] = boxes
        out = []
        for g in boxes:
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
                jitter = rng.normal(0, 0.12, 4) * np.tile([g.x2 - g.x1, g.y2 - g.y1], 2)
                cls = g.class_name if rng.random() > 0.1 else str(rng.choice(classes))
                x1, y1 = g.x1 + jitter[0], g.y1 + jitter[1]
                out.append(P(cls, x1, y1, max(x1 + 1, g.x2 + jitter[2]), max(y1 + 1, g.y2 + jitter[3]), rng.random()))
        for _ in range(rng.integers(0, 6)):  # background false positives
            x, y = rng.uniform(0, 500, 2)
            out.append(P(str(rng.choice(classes)), x, y, x + rng.uniform(5, 80), y + rng.uniform(5, 80), rng.random()))
        if out or rng.random() < 0.7:  # some images have no prediction entry at all
            preds[key] = out
    return preds, gts


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_agrees_with_pycocotools_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = ["person", "bicycle", "car"]
    preds, gts = _random_case(rng, 12, classes, difficult=seed >= 3)
    # "truck" has predictions but no ground truth: excluded by both evaluators.
    preds.setdefault("img000", []).append(P("truck", 1, 1, 50, 50, 0.99))
    all_classes = classes + ["truck"]
    ours = evaluate_detections(preds, gts, all_classes)
    map50, map50_95, ap50 = _coco_reference(preds, gts, all_classes)
    assert 0.05 < ours.map50 < 0.99  # a non-trivial case
    assert ours.map50 == pytest.approx(map50, abs=1e-3)
    assert ours.map50_95 == pytest.approx(map50_95, abs=1e-3)
    assert {c for c, v in ours.per_class.items() if v.n_gt} == set(ap50)
    for c, v in ap50.items():
        assert ours.per_class[c].ap50 == pytest.approx(v, abs=1e-3)


def test_agrees_with_pycocotools_when_max_dets_cuts() -> None:
    rng = np.random.default_rng(11)
    preds, gts = _random_case(rng, 6, ["car"])
    ours = evaluate_detections(preds, gts, ["car"], max_dets=3)
    map50, map50_95, _ = _coco_reference(preds, gts, ["car"], max_dets=3)
    assert ours.map50 == pytest.approx(map50, abs=1e-3) and ours.map50_95 == pytest.approx(map50_95, abs=1e-3)
    assert ours.map50 != pytest.approx(evaluate_detections(preds, gts, ["car"]).map50, abs=1e-3)


@pytest.mark.detector
def test_agrees_with_pycocotools_on_the_shared_detector_over_msrs(shared_root: Path) -> None:
    root = shared_root / "datasets" / "msrs"
    weights = shared_root / "weights" / "yolov8n_int8_openvino_model"
    if not (root / "labels" / "vi").is_dir() or not weights.exists():
        pytest.skip(f"shared MSRS labels or detector weights not found under {shared_root}")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ivfusion.data import PairsFolder
    from ivfusion.detection import Detector, DetectorConfig

    pairs = PairsFolder(root)
    detector = Detector(DetectorConfig())
    stems = pairs.stems[:: max(1, len(pairs) // 10)][:10]
    gts = {s: pairs.labels(s, "vi") for s in stems}
    preds = {s: map_predictions(detector.detect(cv2.imread(str(pairs.paths(s)[1])))) for s in stems}
    classes = ["person", "bicycle", "car"]
    ours = evaluate_detections(preds, gts, classes)
    map50, map50_95, ap50 = _coco_reference(preds, gts, classes)
    assert ours.n_images == len(stems) and sum(c.n_pred for c in ours.per_class.values()) > 0
    assert ours.map50 > 0.1  # the COCO detector does find people and cars in daylight MSRS frames
    assert ours.map50 == pytest.approx(map50, abs=1e-3)
    assert ours.map50_95 == pytest.approx(map50_95, abs=1e-3)
    for c, v in ap50.items():
        assert ours.per_class[c].ap50 == pytest.approx(v, abs=1e-3)


def test_paired_bootstrap_sees_which_method_finds_more(tmp_path):
    from ivfusion.data.pairs import PairsFolder
    from ivfusion.detection.yolo import Detection
    from ivfusion.evaluation.bootstrap import paired_map_bootstrap
    from ivfusion.evaluation.runner import EvalResult, MethodResult

    from tests.unit.tiny_data import write_tiny_pairs

    folder = PairsFolder(write_tiny_pairs(tmp_path / "d", labels=True))  # one person per frame
    stems = ["s0", "s1", "s2"]
    hit = Detection(18.0, 12.0, 34.0, 28.0, 0.9, 0, "person")
    finds_all = MethodResult("all", "ours", stems=stems, detections={s: [hit] for s in stems})
    finds_one = MethodResult("one", "ours", stems=stems, detections={"s0": [hit], "s1": [], "s2": []})
    result = EvalResult("tiny", "all", 3, (), [finds_one, finds_all], ("fused",))
    (d,) = paired_map_bootstrap(result, folder, stems, a=1, b=[0], n=200, progress=False)
    assert (d.a, d.b, d.map_a) == ("all", "one", pytest.approx(1.0)) and d.diff > 0.5
    assert d.low <= d.diff <= d.high and d.p_a_above > 0.9  # only draws of s0 alone tie
    (r,) = paired_map_bootstrap(result, folder, stems, n=200, progress=False)  # a=0 against the rest
    assert r.diff == pytest.approx(-d.diff) and r.p_a_above == 0.0
    # The bootstrap matches at IoU 0.5 only; its mAP@0.5 must be the full evaluation's, also for loose boxes.
    loose = Detection(20.0, 13.0, 36.0, 29.0, 0.8, 0, "person")  # IoU ~0.7 with the labelled person
    shifted = MethodResult("loose", "ours", stems=stems, detections={s: [loose] for s in stems})
    (e,) = paired_map_bootstrap(EvalResult("tiny", "all", 3, (), [shifted, finds_all], ("fused",)), folder, stems,
                                n=20, progress=False)
    gts = {st: folder.labels(st, "fused") for st in stems}
    full = evaluate_detections({st: map_predictions([loose]) for st in stems}, gts, ["person", "bicycle", "car"])
    assert full.map50_95 < full.map50 and e.map_a == pytest.approx(full.map50)


def test_paired_bootstrap_pools_replicates_per_image(tmp_path):
    """Two evaluations that differ only in a sampler's noise: the pooled mAP counts every image once per replicate,
    and a drawn image brings both of its replicates."""
    from ivfusion.data.pairs import PairsFolder
    from ivfusion.detection.yolo import Detection
    from ivfusion.evaluation.bootstrap import bootstrap_pairs, paired_metric_bootstrap
    from ivfusion.evaluation.runner import EvalResult, MethodResult

    from tests.unit.tiny_data import write_tiny_pairs

    folder = PairsFolder(write_tiny_pairs(tmp_path / "d", labels=True))  # one person per frame
    stems = ["s0", "s1", "s2"]
    hit = Detection(18.0, 12.0, 34.0, 28.0, 0.9, 0, "person")

    def replicate(found: list[str], vif: float) -> EvalResult:
        methods = [MethodResult("base", "ours", metrics={"VIF": [0.5] * 3}, stems=stems,
                                detections={s: [] for s in stems}),
                   MethodResult("run", "ours", metrics={"VIF": [vif] * 3}, stems=stems,
                                detections={s: [hit] if s in found else [] for s in stems})]
        return EvalResult("tiny", "all", 3, ("VIF",), methods, ("fused",))

    all_found, none_found = replicate(stems, 0.7), replicate([], 0.5)
    (alone,) = bootstrap_pairs(all_found, folder, stems, [(1, 0)], n=50, progress=False)
    (pooled,) = bootstrap_pairs([all_found, none_found], folder, stems, [(1, 0)], n=50, progress=False)
    # 3 of 6 people found at precision 1: recall 0.5, i.e. 51 of the 101 COCO recall points
    assert alone.map_a == pytest.approx(1.0) and pooled.map_a == pytest.approx(51 / 101)
    assert pooled.low == pytest.approx(pooled.high)  # every image is the same mix of its two replicates
    (vif,) = paired_metric_bootstrap([all_found, none_found], [(1, 0)], n=50)
    assert vif["a_mean"] == pytest.approx(0.6) and vif["diff"] == pytest.approx(0.1)
    renamed = EvalResult("tiny", "all", 3, ("VIF",), list(reversed(none_found.methods)), ("fused",))
    with pytest.raises(ValueError, match="same methods in the same order"):
        bootstrap_pairs([all_found, renamed], folder, stems, [(1, 0)], n=5, progress=False)


def test_pooled_runs_are_replicates_against_the_shared_base(tmp_path):
    """Two runs of one recipe, one finding every person and one none, pool to the recipe's mAP over both runs;
    the base is the same in every replicate."""
    from ivfusion.data.pairs import PairsFolder
    from ivfusion.detection.yolo import Detection
    from ivfusion.evaluation.bootstrap import bootstrap_pairs, pool_runs
    from ivfusion.evaluation.runner import EvalResult, MethodResult

    from tests.unit.tiny_data import write_tiny_pairs

    folder = PairsFolder(write_tiny_pairs(tmp_path / "d", labels=True))  # one person per frame
    stems = ["s0", "s1", "s2"]
    hit = Detection(18.0, 12.0, 34.0, 28.0, 0.9, 0, "person")
    base = MethodResult("base", "ours", stems=stems, detections={s: [hit] if s == "s0" else [] for s in stems})
    good = MethodResult("run_a", "ours", stems=stems, detections={s: [hit] for s in stems})
    bad = MethodResult("run_b", "ours", stems=stems, detections={s: [] for s in stems})
    seed = EvalResult("tiny", "all", 3, (), [base, good, bad], ("fused",))
    pooled = pool_runs([seed, seed], 0, [1, 2], "recipe")
    assert len(pooled) == 4 and {tuple(m.name for m in r.methods) for r in pooled} == {("base", "recipe")}
    (d,) = bootstrap_pairs(pooled, folder, stems, [(1, 0)], n=50, progress=False)
    assert d.map_a == pytest.approx(51 / 101) and d.map_b == pytest.approx(34 / 101)  # recall 1/2 and 1/3
    assert seed.methods[1].name == "run_a"  # the evaluation itself is left as it was
    with pytest.raises(ValueError, match="at least two runs"):
        pool_runs(seed, 0, [0, 1], "recipe")


def test_paired_metric_bootstrap_separates_a_consistent_shift_from_noise():
    from ivfusion.evaluation.bootstrap import paired_metric_bootstrap
    from ivfusion.evaluation.runner import EvalResult, MethodResult

    rng = np.random.default_rng(0)
    stems = [f"s{i}" for i in range(30)]
    base = rng.normal(0.7, 0.1, 30)  # frames differ a lot; the shift is small but on every frame
    a = MethodResult("a", "ours", metrics={"VIF": list(base + 0.01), "SF": list(base + rng.normal(0, 0.05, 30))},
                     stems=stems)
    b = MethodResult("b", "ours", metrics={"VIF": list(base), "SF": list(base)}, stems=stems)
    rows = paired_metric_bootstrap(EvalResult("x", "all", 30, ("VIF", "SF"), [a, b], ()), [(0, 1)], n=500)
    vif, sf = rows
    assert vif["metric"] == "VIF" and vif["diff"] == pytest.approx(0.01) and vif["low"] > 0.0
    assert vif["frames_a_above"] == 1.0 and vif["p_a_above"] == 1.0
    assert sf["low"] < 0.0 < sf["high"]  # zero-mean noise: the interval straddles zero
    with pytest.raises(ValueError, match="different images"):
        paired_metric_bootstrap(EvalResult("x", "all", 30, ("VIF",), [a, MethodResult("c", "ours", stems=stems[:3])],
                                           ()), [(0, 1)])
