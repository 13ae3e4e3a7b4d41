"""Soak test: thousands of frames through the real node process; memory growth, crashes, accounting.

    .venv/bin/python bench/soak.py [--frames 3000] [--rate 10] [--speed 2] [--pairs ../shared/datasets/msrs]
                                   [--weights W] [--keep DIR] [--write-docs]

Makes a camera-like bag from a pairs folder (``ivfusion bag from-pairs``, default MSRS looped to 3,000 frames
at 10 Hz) in a temporary folder, replays it at ``--speed`` times the recorded rate through ``ivfusion node``
in its own process (``ivfusion bag replay`` machinery; fused images are timed but not written), sampling the
node's resident memory (psutil) every second. After the warm-up (the first 10 % of frames) it reports RSS
growth, whether the node crashed, whether every input frame is accounted for by the node's final
diagnostics, throughput and latency. ``--write-docs`` replaces the "Soak" section of docs/replay.md.

Acceptance: no crash, all frames accounted for, RSS growth < 50 MB after warm-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ivfusion.bags.frompairs import FromPairsOptions, from_pairs
from ivfusion.bags.replay import ReplayOptions, run_replay
from ivfusion.bags.report import build_report
from ivfusion.paths import REPO_ROOT, shared_root

RSS_LIMIT_MB = 50.0
DOC = REPO_ROOT / "docs" / "replay.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def _rss_stats(out: Path, warmup_frames: int) -> dict:
    with open(out / "node_rss.csv", newline="") as f:
        rows = [(float(r["t_mono_s"]), float(r["rss_mb"]), float(r["cpu_percent"])) for r in csv.DictReader(f)]
    with open(out / "inputs.csv", newline="") as f:
        sends = [int(r["sent_mono_ns"]) / 1e9 for r in csv.DictReader(f) if r["stream"] == "rgb"]
    if not rows or len(sends) <= warmup_frames:
        return {"available": False}
    warm_t, end_t = sends[warmup_frames], sends[-1]
    during = [(t, rss, cpu) for t, rss, cpu in rows if warm_t <= t <= end_t + 1.0]
    if len(during) < 2:
        return {"available": False}
    t = np.array([d[0] for d in during]) - warm_t
    rss = np.array([d[1] for d in during])
    slope = float(np.polyfit(t, rss, 1)[0]) * 60 if len(t) > 2 else 0.0
    before = [rss for tt, rss, _ in rows if tt < warm_t]
    k = max(1, min(10, len(rss) // 4))  # medians of the first / last ~10 samples: robust to one-sample noise
    first, last = float(np.median(rss[:k])), float(np.median(rss[-k:]))
    return {"available": True, "samples": len(rows), "rss_start_mb": rows[0][1],
            "rss_peak_during_warmup_mb": max(before) if before else None, "rss_after_warmup_mb": first,
            "rss_end_mb": last, "rss_max_after_warmup_mb": float(rss.max()),
            "growth_mb": last - first, "max_growth_mb": float(rss.max()) - first, "median_of_samples": k,
            "slope_mb_per_min": slope, "cpu_mean_percent": float(np.mean([d[2] for d in during])),
            "post_warmup_s": float(t[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=shared_root() / "datasets" / "msrs")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=10.0, help="recorded RGB/thermal rate of the bag [Hz]")
    parser.add_argument("--speed", type=float, default=2.0, help="replay speed (2 = twice the recorded rate)")
    parser.add_argument("--weights", help="detector weights (default: the node's default)")
    parser.add_argument("--keep", type=Path, help="keep the bag and replay folder here instead of a temp dir")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the Soak section of {DOC}")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")

    work = args.keep or Path(tempfile.mkdtemp(prefix="ivfusion_soak_"))
    work.mkdir(parents=True, exist_ok=True)
    bag, out = work / "bag", work / "replay"
    try:
        t = time.monotonic()
        if not bag.exists():
            from_pairs(args.pairs, bag, FromPairsOptions(frames=args.frames, rate=args.rate),
                       progress=lambda it, n: tqdm(it, total=n, desc="bag", unit="msg"))
        print(f"bag: {args.frames} frames at {args.rate:g} Hz from {args.pairs} in {time.monotonic() - t:.0f} s")
        if out.exists():
            shutil.rmtree(out)
        facts = run_replay(ReplayOptions(bag=bag, out=out, speed=args.speed, weights=args.weights,
                                         record_images=False, metrics=False))
        report = build_report(out, metrics=False, progress=False)
        rss = _rss_stats(out, args.frames // 10)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    acc = report["accounting"]
    inputs = args.frames
    processed = acc["published"]
    dropped = acc["dropped"]
    misses = acc["pairing_misses"]
    crashed = not facts.get("node_alive_at_end", False) or facts.get("node_exit_code") != 0
    result = {
        "date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": " ".join([".venv/bin/python", "bench/soak.py", *sys.argv[1:]]),
        "frames": inputs, "rate_hz": args.rate, "speed": args.speed, "detector": report["node"]["detector"],
        "crashed": crashed, "node_exit_code": facts.get("node_exit_code"), "errors": facts.get("errors", []),
        "accounted": processed + dropped + misses == inputs and acc["ok"],
        "inputs": inputs, "processed": processed, "dropped": dropped, "dropped_superseded": acc["dropped_superseded"],
        "dropped_stale": acc["dropped_stale"], "pairing_misses": misses, "lost_in_transport": acc["lost_in_transport"],
        "accounting_line": acc["line"], "input_rate_hz": report["input_rate_hz"],
        "throughput_hz": report["throughput_hz"], "play_s": report["play_s"],
        "latency_ms": report["latency_ms"]["end_to_end"], "stages_ms": report["stages_ms"], "rss": rss,
    }
    result["rss_ok"] = bool(rss.get("available")) and rss["growth_mb"] < RSS_LIMIT_MB
    result["passed"] = not crashed and result["accounted"] and result["rss_ok"]
    print(json.dumps(result, indent=1, default=str))
    print(_summary(result))
    if args.write_docs:
        _write_docs(result)
        print(f"wrote the Soak section of {DOC}")
    return 0 if result["passed"] else 1


def _summary(r: dict) -> str:
    lat, rss = r["latency_ms"], r["rss"]
    growth = (f"{rss['growth_mb']:+.1f} MB (max {rss['max_growth_mb']:+.1f} MB, trend {rss['slope_mb_per_min']:+.2f} "
              f"MB/min over {rss['post_warmup_s']:.0f} s)") if rss.get("available") else "not measured"
    return (f"soak: {r['frames']} frames at {r['rate_hz'] * r['speed']:g} Hz -> "
            f"{'PASSED' if r['passed'] else 'FAILED'}\n"
            f"  crash: {'yes' if r['crashed'] else 'no'} (exit code {r['node_exit_code']})\n"
            f"  accounted: {'yes' if r['accounted'] else 'NO'}: {r['processed']} processed + {r['dropped']} dropped + "
            f"{r['pairing_misses']} pairing misses = {r['processed'] + r['dropped'] + r['pairing_misses']} of "
            f"{r['inputs']} input pairs\n"
            f"  RSS growth after warm-up: {growth}\n"
            f"  throughput {r['throughput_hz']:.2f} Hz (input {r['input_rate_hz']:.2f} Hz); latency p50/p95/p99 "
            f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms")


def _write_docs(r: dict) -> None:
    lat, rss = r["latency_ms"], r["rss"]
    stages = r["stages_ms"]

    def g(key: str) -> float:
        value = rss.get(key)
        return float("nan") if value is None else float(value)

    def stage(name: str) -> str:
        s = stages.get(name, {})
        return f"{s.get('p50', float('nan')):.1f} / {s.get('p95', float('nan')):.1f}"

    rows = [
        ("result", "**passed**" if r["passed"] else "**FAILED**"),
        ("node crashed", f"{'yes' if r['crashed'] else 'no'} (exit code {r['node_exit_code']} after SIGINT)"),
        ("input pairs / processed / dropped (superseded + stale) / pairing misses",
         f"{r['inputs']} / {r['processed']} / {r['dropped']} ({r['dropped_superseded']} + {r['dropped_stale']}) / "
         f"{r['pairing_misses']}"),
        ("every frame accounted for", f"{'yes' if r['accounted'] else 'NO'} ({r['accounting_line']})"),
        ("RSS after warm-up -> at the end (medians of the first / last 10 one-second samples; max)",
         f"{g('rss_after_warmup_mb'):.1f} -> {g('rss_end_mb'):.1f} MB ({g('rss_max_after_warmup_mb'):.1f} MB)"),
        ("RSS growth after warm-up (limit 50 MB)",
         f"{g('growth_mb'):+.1f} MB (max {g('max_growth_mb'):+.1f} MB; linear trend {g('slope_mb_per_min'):+.2f} "
         "MB/min)"),
        ("RSS at start / peak during warm-up", f"{g('rss_start_mb'):.1f} / {g('rss_peak_during_warmup_mb'):.1f} MB"),
        ("node CPU after warm-up (mean, 100 % = one core)", f"{g('cpu_mean_percent'):.0f} %"),
        ("input rate / output rate",
         f"{r['input_rate_hz']:.2f} / {r['throughput_hz']:.2f} Hz over {r['play_s']:.0f} s"),
        ("end-to-end latency p50 / p95 / p99 (max)",
         f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms ({lat['max']:.0f} ms)"),
        ("node stages p50 / p95: fuse, detect, publish, callback->published",
         f"{stage('fuse')}, {stage('detect')}, {stage('publish')}, {stage('end_to_end')} ms"),
    ]
    body = [BEGIN, "", f"Command: `{r['command']}` ({r['date']}, {r['machine']}; detector {r['detector']}).", "",
            "| measure | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], "", END]
    text = DOC.read_text() if DOC.exists() else "# Replaying bags through the node\n\n## Soak\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + "\n".join(body) + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Soak\n\n" + "\n".join(body) + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
