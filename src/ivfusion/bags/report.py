"""The replay report: ``report.json``, ``report.md`` and PNG plots from a finished replay folder.

Everything is computed from the files :func:`ivfusion.bags.replay.run_replay` leaves behind (so
``ivfusion bag report OUT`` can rebuild it): ``replay.json``, ``inputs.csv``, ``outputs.csv``,
``diagnostics.jsonl``, ``node_rss.csv``, the outputs bag and the input bag (+ its sidecar, for labels).

Definitions (also printed in the report):

* **end-to-end latency** of a fused frame = its receive time here - the publish time of the later of its two
  input messages (the RGB message with its stamp and the thermal message nearest in stamp). Both clocks are
  this process's ``time.monotonic``.
* **accounting**: every frame sent is received by the node or lost in transport; every received frame is
  paired or a pairing miss (exact after the flush pair); every pair is published, superseded, stale, failed
  or undecodable; every published image is received here. ``ok`` when all of these hold and nothing was lost.
* **fusion metrics** per fused frame: IR = the paired thermal message as the node sees it (8-bit as is,
  16-bit/float through ``ThermalAGC`` run over the processed thermal frames in order, resampled to the RGB
  frame by the node's registration), VIS = the RGB message, F = the fused message.
* **mAP** against the source frame's labels (sidecar stem; the fused label set and the ir+vi union) over
  the frames the node published; frames it dropped are not scored.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ivfusion.detection.from_msg import detections_from_msg
from ivfusion.metrics.detection import DATASET_TO_COCO, Prediction, evaluate_detections, map_predictions
from ivfusion.sync import RGB, THERMAL, ApproximateTimePairer, SyncConfig

STAGE_KEY = re.compile(r"^latency_(?P<stage>.+)_(?P<pct>p\d+)_ms$")
PCTS = (50, 95, 99)


# ------------------------------------------------------------------------------------------------ loading
def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in PCTS} | {"mean": None, "max": None, "n": 0}
    arr = np.asarray(values, float)
    out: dict[str, float | None] = {f"p{q}": float(np.percentile(arr, q)) for q in PCTS}
    return out | {"mean": float(arr.mean()), "max": float(arr.max()), "n": len(values)}


def _int(values: dict[str, str], key: str) -> int:
    try:
        return int(float(values.get(key, 0)))
    except ValueError:
        return 0


def _stages(values: dict[str, str]) -> dict[str, dict[str, float]]:
    stages: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        m = STAGE_KEY.match(key)
        if m:
            stages.setdefault(m["stage"], {})[m["pct"]] = float(value)
    return stages


# ------------------------------------------------------------------------------------------------ pieces
def _accounting(facts: dict[str, Any], sent: dict[int, list[int]], fused_received: int,
                sync: SyncConfig) -> dict[str, Any]:
    d = facts.get("final_diagnostics", {})
    flushed = bool(facts.get("flush_output_received"))
    k = 1 if flushed else 0  # the flush pair: one frame per stream, one pair, one published image
    recv = {"thermal": _int(d, "frames_in_thermal") - k, "rgb": _int(d, "frames_in_rgb") - k}
    pairs = _int(d, "pairs") - k
    published = _int(d, "published") - k
    misses = _int(d, "pairing_misses")
    superseded, stale = _int(d, "dropped_superseded"), _int(d, "dropped_stale")
    failures = _int(d, "processing_failures")
    undecodable = _int(d, "bad_input[undecodable pixels]")
    rejected = sum(_int(d, key) for key in d if key.startswith("bad_input[") and key.endswith("invalid layout]"))
    n_sent = {"thermal": len(sent[THERMAL]), "rgb": len(sent[RGB])}
    lost = n_sent["thermal"] + n_sent["rgb"] - recv["thermal"] - recv["rgb"] - rejected
    dropped = superseded + stale + failures + undecodable

    # The pairs the bag holds under the node's pairing policy, replayed offline in send order.
    pairer: ApproximateTimePairer[None] = ApproximateTimePairer(sync)
    merged = sorted([(t, s, THERMAL) for s, t in sent[THERMAL]] + [(t, s, RGB) for s, t in sent[RGB]])
    expected_pairs = sum(pairer.add(stream, stamp, None) is not None for _, stamp, stream in merged)

    checks = {
        "frames: received = 2 x pairs + pairing misses": recv["thermal"] + recv["rgb"] == 2 * pairs + misses,
        "pairs: pairs = published + superseded + stale + failed + undecodable": pairs == published + dropped,
        "outputs: fused received = published": fused_received == published,
        "transport: no frame lost between the replay and the node": lost == 0,
    }
    if not flushed:
        checks["flush pair answered (frames still queued in the pairer are counted)"] = False
    line = (f"{n_sent['thermal'] + n_sent['rgb']} frames sent = 2 x ({fused_received} fused received + {dropped} "
            f"dropped by the node) + {misses} pairing misses + {rejected} rejected + {lost} lost in transport")
    pair_line = (f"{expected_pairs} input pairs (offline nearest-stamp pairing); the node formed {pairs}: "
                 f"{fused_received} output + {dropped} dropped ({superseded} superseded, {stale} stale, "
                 f"{failures} failed, {undecodable} undecodable); {misses} frames missed pairing")
    return {
        "ok": all(checks.values()), "checks": checks, "line": line, "pair_line": pair_line,
        "frames_sent": n_sent, "frames_received_by_node": recv, "lost_in_transport": lost,
        "rejected_bad_layout": rejected, "input_pairs_expected": expected_pairs, "pairs": pairs,
        "published": published, "fused_received": fused_received, "dropped_superseded": superseded,
        "dropped_stale": stale, "processing_failures": failures, "undecodable": undecodable, "dropped": dropped,
        "pairing_misses": misses, "flush_pair_answered": flushed,
        "pairing_rate": pairs / max(1, min(n_sent["thermal"], n_sent["rgb"])),
        "pairing_rate_expected": expected_pairs / max(1, min(n_sent["thermal"], n_sent["rgb"])),
    }


def _paired_thermal(thermal_sorted: np.ndarray, stamp: int, slop_ns: int) -> int | None:
    """The thermal stamp nearest ``stamp`` if it is within ``slop_ns`` (the thermal frame that fused with it)."""
    if not len(thermal_sorted):
        return None
    i = int(np.searchsorted(thermal_sorted, stamp))
    best = [thermal_sorted[j] for j in (i - 1, i) if 0 <= j < len(thermal_sorted)]
    t = int(min(best, key=lambda s: abs(int(s) - stamp)))
    return t if abs(t - stamp) <= slop_ns else None


def _read_detections(outputs: Path, skip: set[int]) -> dict[int, list[Prediction]]:
    dets: dict[int, list[Prediction]] = {}
    if not outputs.exists():
        return dets
    for _, stamp, msg in _messages(outputs, {"detections": "/detections"}):
        if stamp in skip:
            continue
        dets[stamp] = [Prediction(d.class_name, d.x1, d.y1, d.x2, d.y2, d.score) for d in detections_from_msg(msg)]
    return dets


def _label_source(root: Path):  # noqa: ANN202 - PairsFolder.labels, or None
    """``PairsFolder(root).labels``; None when there is no pairs folder at ``root``."""
    from ivfusion.data import PairsFolder

    try:
        return PairsFolder(root).labels
    except Exception:  # noqa: BLE001 - no pairs folder there: no labels
        return None


def _detection_scores(dets: dict[int, list[Prediction]], fused_stamps: list[int], facts: dict[str, Any],
                      labels_root: Path | None) -> dict[str, Any]:
    """mAP of the published detections against the source frames' labels (where the sidecar says which)."""
    from ivfusion.bags.sidecar import read_sidecar

    sidecar = read_sidecar(facts["bag"]) if Path(facts["bag"]).exists() else None
    if sidecar is None:
        return {"available": False, "reason": "the bag has no ivfusion_frames.json sidecar (no source frames)"}
    stems = {s: sidecar.frames[s] for s in fused_stamps if s in sidecar.frames}
    if not stems:
        return {"available": False, "reason": "no published frame is in the sidecar"}
    root_of = {stamp: Path(labels_root or src.root) for stamp, src in stems.items()}
    roots = set(root_of.values())
    sources = {root: _label_source(root) for root in roots}
    if not any(sources.values()):
        return {"available": False, "reason": f"no pairs folder with labels at {sorted(map(str, roots))}"}
    preds = {str(stamp): map_predictions(dets.get(stamp, []), DATASET_TO_COCO) for stamp in stems}
    classes = sorted(set(DATASET_TO_COCO.values()))
    out: dict[str, Any] = {"available": True, "frames": len(stems), "label_sets": {}}
    for which in ("fused", "union"):
        gt = {}
        boxes_of: dict[tuple[Path, str], Any] = {}  # a looped bag shows each source frame many times: read once
        for stamp, src in stems.items():
            labels_of = sources[root_of[stamp]]
            if labels_of is None:
                continue
            key = (root_of[stamp], src.stem)
            if key not in boxes_of:
                boxes_of[key] = labels_of(src.stem, which)
            if boxes_of[key] is not None:
                gt[str(stamp)] = boxes_of[key]
        if not gt:
            out["label_sets"][which] = {"available": False, "reason": f"no '{which}' labels"}
            continue
        scores = evaluate_detections({k: preds[k] for k in gt}, gt, classes)
        out["label_sets"][which] = {
            "available": True, "map50": scores.map50, "map50_95": scores.map50_95, "n_images": scores.n_images,
            "per_class": {k: {"ap50": v.ap50, "ap50_95": v.ap50_95, "n_gt": v.n_gt, "n_pred": v.n_pred}
                          for k, v in scores.per_class.items()},
        }
    return out


def _node_views(facts: dict[str, Any]):  # noqa: ANN202 - (AGC, Registration)
    from ivfusion.imaging.agc import AGCConfig, ThermalAGC
    from ivfusion.registration.homography import Registration

    p = facts.get("node_params", {})
    agc = ThermalAGC(AGCConfig(low_percentile=float(p.get("agc.low_percentile", 1.0)),
                               high_percentile=float(p.get("agc.high_percentile", 99.0)),
                               smoothing=float(p.get("agc.smoothing", 0.9))))
    if p.get("registration.calibration_file"):
        reg = Registration.from_yaml(p["registration.calibration_file"])
    else:
        reg = Registration.from_params(p.get("registration.homography") or [],
                                       thermal_size=p.get("registration.thermal_size") or None,
                                       rgb_size=p.get("registration.rgb_size") or None)
    return agc, reg


def _messages(bag: Path, topics: dict[str, str]) -> Iterator[tuple[str, int, Any]]:
    """(kind, header stamp, deserialised message) in log order, for the topics ``{kind: topic}``."""
    from rosbags.highlevel import AnyReader

    from ivfusion.bags.types import header_stamp_ns, typestore

    kinds = {v: k for k, v in topics.items()}
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in kinds]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            yield kinds[conn.topic], header_stamp_ns(msg), msg


def _fusion_metrics(out: Path, facts: dict[str, Any], fused_stamps: list[int], thermal_sent: np.ndarray,
                    dets: dict[int, list[Prediction]], every: int, grid_n: int, progress: bool) -> dict[str, Any]:
    """Per-frame fusion metrics by a streaming merge of the input bag and the outputs bag (bounded memory)."""
    import cv2
    from tqdm import tqdm

    from ivfusion.bags.images import decode_image_msg
    from ivfusion.detection.draw import draw_detections
    from ivfusion.imaging.encodings import to_bgr8, to_mono8
    from ivfusion.metrics.fusion import fusion_metrics

    if not facts.get("options", {}).get("record_images", True):
        return {"available": False, "reason": "fused images were not recorded (--no-record-images)"}
    if not fused_stamps:
        return {"available": False, "reason": "no fused frames"}
    slop = int(facts["sync"]["slop_ns"])
    thermal_for: dict[int, list[int]] = {}  # thermal stamp -> fused (rgb) stamps that paired with it
    for s in sorted(fused_stamps):
        t = _paired_thermal(thermal_sent, s, slop)
        if t is not None:
            thermal_for.setdefault(t, []).append(s)
    paired = sorted(s for stamps in thermal_for.values() for s in stamps)
    evaluated = set(paired[::max(1, every)])
    grid_set = set(sorted(evaluated)[:: max(1, len(evaluated) // max(1, grid_n))][:grid_n])
    agc, reg = _node_views(facts)
    ir8: dict[int, np.ndarray] = {}
    vis: dict[int, np.ndarray] = {}
    fused_imgs: dict[int, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    grid: dict[int, np.ndarray] = {}
    fused_iter = ((stamp, m) for _, stamp, m in _messages(out / "outputs", {"fused": "/fused/image"})
                  if stamp in evaluated)
    fused_done = False

    def pull_fused_until(stamp: int) -> None:
        nonlocal fused_done
        while not fused_done and stamp not in fused_imgs:
            item = next(fused_iter, None)
            if item is None:
                fused_done = True
                return
            fused_imgs[item[0]] = decode_image_msg(item[1]).copy()

    def evaluate(stamp: int) -> None:
        pull_fused_until(stamp)
        f = fused_imgs.pop(stamp, None)
        ir, vi = ir8.pop(stamp), vis.pop(stamp)
        if f is None:
            return
        if ir.shape[:2] != vi.shape[:2]:
            ir = reg.warp(ir, vi.shape)
        values = fusion_metrics(ir, vi, f)
        rows.append({"stamp_ns": stamp, **values})
        if stamp in grid_set:  # draw_detections reads only the box, class_name and score a Prediction has
            drawn = draw_detections(f, dets.get(stamp, []))
            row = np.concatenate([cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR), vi, drawn], axis=1)
            scale = 960 / row.shape[1]
            grid[stamp] = cv2.resize(row, (960, int(row.shape[0] * scale)), interpolation=cv2.INTER_AREA)

    topics = {"thermal": facts["thermal_topic"], "rgb": facts["rgb_topic"]}
    bar = tqdm(total=len(evaluated), desc="fusion metrics", unit="frame", disable=not progress)
    try:
        for kind, stamp, msg in _messages(Path(facts["bag"]), topics):
            if kind == "thermal" and stamp in thermal_for:
                img, enc = decode_image_msg(msg), msg.encoding
                img8 = agc(img) if img.dtype != np.uint8 else (to_mono8(img, enc) if img.ndim == 3 else img)
                img8 = img8.copy()  # once: the fused frames it paired with only read it
                for s in thermal_for[stamp]:
                    if s in evaluated:
                        ir8[s] = img8
            elif kind == "rgb" and stamp in evaluated:
                vis[stamp] = to_bgr8(decode_image_msg(msg), msg.encoding).copy()
            for s in [s for s in list(vis) if s in ir8]:
                evaluate(s)
                bar.update(1)
    finally:
        bar.close()
    if not rows:
        return {"available": False, "reason": "no fused frame could be matched to its inputs"}
    names = [k for k in rows[0] if k != "stamp_ns"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in names}
    std = {k: float(np.std([r[k] for r in rows])) for k in names}
    if grid:
        cv2.imwrite(str(out / "grid.png"), np.concatenate([grid[s] for s in sorted(grid)], axis=0))
    with open(out / "fusion_metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["stamp_ns", *names])
        w.writeheader()
        w.writerows(rows)
    return {"available": True, "frames": len(rows), "every": every, "mean": mean, "std": std, "rows": rows,
            "grid": "grid.png" if grid else None}


# ------------------------------------------------------------------------------------------------ plots
def _plots(out: Path, t0: float, lat_t: list[float], lat_ms: list[float], det_t: list[float], det_n: list[int],
           rss: list[dict[str, str]], metrics: dict[str, Any], fused_t_of: dict[int, float]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    if lat_ms:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 1]})
        ax1.plot(lat_t, lat_ms, ".", ms=3)
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            ax1.axhline(np.percentile(lat_ms, q), color="k", ls=style, lw=0.8, label=f"p{q}")
        ax1.set(xlabel="time since first message [s]", ylabel="publish -> fused received [ms]",
                title="end-to-end latency")
        ax1.legend(loc="upper right", fontsize=8)
        ax2.hist(lat_ms, bins=40)
        ax2.set(xlabel="ms", title="distribution")
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)
        made.append("latency.png")
    if det_n:
        fig, ax = plt.subplots(figsize=(11, 3))
        ax.plot(det_t, det_n, drawstyle="steps-mid")
        ax.set(xlabel="time since first message [s]", ylabel="detections", title="detections per fused frame")
        fig.tight_layout()
        fig.savefig(out / "detections.png", dpi=110)
        plt.close(fig)
        made.append("detections.png")
    if metrics.get("available"):
        names = list(metrics["mean"])
        cols = 3
        fig, axes = plt.subplots(math.ceil(len(names) / cols), cols, figsize=(11, 2.2 * math.ceil(len(names) / cols)),
                                 squeeze=False)
        ts = [fused_t_of.get(r["stamp_ns"], np.nan) for r in metrics["rows"]]
        for ax, name in zip(axes.flat, names):
            ax.plot(ts, [r[name] for r in metrics["rows"]], lw=0.8)
            ax.set_title(name, fontsize=9)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.supxlabel("time since first message [s]")
        fig.tight_layout()
        fig.savefig(out / "fusion_metrics.png", dpi=110)
        plt.close(fig)
        made.append("fusion_metrics.png")
    if rss:
        t = [float(r["t_mono_s"]) - t0 for r in rss]
        fig, ax = plt.subplots(figsize=(11, 3))
        ax.plot(t, [float(r["rss_mb"]) for r in rss], label="RSS [MB]")
        ax.set(xlabel="time since first message [s]", ylabel="node RSS [MB]", title="node memory and CPU")
        ax2 = ax.twinx()
        ax2.plot(t, [float(r["cpu_percent"]) for r in rss], color="tab:orange", lw=0.7, label="CPU [%]")
        ax2.set_ylabel("node CPU [%]")
        fig.tight_layout()
        fig.savefig(out / "node_rss.png", dpi=110)
        plt.close(fig)
        made.append("node_rss.png")
    return made


# ------------------------------------------------------------------------------------------------ report
def build_report(out: str | Path, *, labels_root: str | Path | None = None, metrics: bool = True,
                 metrics_every: int = 1, progress: bool = True) -> dict[str, Any]:
    out = Path(out)
    facts = json.loads((out / "replay.json").read_text())
    flush = facts.get("flush_stamp_ns")
    skip = {int(flush)} if flush is not None else set()
    sync = SyncConfig(**facts["sync"])
    inputs = _read_csv(out / "inputs.csv")
    outputs = _read_csv(out / "outputs.csv")
    rss = _read_csv(out / "node_rss.csv")
    t0 = facts.get("t0_mono_ns", 0) / 1e9

    sent: dict[int, list[tuple[int, int]]] = {THERMAL: [], RGB: []}  # (stamp, sent mono ns)
    for r in inputs:
        sent[THERMAL if r["stream"] == "thermal" else RGB].append((int(r["stamp_ns"]), int(r["sent_mono_ns"])))
    send_of = [dict(sent[THERMAL]), dict(sent[RGB])]
    thermal_sorted = np.array(sorted(send_of[THERMAL]), dtype=np.int64)
    fused_recv: dict[int, int] = {}
    det_recv: dict[int, int] = {}
    for r in outputs:
        stamp = int(r["stamp_ns"])
        if stamp in skip:
            continue
        table = fused_recv if r["topic"] == "fused" else det_recv
        table.setdefault(stamp, int(r["recv_mono_ns"]))

    lat_t, lat_ms, lat_rgb_ms = [], [], []
    for stamp in sorted(fused_recv):
        if stamp not in send_of[RGB]:
            continue
        ready = send_of[RGB][stamp]
        t = _paired_thermal(thermal_sorted, stamp, sync.slop_ns)
        if t is not None:
            ready = max(ready, send_of[THERMAL][t])
        lat_ms.append((fused_recv[stamp] - ready) / 1e6)
        lat_rgb_ms.append((fused_recv[stamp] - send_of[RGB][stamp]) / 1e6)
        lat_t.append(send_of[RGB][stamp] / 1e9 - t0)
    accounting = _accounting(facts, {k: sorted(v) for k, v in sent.items()}, len(fused_recv), sync)
    diag = facts.get("final_diagnostics", {})
    recv_times = sorted(fused_recv.values())
    span = (recv_times[-1] - recv_times[0]) / 1e9 if len(recv_times) > 1 else 0.0
    send_times = sorted(t for _, t in sent[RGB])
    send_span = (send_times[-1] - send_times[0]) / 1e9 if len(send_times) > 1 else 0.0

    dets = _read_detections(out / "outputs", skip)
    fused_t_of = {s: send_of[RGB].get(s, fused_recv[s]) / 1e9 - t0 for s in fused_recv}
    det_stamps = sorted(dets)
    det_n = [len(dets[s]) for s in det_stamps]
    det_t = [fused_t_of.get(s, np.nan) for s in det_stamps]
    class_counts: dict[str, int] = {}
    for boxes in dets.values():
        for b in boxes:
            class_counts[b.class_name] = class_counts.get(b.class_name, 0) + 1

    fusion = (_fusion_metrics(out, facts, sorted(fused_recv), thermal_sorted, dets, metrics_every,
                              int(facts.get("options", {}).get("grid_frames", 4)), progress)
              if metrics else {"available": False, "reason": "disabled (--no-metrics)"})
    labels_root = labels_root or facts.get("options", {}).get("labels_root")
    detection = _detection_scores(dets, sorted(fused_recv), facts, Path(labels_root) if labels_root else None)
    rss_mb = [float(r["rss_mb"]) for r in rss]
    report: dict[str, Any] = {
        "bag": facts["bag"], "speed": facts["speed"], "dds": facts.get("dds"), "errors": facts.get("errors", []),
        "node": {"exit_code": facts.get("node_exit_code"), "alive_at_end": facts.get("node_alive_at_end"),
                 "ready_after_s": facts.get("ready_after_s"), "detector": diag.get("detector"),
                 "backend": diag.get("backend"), "preference": diag.get("preference"),
                 "fusion_runtime": diag.get("fusion_runtime"), "fusion_model_dir": diag.get("fusion_model_dir"),
                 "final_level": facts.get("final_level"), "final_message": facts.get("final_message"),
                 "rss_mb": {"first": rss_mb[0] if rss_mb else None, "last": rss_mb[-1] if rss_mb else None,
                            "max": max(rss_mb) if rss_mb else None}},
        "input_rate_hz": (len(send_times) - 1) / send_span if send_span > 0 else None,
        "throughput_hz": (len(recv_times) - 1) / span if span > 0 else None,
        "play_s": facts.get("play_s"), "flow_control_timeouts": facts.get("flow_control_timeouts"),
        "latency_ms": {"end_to_end": _percentiles(lat_ms), "from_rgb_publish": _percentiles(lat_rgb_ms)},
        "stages_ms": _stages(diag),
        "accounting": accounting,
        "detections": {"frames": len(dets), "total": int(sum(det_n)), "per_frame_mean":
                       float(np.mean(det_n)) if det_n else None, "by_class": class_counts},
        "detection_scores": detection,
        "fusion_metrics": {k: v for k, v in fusion.items() if k != "rows"},
    }
    report["plots"] = _plots(out, t0, lat_t, lat_ms, det_t, det_n, rss, fusion, fused_t_of)
    if fusion.get("grid"):
        report["plots"].append(fusion["grid"])
    report["summary_text"] = _summary(report)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_json_default))
    (out / "report.md").write_text(_markdown(report, facts))
    return report


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _summary(r: dict[str, Any]) -> str:
    e2e = r["latency_ms"]["end_to_end"]
    acc = r["accounting"]
    lines = [f"replay x{r['speed']:g} of {r['bag']}: {acc['fused_received']} fused frames, throughput "
             f"{_fmt(r['throughput_hz'])} Hz (input {_fmt(r['input_rate_hz'])} Hz)",
             f"end-to-end latency p50/p95/p99 {_fmt(e2e['p50'])} / {_fmt(e2e['p95'])} / {_fmt(e2e['p99'])} ms",
             f"accounting {'OK' if acc['ok'] else 'FAILED'}: {acc['line']}",
             f"pairing rate {acc['pairing_rate']:.3f}; {acc['pair_line']}"]
    ds = r["detection_scores"]
    if ds.get("available"):
        for which, s in ds["label_sets"].items():
            if s.get("available"):
                lines.append(f"mAP ({which} labels, {s['n_images']} frames): @0.5 {s['map50']:.3f}, "
                             f"@0.5:0.95 {s['map50_95']:.3f}")
    fm = r["fusion_metrics"]
    if fm.get("available"):
        lines.append("fusion metrics (mean): " + ", ".join(f"{k} {v:.3f}" for k, v in fm["mean"].items()))
    return "\n".join(lines)


def _student_text(node: dict[str, Any]) -> str:
    """`` (<runtime>, weights <folder>)`` for a student node, so a report says which model it measured."""
    parts = [x for x in (node.get("fusion_runtime"), node.get("fusion_model_dir") and
                         f"weights `{node['fusion_model_dir']}`") if x]
    return f" ({', '.join(parts)})" if parts else ""


def _markdown(r: dict[str, Any], facts: dict[str, Any]) -> str:
    acc = r["accounting"]
    e2e, rgb = r["latency_ms"]["end_to_end"], r["latency_ms"]["from_rgb_publish"]
    node = r["node"]
    md = [f"# Replay report: `{Path(r['bag']).name}` at speed {r['speed']:g}", "",
          f"Bag `{r['bag']}`; node `{' '.join(facts.get('node_command', []))}` (ROS_DOMAIN_ID "
          f"{facts.get('domain_id')}); DDS: {r['dds']}.", "",
          f"Node: {node['backend']} fusion{_student_text(node)}, preference `{node['preference']}`, detector "
          f"{node['detector']}, ready after {_fmt(node['ready_after_s'])} s, exit code {node['exit_code']}; RSS "
          f"{_fmt(node['rss_mb']['first'])} "
          f"-> {_fmt(node['rss_mb']['last'])} MB (max {_fmt(node['rss_mb']['max'])}).", ""]
    if r["errors"]:
        md += ["**Errors:** " + "; ".join(r["errors"]), ""]
    md += ["## Throughput and latency", "",
           f"Input {_fmt(r['input_rate_hz'])} Hz (RGB), output {_fmt(r['throughput_hz'])} Hz; played in "
           f"{_fmt(r['play_s'])} s" + (f"; {r['flow_control_timeouts']} flow-control timeouts" if r["speed"] == 0
                                       else "") + ".", "",
           "| latency [ms] | p50 | p95 | p99 | mean | max | n |", "|---|---|---|---|---|---|---|",
           f"| end to end (later input published -> fused received) | {_fmt(e2e['p50'])} | {_fmt(e2e['p95'])} | "
           f"{_fmt(e2e['p99'])} | {_fmt(e2e['mean'])} | {_fmt(e2e['max'])} | {e2e['n']} |",
           f"| from the RGB publish | {_fmt(rgb['p50'])} | {_fmt(rgb['p95'])} | {_fmt(rgb['p99'])} | "
           f"{_fmt(rgb['mean'])} | {_fmt(rgb['max'])} | {rgb['n']} |", ""]
    if r["stages_ms"]:
        pcts = sorted({p for v in r["stages_ms"].values() for p in v}, key=lambda p: int(p[1:]))
        md += ["Per stage, from the node's final `/diagnostics` (its window of the last 200 frames; the node "
               "reports " + "/".join(pcts) + "):", "",
               "| stage | " + " | ".join(pcts) + " |", "|---|" + "---|" * len(pcts)]
        md += [f"| {stage} | " + " | ".join(_fmt(v.get(p), 2) for p in pcts) + " |"
               for stage, v in r["stages_ms"].items()]
        md.append("")
    if "latency.png" in r["plots"]:
        md += ["![latency](latency.png)", ""]
    md += ["## Accounting", "", f"**{'OK' if acc['ok'] else 'FAILED'}**: {acc['line']}.", "", acc["pair_line"] + ".",
           "", f"Pairing rate (node pairs / min(thermal, RGB) sent): {acc['pairing_rate']:.3f} (offline "
           f"nearest-stamp pairing of the same messages: {acc['pairing_rate_expected']:.3f}).", "",
           "| check | holds |", "|---|---|"]
    md += [f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in acc["checks"].items()]
    md += ["", "## Detections", ""]
    d = r["detections"]
    md.append(f"{d['total']} detections on {d['frames']} frames (mean {_fmt(d['per_frame_mean'], 2)} per frame); by "
              "class: " + (", ".join(f"{k} {v}" for k, v in sorted(d["by_class"].items(), key=lambda kv: -kv[1]))
                           or "none") + ".")
    md.append("")
    if "detections.png" in r["plots"]:
        md += ["![detections](detections.png)", ""]
    ds = r["detection_scores"]
    if ds.get("available"):
        md += ["| label set | frames | mAP@0.5 | mAP@0.5:0.95 | per class AP@0.5 (n_gt) |", "|---|---|---|---|---|"]
        for which, s in ds["label_sets"].items():
            if not s.get("available"):
                md.append(f"| {which} | - | - | - | {s.get('reason')} |")
                continue
            per = ", ".join(f"{k} {_fmt(v['ap50'], 3)} ({v['n_gt']})" for k, v in s["per_class"].items())
            md.append(f"| {which} | {s['n_images']} | {s['map50']:.3f} | {s['map50_95']:.3f} | {per} |")
        md += ["", "Scored over the frames the node published (dropped frames are not scored); COCO class names "
               "mapped strictly (person, bicycle, car).", ""]
    else:
        md += [f"mAP: not computed ({ds.get('reason')}).", ""]
    md += ["## Fusion metrics", ""]
    fm = r["fusion_metrics"]
    if fm.get("available"):
        names = list(fm["mean"])
        md += [f"{fm['frames']} fused frames (every {fm['every']}): IR = paired thermal message as the node sees it, "
               "VIS = RGB message, F = fused message.", "", "| | " + " | ".join(names) + " |",
               "|---|" + "---|" * len(names),
               "| mean | " + " | ".join(f"{fm['mean'][k]:.3f}" for k in names) + " |",
               "| std | " + " | ".join(f"{fm['std'][k]:.3f}" for k in names) + " |", ""]
        if "fusion_metrics.png" in r["plots"]:
            md += ["![fusion metrics](fusion_metrics.png)", ""]
        if fm.get("grid"):
            md += ["IR | VIS | fused + detections:", "", f"![frames]({fm['grid']})", ""]
    else:
        md += [f"Not computed ({fm.get('reason')}).", ""]
    if "node_rss.png" in r["plots"]:
        md += ["## Node memory", "", "![node memory](node_rss.png)", ""]
    md += ["Files: `outputs/outputs.mcap` (fused/image, detections, /diagnostics as received), `inputs.csv`, "
           "`outputs.csv`, `diagnostics.jsonl`, `node_rss.csv`, `node.log`, `replay.json`, `report.json`.", ""]
    return "\n".join(md)
