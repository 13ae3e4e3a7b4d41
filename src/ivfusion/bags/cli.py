"""``ivfusion bag``: make camera-like bags from a pairs folder, replay bags through the real node, report.

    ivfusion bag from-pairs PAIRS_DIR OUT_BAG [--frames N] [--rate HZ] [--thermal-rate HZ] ...
    ivfusion bag replay BAG [--out DIR] [--speed X] [--weights W] ...
    ivfusion bag report OUT_DIR          (rebuild report.md/json and plots from a finished replay)

See docs/replay.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivfusion.errors import IvfusionError


def _from_pairs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("from-pairs", help="write a camera-like bag from a pairs folder (ir/ + vi/)",
                       description="Write a rosbag2 bag of thermal + RGB sensor_msgs/Image from a pairs folder, "
                                   "looping it to --frames, with per-stream rates, clock offset, stamp jitter and "
                                   "drops; writes OUT_BAG/ivfusion_frames.json (source stem of every frame).")
    p.add_argument("pairs_dir", type=Path)
    p.add_argument("out_bag", type=Path)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--frames", type=int, help="RGB frames to write (loops the folder); default: one pass")
    p.add_argument("--rate", type=float, default=10.0, help="RGB rate [Hz] (default 10)")
    p.add_argument("--thermal-rate", type=float, help="thermal rate [Hz] (default: --rate)")
    p.add_argument("--clock-offset-ms", type=float, default=0.0, help="thermal stamps minus RGB stamps [ms]")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="gaussian std of header stamps, per stream [ms]")
    p.add_argument("--drop", type=float, default=0.0, help="probability each message is dropped, per stream")
    p.add_argument("--mono16", action="store_true", help="thermal as 16-bit counts (7000 + 8*v + noise)")
    p.add_argument("--thermal-size", help="resize thermal to WIDTHxHEIGHT, e.g. 640x512")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--thermal-topic", default="/thermal/image_raw")
    p.add_argument("--rgb-topic", default="/rgb/image_raw")
    p.add_argument("--thermal-frame-id", default="thermal_optical_frame")
    p.add_argument("--rgb-frame-id", default="rgb_optical_frame")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _replay_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a bag through the real node process and report",
                       description="Start `ivfusion node` in its own process, publish the bag's thermal/RGB "
                                   "messages at the recorded timing / --speed, record fused/image, detections "
                                   "and /diagnostics to OUT/outputs (MCAP), and write OUT/report.md, "
                                   "OUT/report.json and plots.")
    p.add_argument("bag", type=Path)
    p.add_argument("--out", type=Path, help="output folder (default outputs/replay/<bag name>)")
    p.add_argument("--thermal-topic", help="default: the sidecar's, else /thermal/image_raw")
    p.add_argument("--rgb-topic", help="default: the sidecar's, else /rgb/image_raw")
    p.add_argument("--speed", type=float, default=1.0,
                   help="1 = recorded rate, 2 = twice as fast, 0 = as fast as possible with flow control")
    p.add_argument("--params-file", type=Path, help="node parameters YAML")
    p.add_argument("--preference", help="override the node's preference")
    p.add_argument("--weights", help="override detector.weights")
    p.add_argument("--labels-root", type=Path, help="pairs folder with labels/ (default: from the sidecar)")
    p.add_argument("--max-frames", type=int, help="replay at most N RGB frames")
    p.add_argument("--timeout", type=float, default=2.0, help="speed 0: longest wait for one output [s]")
    p.add_argument("--no-record-images", action="store_true",
                   help="time fused images but do not write them to the outputs bag (long runs)")
    p.add_argument("--no-metrics", action="store_true", help="skip per-frame fusion metrics")
    p.add_argument("--metrics-every", type=int, default=1, help="fusion metrics on every k-th fused frame")
    p.add_argument("--stock-dds", action="store_true",
                   help="no large shared-memory segment for the replay's publishers (see docs/replay.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild the report of a finished replay folder")
    p.add_argument("out", type=Path)
    p.add_argument("--labels-root", type=Path)
    p.add_argument("--no-metrics", action="store_true")
    p.add_argument("--metrics-every", type=int, default=1)
    p.add_argument("--quiet", action="store_true")


def _run_from_pairs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ivfusion.bags.frompairs import FromPairsOptions, from_pairs, parse_size
    from ivfusion.bags.sidecar import sidecar_path

    opts = FromPairsOptions(
        frames=args.frames, rate=args.rate, thermal_rate=args.thermal_rate, clock_offset_ms=args.clock_offset_ms,
        jitter_ms=args.jitter_ms, drop=args.drop, mono16=args.mono16,
        thermal_size=parse_size(args.thermal_size) if args.thermal_size else None, seed=args.seed,
        storage=args.storage, thermal_topic=args.thermal_topic, rgb_topic=args.rgb_topic,
        thermal_frame_id=args.thermal_frame_id, rgb_frame_id=args.rgb_frame_id)

    def progress(it, total):  # noqa: ANN001, ANN202
        return tqdm(it, total=total, desc="writing", unit="msg", disable=args.quiet)

    sidecar = from_pairs(args.pairs_dir, args.out_bag, opts, progress=progress)
    print(f"wrote {args.out_bag}: {len(sidecar.thermal_frames)} thermal + {len(sidecar.frames)} RGB messages "
          f"({args.storage}), sidecar {sidecar_path(args.out_bag)}")
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    from ivfusion.bags.replay import ReplayOptions, run_replay
    from ivfusion.bags.report import build_report

    out = args.out or Path("outputs") / "replay" / args.bag.resolve().name
    opts = ReplayOptions(
        bag=args.bag, out=out, thermal_topic=args.thermal_topic, rgb_topic=args.rgb_topic, speed=args.speed,
        params_file=args.params_file, preference=args.preference, weights=args.weights,
        labels_root=args.labels_root, max_frames=args.max_frames, timeout_s=args.timeout,
        record_images=not args.no_record_images, metrics=not args.no_metrics, metrics_every=args.metrics_every,
        progress=not args.quiet, stock_dds=args.stock_dds)
    facts = run_replay(opts)
    report = build_report(out, labels_root=args.labels_root, metrics=opts.metrics,
                          metrics_every=args.metrics_every, progress=not args.quiet)
    print(report["summary_text"])
    print(f"report: {out / 'report.md'}")
    for err in facts.get("errors", []):
        print(f"error: {err}", file=sys.stderr)
    return 1 if facts.get("errors") or not report["accounting"]["ok"] else 0


def _run_report(args: argparse.Namespace) -> int:
    from ivfusion.bags.report import build_report

    report = build_report(args.out, labels_root=args.labels_root, metrics=not args.no_metrics,
                          metrics_every=args.metrics_every, progress=not args.quiet)
    print(report["summary_text"])
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ivfusion bag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _from_pairs_parser(sub)
    _replay_parser(sub)
    _report_parser(sub)
    args = parser.parse_args(argv)
    try:
        return {"from-pairs": _run_from_pairs, "replay": _run_replay, "report": _run_report}[args.command](args)
    except IvfusionError as exc:
        print(f"ivfusion bag {args.command}: {exc}", file=sys.stderr)
        return 2
