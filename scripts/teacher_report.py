"""Measure the teacher (docs/teacher.md): property grid, per-code metric shifts, PALDM vs PCLDM, MSRS mAP.

    .venv/bin/python scripts/teacher_report.py grid    --model outputs/train/paldm/final
    .venv/bin/python scripts/teacher_report.py codes   --model outputs/train/paldm/final --limit 34
    .venv/bin/python scripts/teacher_report.py compare --idpo-config config/train/idpo.yaml \
        --pcldm outputs/train/idpo/final
    .venv/bin/python scripts/teacher_report.py map --paldm outputs/train/paldm/final --pcldm outputs/train/idpo/final
    .venv/bin/python scripts/teacher_report.py pool outputs/teacher/idpo_v5_f0 outputs/teacher/idpo_v5_f1 --out DIR
    .venv/bin/python scripts/teacher_report.py frames --paldm outputs/train/paldm/final \
        --pcldm-folds outputs/train/idpo_v9_f0/final outputs/train/idpo_v9_f1/final --stems 00001D --out docs/img

Everything is written under ``--out`` (outputs/teacher); held-out data: RoadScene's pinned ``val`` split for
grid and codes (never trained on), held-out IDPO instances for ``compare``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch


def _prior(model_dir: str):
    import yaml

    from ivfusion.teacher.properties import PriorConfig

    cfg_file = Path(model_dir).parent / "train_config.yaml"
    raw = (yaml.safe_load(cfg_file.read_text()) or {}).get("prior") if cfg_file.exists() else None
    return PriorConfig.from_dict(raw)


def _val_crops(size: int, limit: int | None, dataset: str = "roadscene") -> list[tuple[str, np.ndarray, np.ndarray]]:
    from ivfusion.evaluation.datasets import open_dataset
    from ivfusion.teacher.evaluate import center_crop

    ds = open_dataset(dataset, split="val")
    out = []
    for stem in ds.stems[:limit]:
        s = ds.folder.load(stem)
        y = cv2.cvtColor(s.rgb, cv2.COLOR_RGB2GRAY)
        out.append((stem, center_crop(s.thermal, size), center_crop(y, size)))
    return out


def cmd_grid(args) -> None:
    from ivfusion.teacher.evaluate import property_grid
    from ivfusion.teacher.paldm import PALDM

    model = PALDM.from_pretrained(args.model)
    crops = _val_crops(args.size, None)
    pick = [crops[i] for i in np.linspace(0, len(crops) - 1, args.rows).round().astype(int)]
    grid = property_grid(model, pick, steps=args.steps, tile=args.tile, prior=_prior(args.model))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "paldm_property_grid.png"), grid)
    small = cv2.resize(grid, (grid.shape[1] * 2 // 3, grid.shape[0] * 2 // 3), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / "paldm_property_grid_small.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"wrote {out / 'paldm_property_grid.png'} {grid.shape}")


def cmd_codes(args) -> None:
    from ivfusion.teacher.evaluate import code_metrics
    from ivfusion.teacher.paldm import PALDM

    model = PALDM.from_pretrained(args.model)
    crops = [(t, y) for _, t, y in _val_crops(args.size, args.limit)]
    res = code_metrics(model, crops, _prior(args.model), steps=args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}_codes.json").write_text(json.dumps(res, indent=2))
    cols = ["code_accuracy", "L1_own_target", "corr_T", "prior_corr_T", "corr_V", "SD", "prior_SD", "SF", "prior_SF",
            "MI", "VIF", "Qabf"]
    print("| code | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 1) + "|")
    for code, r in res.items():
        print(f"| {code} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")


def _idpo_setup(args):
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.train import IDPO_SECTIONS, embedder, load_config, prepare_preferences

    cfg = load_config(args.idpo_config, IDPO_SECTIONS)
    paldm = PALDM.from_pretrained(cfg["init_from"])
    prefs = prepare_preferences(cfg, paldm, progress=False)
    embed = embedder(cfg["data"].get("text_encoder", "minilm"), paldm.text_dim)
    return cfg, paldm, prefs, embed


def cmd_compare(args) -> None:
    from ivfusion.teacher.adapters import load_teacher
    from ivfusion.teacher.evaluate import compare_on_instances
    from ivfusion.teacher.oracles import DetectionOracle, TextOracle, VisualOracle

    cfg, paldm, prefs, embed = _idpo_setup(args)
    pcldm = load_teacher(args.pcldm)  # a PCLDM run or an adapter folder (models/teacher/pcldm)
    rows = [p for p in prefs["pairs"] if p["held_out"]]
    texts = sorted({p["text"] for p in rows})
    embeddings = dict(zip(texts, embed(texts)))
    oc = cfg.get("oracles") or {}
    oracles = {"detection": DetectionOracle(**(oc.get("detection") or {})),
               "visual": VisualOracle(**(oc.get("visual") or {}))}
    text_codes = {}
    if "text" in oc:
        t = TextOracle(oc["text"]["prompts"], embed)
        text_codes = {p: t.code_for(i)[0] for i, p in enumerate(t.prompts)}
    samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    res = compare_on_instances(paldm, pcldm, prefs, rows, embeddings, steps=args.steps, oracles=oracles,
                               prior=_prior(cfg["init_from"]), text_codes=text_codes, samples=samples)
    res["text_prompt_codes"] = dict(text_codes)
    _before_after_grid(prefs, rows, samples, Path(args.out) / "idpo_before_after.png")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "idpo_compare.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


def _before_after_grid(prefs, rows, samples, path: Path, per_oracle: int = 3) -> None:
    """Held-out instances: IR | VI | PALDM (standard code) | PCLDM (standard code + preference), box drawn;
    ``samples`` are compare_on_instances' (before, after) images per index into ``rows``."""
    from ivfusion.teacher.data import instance_patch
    from ivfusion.teacher.evaluate import _label

    lines = []
    for oracle in sorted({r["oracle"] for r in rows}):
        for i in [i for i, r in enumerate(rows) if r["oracle"] == oracle][:per_oracle]:
            inst = prefs["instances"][rows[i]["instance"]]
            t, y = instance_patch(prefs["images"], inst, prefs["patch"])
            before, after = samples[i]
            tiles = []
            for img, label in ((t, f"IR ({oracle})"), (y, "VI"), (before, "PALDM"), (after, "PCLDM")):
                tile = _label(img, label)
                for x1, y1, x2, y2 in inst.judged(oracle):
                    cv2.rectangle(tile, (x1, y1), (x2 - 1, y2 - 1), (0, 200, 255), 1)
                tiles.append(tile)
            lines.append(np.concatenate(tiles, axis=1))
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.concatenate(lines, axis=0))


def cmd_pool(args) -> None:
    """Instance-weighted means of several ``compare`` results (the cross-fitted folds' held-out instances)."""
    parts = [json.loads((Path(d) / "idpo_compare.json").read_text()) for d in args.folds]
    pooled: dict[str, dict[str, float]] = {}
    for oracle in sorted({o for part in parts for o, v in part.items() if isinstance(v, dict) and "instances" in v}):
        rows = [part[oracle] for part in parts if oracle in part and part[oracle]["instances"]]
        n = sum(r["instances"] for r in rows)
        keys = [k for k in rows[0] if k != "instances"]
        pooled[oracle] = {"instances": n, **{k: sum(r[k] * r["instances"] for r in rows) / n for k in keys}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "idpo_compare.json").write_text(json.dumps(pooled, indent=2))
    print(json.dumps(pooled, indent=2))


def cmd_map(args) -> None:
    from ivfusion.evaluation.datasets import open_dataset
    from ivfusion.evaluation.report import save_json, summary
    from ivfusion.evaluation.runner import evaluate

    if args.pool and (len(args.preferences) != 1 or len(args.codes) != 1 or not args.bootstrap):
        raise SystemExit("--pool compares runs of one recipe with one PALDM: give one --preferences, one --codes "
                         "and --bootstrap")
    ds = open_dataset("msrs", split="all", limit=args.limit)
    if args.fold is not None:  # the frames of one cross-fitting fold only
        from dataclasses import replace

        from ivfusion.teacher.data import fold_of

        ds = replace(ds, stems=tuple(s for s in ds.stems if fold_of(f"msrs/{s}", args.folds) == args.fold))
    methods, groups = _teacher_methods(args)  # models and preset embeddings loaded once, for every seed
    # one evaluation per noise seed: the same methods, the same frames, another draw of the sampler's noise
    results = [evaluate(ds, [m.reseeded(s) for m in methods], metrics=True, detection=True) for s in args.seeds]
    out = summary(results[0]) if len(results) == 1 else {
        "seeds": args.seeds, "per_seed": {str(s): summary(r) for s, r in zip(args.seeds, results)}}
    if args.bootstrap:  # each teacher against the first method (the PALDM), paired over the same frames
        from ivfusion.evaluation.bootstrap import bootstrap_pairs, paired_metric_bootstrap

        pairs = [(i, 0) for i in range(1, len(results[0].methods))]
        by_labels = {} if args.metrics_only else {
            labels: bootstrap_pairs(results, ds.folder, list(ds.stems), pairs, labels=labels, n=args.bootstrap)
            for labels in ("fused", "union")}
        out["bootstrap_vs_first"] = []
        for k in range(len(pairs) if by_labels else 0):
            out["bootstrap_vs_first"] += _report_differences([by_labels["fused"][k], by_labels["union"][k]])
        out["metrics_vs_first"] = paired_metric_bootstrap(results, pairs, n=args.bootstrap)
        _print_metric_rows(out["metrics_vs_first"])
        if args.pool:  # the runs after the PALDM as replicates of one recipe: its pooled gain over the PALDM
            from ivfusion.evaluation.bootstrap import pool_runs

            pooled = pool_runs(results, 0, [i for i, _ in pairs], args.pool)
            out["pooled_vs_first"] = [] if args.metrics_only else _map_differences(
                pooled, ds, [(1, 0)], args.bootstrap, prefix="pooled: ")
            out["pooled_metrics_vs_first"] = paired_metric_bootstrap(pooled, [(1, 0)], n=args.bootstrap)
            _print_metric_rows(out["pooled_metrics_vs_first"])
        switch = [(i, g[0]) for g in groups for i in g[1:]]
        if switch:  # the preference switch: each run's other preferences against its first, same frames and noise
            out["switch_metrics"] = paired_metric_bootstrap(results, switch, n=args.bootstrap)
            _print_metric_rows(out["switch_metrics"])
            out["switch_map"] = [] if args.metrics_only else _map_differences(
                results, ds, switch, args.bootstrap, prefix="switch: ")
    save_json(out, Path(args.out) / f"msrs_map_{args.tag}.json")


def _map_differences(results, ds, pairs: list[tuple[int, int]], n: int, prefix: str) -> list[dict]:
    """The paired mAP@0.5 bootstrap of ``pairs`` on the fused, then the union labels, printed and as JSON rows."""
    from ivfusion.evaluation.bootstrap import bootstrap_pairs

    return _report_differences([d for labels in ("fused", "union")
                                for d in bootstrap_pairs(results, ds.folder, list(ds.stems), pairs, labels=labels,
                                                         n=n)], prefix=prefix)


def _report_differences(diffs: list, prefix: str = "") -> list[dict]:
    """Print each mAP bootstrap result and return it as JSON rows."""
    for d in diffs:
        print(prefix + d.line())
    return [{**d.__dict__, "diff": d.diff} for d in diffs]


def _print_metric_rows(rows: list[dict]) -> None:
    for row in rows:
        print(f"{row['a']} - {row['b']}: {row['metric']:>4} {row['diff']:+.4f} [{row['low']:+.4f}, "
              f"{row['high']:+.4f}], frames above {row['frames_a_above']:.2f}")


def _teacher_methods(args) -> tuple[list, list[list[int]]]:
    """PALDM (``--paldm``, per ``--codes``) and each ``--pcldm`` / cross-fitted ``--pcldm-folds`` run per
    ``--guidance`` and ``--preferences``, as ``ivfusion eval`` methods with unique names (the summary is keyed by
    name); and the switch groups: per run and guidance, its methods' indices in ``--preferences`` order. With
    ``--frame-cache`` each method's frames are kept on disk under a key of its weights and settings."""
    from ivfusion.fusion.preference import PRESETS
    from ivfusion.teacher.adapters import load_teacher
    from ivfusion.teacher.data import fingerprint
    from ivfusion.teacher.evaluate import CachedFrames, CrossFitted, TeacherMethod, preset_embeddings, run_name
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.properties import ALL_CODES

    methods, groups = [], []

    def cached(method, dirs: list[str], **settings):  # the key: weights, settings, dataset; the seed names the folder
        return method if not args.frame_cache else CachedFrames(method, Path(args.frame_cache), fingerprint(
            *dirs, dataset="msrs", steps=args.steps, kind="TeacherMethod", **settings))

    if args.paldm:
        paldm = PALDM.from_pretrained(args.paldm)
        methods += [cached(TeacherMethod(paldm, f"PALDM/{ALL_CODES[c].name}", code=c, steps=args.steps), [args.paldm],
                           code=c) for c in args.codes]
    negative = _negatives(args)  # preference -> the preset it is guided away from (None: the zero embedding)
    emb = preset_embeddings(sorted({*args.preferences, *filter(None, negative.values())})) \
        if args.pcldm or args.pcldm_folds else {}

    def add(make) -> None:  # make(preference, guidance, negative embedding, suffix, wrap) -> one method
        for w in args.guidance:  # one switch group per guidance
            groups.append(list(range(len(methods), len(methods) + len(args.preferences))))
            for p in args.preferences:
                n = negative[p] if w != 1.0 else None  # at guidance 1 the negative changes nothing
                suffix = "" if w == 1.0 else f" (guidance {w:g}{f' away from {n}' if n else ''})"
                key = {"preference": [p, PRESETS[p]], "guidance": w, **({"negative": [n, PRESETS[n]]} if n else {})}
                methods.append(make(p, w, n and emb[n], suffix, lambda m, d, key=key: cached(m, [d], **key)))

    if args.pcldm:
        pcldm = load_teacher(args.pcldm)
        add(lambda p, w, neg, suffix, wrap: wrap(TeacherMethod(pcldm, f"PCLDM/{p}{suffix}", emb[p], steps=args.steps,
                                                               guidance=w, negative=neg), args.pcldm))
    for dirs in args.pcldm_folds or []:  # cross-fitted: frame of fold k fused by run k (the one that held k out)
        folds = [load_teacher(d) for d in dirs]
        run = re.sub(r"_f\d+(?=_|$)", "", run_name(dirs[0]))  # reward_g_f0_s1 -> reward_g_s1, idpo_v5_f0 -> idpo_v5
        # each fold's frames are cached under its own run's key: the same frames as `--pcldm <that run>`, so a
        # fold's frames can be made (--fold k) while the other fold still trains
        add(lambda p, w, neg, suffix, wrap, folds=folds, dirs=dirs, run=run: CrossFitted(
            [wrap(TeacherMethod(m, f"PCLDM/{p}/fold{k}", emb[p], steps=args.steps, guidance=w, negative=neg), d)
             for k, (m, d) in enumerate(zip(folds, dirs))], f"PCLDM {run}/{p}{suffix} (cross-fitted)"))
    names = [m.name for m in methods]
    if len(set(names)) < len(names):
        raise SystemExit(f"two methods would share a name: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return methods, groups


def _negatives(args) -> dict[str, str | None]:
    """``--negative``: each preference's preset to guide away from; ``other``: with two preferences, each the other."""
    neg = args.negative
    if not neg:
        return dict.fromkeys(args.preferences)
    if all(w == 1.0 for w in args.guidance):
        raise SystemExit("--negative changes nothing at guidance 1: give --guidance other than 1")
    if neg == "other":
        if len(args.preferences) != 2:
            raise SystemExit("--negative other: give exactly two --preferences, each guided away from the other")
        a, b = args.preferences
        return {a: b, b: a}
    if neg in args.preferences:
        raise SystemExit(f"--negative {neg}: a preference cannot be guided away from itself; use --negative other")
    return dict.fromkeys(args.preferences, neg)


def cmd_frames(args) -> None:
    """Whole MSRS frames, one row each: IR | VI | every method's fused frame, with the shared detector's boxes
    (conf 0.25, the node's default) drawn on the fused ones, so a reader sees what a change in mAP looks like."""
    from ivfusion.detection import Detector, DetectorConfig
    from ivfusion.detection.draw import draw_detections
    from ivfusion.evaluation.datasets import open_dataset
    from ivfusion.teacher.evaluate import _label

    ds, (methods, _) = open_dataset("msrs", split="all"), _teacher_methods(args)
    detector, rows = Detector(DetectorConfig()), []
    for stem in args.stems:
        sample = ds.folder.load(stem)
        tiles = [(cv2.cvtColor(sample.thermal, cv2.COLOR_GRAY2BGR), f"{stem} IR"), (sample.bgr, "VI")]
        for m in methods:
            fused = m.fuse(sample)
            tiles.append((draw_detections(fused, detector.detect(fused)), m.name))
        small = [cv2.resize(t, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA) for t, _ in tiles]
        rows.append(np.concatenate([_label(t, name) for t, (_, name) in zip(small, tiles)], axis=1))
    out = Path(args.out) / args.name
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out}")


def cmd_speed(args) -> None:
    """Median wall time of one 640x512 frame: teacher (DDIM steps) vs student (PyTorch), same threads / device."""
    from ivfusion.models.student import StudentFusionNet
    from ivfusion.runtime.stats import time_calls_ms
    from ivfusion.teacher.adapters import load_teacher

    dev = torch.device(args.device)
    teacher = load_teacher(args.model).to(dev)  # a PALDM or an adapter folder (models/teacher/pcldm): same network
    student = StudentFusionNet.from_pretrained("models/student").eval().to(dev)
    t, rgb = torch.rand(1, 1, 512, 640, device=dev), torch.rand(1, 3, 512, 640, device=dev)
    pref = student.preset("balanced").to(dev)

    def median_ms(fn, runs: int) -> float:
        def synced():  # CUDA runs asynchronously: time until the result exists
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        return float(np.median(time_calls_ms(synced, runs)))

    with torch.no_grad():
        res = {"threads": args.threads, "frame": "640x512", "device": str(dev) if dev.type == "cpu"
               else torch.cuda.get_device_name(dev)}
        # no preference, then an adapter teacher under each preset: its guidance (detection's 3) doubles the
        # network's passes per step
        presets = [("", None)] + [(f"{name}_", teacher.embeddings[k:k + 1].to(dev))
                                  for k, name in enumerate(getattr(teacher, "names", ()))]
        for prefix, emb in presets:
            for steps in args.steps_list:
                res[f"teacher_{prefix}{steps}_steps_ms"] = median_ms(
                    lambda: teacher.sample(t, t, 4, emb, steps=steps), args.runs)
        res["student_pytorch_ms"] = median_ms(lambda: student(t, rgb, pref), 20)
    for steps in args.steps_list:
        res[f"ratio_{steps}_steps"] = res[f"teacher_{steps}_steps_ms"] / res["student_pytorch_ms"]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "speed.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--model", required=True)
    g.add_argument("--rows", type=int, default=3)
    g.add_argument("--size", type=int, default=192)
    g.add_argument("--tile", type=int, default=128)
    g.add_argument("--steps", type=int, default=10)
    c = sub.add_parser("codes")
    c.add_argument("--model", required=True)
    c.add_argument("--name", default="paldm")
    c.add_argument("--size", type=int, default=128)
    c.add_argument("--limit", type=int, default=34)
    c.add_argument("--steps", type=int, default=10)
    k = sub.add_parser("compare")
    k.add_argument("--idpo-config", required=True)
    k.add_argument("--pcldm", required=True)
    k.add_argument("--steps", type=int, default=8)
    pl = sub.add_parser("pool")
    pl.add_argument("folds", nargs="+", help="compare --out folders")
    m = sub.add_parser("map")
    fr = sub.add_parser("frames")
    fr.add_argument("--stems", nargs="+", required=True, help="MSRS frames, e.g. 00001D 00003N")
    fr.add_argument("--scale", type=float, default=0.5, help="tile scale in the grid")
    fr.add_argument("--name", default="teacher_frames.jpg", help="file name under --out")
    for q in (m, fr):  # the teacher methods both evaluate
        q.add_argument("--paldm")
        q.add_argument("--pcldm")
        q.add_argument("--pcldm-folds", nargs="+", action="append",
                       help="cross-fitted PCLDM runs, fold 0 first (idpo_v5_f0/final idpo_v5_f1/final); repeatable")
        q.add_argument("--codes", type=int, nargs="+", default=[4], help="PALDM property codes (0-8; 4 = standard)")
        q.add_argument("--preferences", nargs="+", default=["detection", "visual"])
        q.add_argument("--steps", type=int, default=5)
        q.add_argument("--guidance", type=float, nargs="+", default=[1.0],
                       help="classifier-free guidance on the preference for the PCLDM methods (1 = none); "
                            "several: each PCLDM run once per value")
        q.add_argument("--negative", metavar="PRESET",
                       help="guide each preference away from this preset's embedding instead of the zero one (a "
                            "negative prompt; needs --guidance other than 1); 'other': with two --preferences, "
                            "each away from the other")
        q.add_argument("--frame-cache", default="outputs/teacher/frames", metavar="DIR",
                       help="keep every teacher method's fused frames here, keyed by its weights and settings, and "
                            "read them back in later runs ('' = off)")
    m.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="paired bootstrap (N draws) of each method's mAP@0.5 against the first one's")
    m.add_argument("--metrics-only", action="store_true",
                   help="with --bootstrap: the fusion metrics' paired bootstrap only, not mAP's "
                        "(the visual preference)")
    m.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="noise seeds: one evaluation each; the bootstrap pools them per frame")
    m.add_argument("--pool", metavar="NAME",
                   help="with --bootstrap: the runs after the PALDM are independent runs of one recipe; also report "
                        "their pooled gain over the PALDM (one preference, one PALDM code)")
    m.add_argument("--tag", default="teacher")
    m.add_argument("--limit", type=int)
    m.add_argument("--fold", type=int, metavar="K",
                   help="only the frames of cross-fitting fold K of --folds (with --frame-cache: make one fold's "
                        "frames while the other fold's run still trains)")
    m.add_argument("--folds", type=int, default=2)
    sp = sub.add_parser("speed")
    sp.add_argument("--model", required=True)
    sp.add_argument("--steps-list", type=int, nargs="+", default=[1, 8])
    sp.add_argument("--runs", type=int, default=3)
    sp.add_argument("--device", default="cpu", help="cpu or cuda (float32 both)")
    for p in (g, c, k, pl, m, fr, sp):
        p.add_argument("--out", default="outputs/teacher")
        p.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"grid": cmd_grid, "codes": cmd_codes, "compare": cmd_compare, "pool": cmd_pool, "map": cmd_map,
     "frames": cmd_frames, "speed": cmd_speed}[args.cmd](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
