"""Check a ``PreferenceAdapters`` folder against the runs it was built from, and print its routing.

    python scripts/teacher_adapters_check.py outputs/train/pcldm_adapters_f0 [--text "keep pedestrians bright" ...]
    python scripts/teacher_adapters_check.py models/teacher/pcldm --against outputs/train/pcldm_adapters_f0 --frames 4

For each adapter: the largest grey-level difference between the bundle under that preset and the source run
sampled alone at the adapter's guidance (same 128-px random crop, noise and DDIM steps); then the mixing weights of
every preset and of each ``--text``. Why: the bundle's results are its source runs' results only if these agree.
``--against`` compares two bundles of the same runs (e.g. int8 deltas linked to the base vs the float32 bundle) on
the first ``--frames`` full MSRS frames: max and mean grey-level difference per preset.
"""

from __future__ import annotations

import argparse

import torch


def _low_rank_residual(delta: dict[str, torch.Tensor], rank: int) -> float:
    """The relative Frobenius norm a rank-``rank`` SVD leaves out, over the matrices large enough to factor: how
    much a LoRA of that rank would drop."""
    total = left = 0.0
    for value in delta.values():
        if value.dim() < 2 or min(value.shape[0], value[0].numel()) <= rank:
            continue
        s = torch.linalg.svdvals(value.double().reshape(value.shape[0], -1))
        total += float(s.pow(2).sum())
        left += float(s[rank:].pow(2).sum())
    return (left / total) ** 0.5 if total else 0.0


def _compare_on_frames(bundle, other, emb: dict[str, torch.Tensor], frames: int, steps: int) -> None:
    """Per preset, the grey-level difference between two bundles' samples of full MSRS frames (same noise)."""
    import cv2

    from ivfusion.evaluation.datasets import open_dataset
    from ivfusion.teacher.data import to_tensor

    ds = open_dataset("msrs", split="all", limit=frames)
    for spec in bundle.specs:
        pref, worst, mean = emb[spec.name].view(1, -1), 0.0, 0.0
        for stem in ds.stems:
            s = ds.folder.load(stem)
            t = to_tensor(s.thermal).unsqueeze(0)
            v = to_tensor(cv2.cvtColor(s.rgb, cv2.COLOR_RGB2GRAY)).unsqueeze(0)
            a, b = (m.sample(t, v, preference=pref, steps=steps, generator=torch.Generator().manual_seed(0))
                    for m in (bundle, other))
            worst, mean = max(worst, (a - b).abs().max().item() * 255), mean + (a - b).abs().mean().item() * 255
        print(f"{spec.name}: vs the other bundle on {len(ds.stems)} MSRS frames ({steps} DDIM steps): "
              f"max difference {worst:.3g}, mean {mean / len(ds.stems):.3g} grey levels")


def main() -> int:
    from ivfusion.fusion.preference import PRESETS
    from ivfusion.teacher.adapters import PreferenceAdapters
    from ivfusion.teacher.evaluate import preset_embeddings
    from ivfusion.teacher.paldm import PALDM
    from ivfusion.teacher.train import embedder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--text", action="append", default=[], help="free-text preferences to route")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--against", help="another bundle of the same runs, compared on full MSRS frames")
    p.add_argument("--frames", type=int, default=4, help="how many MSRS frames --against uses")
    args = p.parse_args()
    torch.set_num_threads(1)
    bundle = PreferenceAdapters.from_pretrained(args.folder)
    emb = preset_embeddings(sorted(PRESETS))
    if args.against:
        _compare_on_frames(bundle, PreferenceAdapters.from_pretrained(args.against), emb, args.frames, args.steps)
    g = torch.Generator().manual_seed(0)
    t, v = torch.rand(1, 1, 128, 128, generator=g), torch.rand(1, 1, 128, 128, generator=g)
    for spec in bundle.specs:
        pref = emb[spec.name].view(1, -1)
        a = bundle.sample(t, v, preference=pref, steps=args.steps, generator=torch.Generator().manual_seed(3))
        r = PALDM.from_pretrained(spec.source).sample(t, v, preference=pref, steps=args.steps, guidance=spec.guidance,
                                                      generator=torch.Generator().manual_seed(3))
        print(f"{spec.name}: bundle vs {spec.source} at guidance {spec.guidance:g}: "
              f"max difference {(a - r).abs().max().item() * 255:.2g} grey levels")
    for spec, delta in zip(bundle.specs, bundle.deltas):
        print(f"{spec.name}: {_low_rank_residual(delta, 32):.0%} of the delta's norm is beyond rank 32 "
              "(weights of at least 33 rows and columns, conv kernels flattened)")
    texts = dict(emb)
    if args.text:
        texts |= dict(zip(args.text, embedder("minilm", 384)(args.text)))
    for name, e in texts.items():
        print(f"routing {name!r}: " + ", ".join(f"{s.name} {w:.3f}" for s, w in zip(bundle.specs, bundle.routing(e))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
