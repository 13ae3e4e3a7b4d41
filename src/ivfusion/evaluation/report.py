"""Evaluation results as a person wants them: Markdown and CSV tables, and an HTML page with pictures."""

from __future__ import annotations

import csv
import html
import math
from pathlib import Path

import cv2
import numpy as np

from ivfusion.detection.draw import draw_detections
from ivfusion.evaluation.runner import EvalResult

GRID_WIDTH = 320  # pixels per tile in image grids


def summary(result: EvalResult) -> dict[str, dict]:
    """JSON-ready ``{method: {"metrics": {name: mean}, "detection": {label set: {"mAP50", "mAP50_95"}}}}``: what
    the measurement scripts store next to their tables."""
    return {m.name: {"metrics": {k: m.mean(k) for k in result.metric_names},
                     "detection": {k: {"mAP50": float(v.map50), "mAP50_95": float(v.map50_95)}
                                   for k, v in m.detection_scores.items()}} for m in result.methods}


def save_json(out: dict, path: Path) -> None:
    """Write ``out`` as indented JSON (folders made) and print it, as the measurement scripts report."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def _fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def metrics_table(result: EvalResult) -> str:
    """Mean of each metric per method; the best non-source value per column in bold (all are higher-better)."""
    if not result.metric_names:
        return ""
    head = "| method | kind | n | " + " | ".join(result.metric_names) + " |"
    rows = [head, "|" + "---|" * (len(result.metric_names) + 3)]
    contenders = [m for m in result.methods if m.kind != "source" and m.stems]
    best = {k: max((m.mean(k) for m in contenders), default=float("nan")) for k in result.metric_names}
    for m in result.methods:
        cells = []
        for k in result.metric_names:
            v = m.mean(k)
            text = _fmt(v)
            cells.append(f"**{text}**" if m.kind != "source" and np.isclose(v, best[k]) else text)
        rows.append(f"| {m.name} | {m.kind} | {len(m.stems)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def detection_table(result: EvalResult) -> str:
    if not result.label_sets:
        return ""
    rows = ["| method | labels | mAP@0.5 | mAP@0.5:0.95 | AP50 person | AP50 bicycle | AP50 car |", "|---|---|---|---|---|---|---|"]
    for m in result.methods:
        for label_set, scores in m.detection_scores.items():
            per = scores.per_class
            ap = [_fmt(per[c].ap50) if c in per else "—" for c in ("person", "bicycle", "car")]
            rows.append(f"| {m.name} | {label_set} | {_fmt(scores.map50)} | {_fmt(scores.map50_95)} | " + " | ".join(ap) + " |")
    return "\n".join(rows)


def markdown(result: EvalResult, *, title: str | None = None) -> str:
    parts = [f"### {title or result.dataset} ({result.split}, {result.n_pairs} pairs)"]
    if result.metric_names:
        parts += ["", "Fusion metrics (mean over pairs; higher is better; best fused result in bold):", "",
                  metrics_table(result)]
    if result.label_sets:
        parts += ["", "Detection (shared COCO YOLOv8n on each method's frames; conf 0.001, NMS IoU 0.6):", "",
                  detection_table(result)]
    if result.reference_check is not None:
        worst = max(result.reference_check.values(), default=0.0)
        parts += ["", f"Independent reference implementation: largest relative deviation of any metric on any pair "
                      f"and method = {worst:.2e} ({'agrees' if worst <= 1e-3 else 'DISAGREES'} at 1e-3)."]
    missing = [f"{m.name} ({len(m.missing)})" for m in result.methods if m.missing]
    if missing:
        parts += ["", "Pairs without an output (skipped): " + ", ".join(missing)]
    return "\n".join(parts) + "\n"


def write_csv(result: EvalResult, out: Path) -> tuple[Path, Path]:
    per_image, summary = out / "per_image.csv", out / "summary.csv"
    with per_image.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "stem", *result.metric_names, "n_detections"])
        for m in result.methods:
            for i, stem in enumerate(m.stems):
                vals = [m.metrics[k][i] for k in result.metric_names]
                w.writerow([m.name, stem, *vals, len(m.detections.get(stem, []))])
    with summary.open("w", newline="") as f:
        w = csv.writer(f)
        sets = list(result.label_sets)
        w.writerow(["method", "kind", "n", *result.metric_names, *[f"map50[{s}]" for s in sets],
                    *[f"map50_95[{s}]" for s in sets]])
        for m in result.methods:
            d = m.detection_scores
            w.writerow([m.name, m.kind, len(m.stems), *[m.mean(k) for k in result.metric_names],
                        *[d[s].map50 if s in d else "" for s in sets], *[d[s].map50_95 if s in d else "" for s in sets]])
    return per_image, summary


def _tile(img: np.ndarray, label: str) -> np.ndarray:
    h, w = img.shape[:2]
    tile = cv2.resize(img, (GRID_WIDTH, round(h * GRID_WIDTH / w)), interpolation=cv2.INTER_AREA)
    if tile.ndim == 2:
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
    cv2.rectangle(tile, (0, 0), (GRID_WIDTH, 18), (0, 0, 0), -1)
    cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def image_grid(result: EvalResult, *, overlays: bool) -> np.ndarray | None:
    """Rows = pairs, columns = IR | VIS | each method (with detection boxes when ``overlays``)."""
    if not result.grid_inputs:
        return None
    rows = []
    for stem, (thermal, visible) in result.grid_inputs.items():
        tiles = [_tile(thermal, f"IR {stem}"), _tile(visible, "VIS")]
        for m in result.methods:
            if m.kind == "source" or stem not in m.examples:
                continue
            img = m.examples[stem]
            if overlays:
                img = draw_detections(img, [d for d in m.detections.get(stem, []) if d.score >= 0.25])
            tiles.append(_tile(img, m.name))
        height = max(t.shape[0] for t in tiles)
        rows.append(np.hstack([cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in tiles]))
    width = max(r.shape[1] for r in rows)
    return np.vstack([cv2.copyMakeBorder(r, 0, 0, 0, width - r.shape[1], cv2.BORDER_CONSTANT) for r in rows])


def bar_charts(result: EvalResult, path: Path) -> Path | None:
    if not result.metric_names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in result.methods if m.stems]
    n = len(result.metric_names)
    cols = 3
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(4.2 * cols, 2.8 * math.ceil(n / cols)))
    colours = {"ours": "tab:green", "baseline": "tab:blue", "peer": "tab:orange", "source": "tab:gray"}
    for ax, metric in zip(axes.flat, result.metric_names):
        values = [m.mean(metric) for m in methods]
        ax.bar(range(len(methods)), values, color=[colours.get(m.kind, "tab:blue") for m in methods])
        ax.set_title(metric)
        ax.set_xticks(range(len(methods)), [m.name for m in methods], rotation=45, ha="right", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{result.dataset} ({result.split}, {result.n_pairs} pairs): mean per method")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: EvalResult, out: Path) -> Path:
    """Markdown + CSV + HTML (grids, bar charts, detection overlays) into ``out``; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(result)
    (out / "results.md").write_text(md)
    write_csv(result, out)
    images = []
    grid = image_grid(result, overlays=False)
    if grid is not None:
        cv2.imwrite(str(out / "grid.jpg"), grid, [cv2.IMWRITE_JPEG_QUALITY, 88])
        images.append(("IR | VIS | methods", "grid.jpg"))
    if result.label_sets:
        overlay = image_grid(result, overlays=True)
        if overlay is not None:
            cv2.imwrite(str(out / "detections.jpg"), overlay, [cv2.IMWRITE_JPEG_QUALITY, 88])
            images.append(("Detections (score ≥ 0.25) on each method's frames", "detections.jpg"))
    if bar_charts(result, out / "metrics.png"):
        images.insert(0, ("Fusion metrics", "metrics.png"))
    body = [f"<h1>ivfusion evaluation: {html.escape(result.dataset)}</h1>",
            f"<pre>{html.escape(md)}</pre>",
            '<p>Per-image values: <a href="per_image.csv">per_image.csv</a>; summary: <a href="summary.csv">summary.csv</a></p>']
    for caption, name in images:
        body.append(f"<h2>{html.escape(caption)}</h2><img src='{name}' style='max-width:100%'>")
    page = "<!doctype html><meta charset='utf-8'><title>ivfusion eval</title><body style='font-family:sans-serif'>"
    (out / "index.html").write_text(page + "\n".join(body) + "</body>")
    return out / "index.html"
