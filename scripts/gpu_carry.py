"""Pack what a lent GPU machine needs to train the renderer, within what one call receives.

    .venv/bin/python scripts/gpu_carry.py --avatars work/base/avatars/* [--exclude LivePortrait__d6] \\
        [--every 3] [--layers 3] [--budget-mib 50] --out .carry/train

A lent machine gets 64 MiB per call (repository included, about 12 MiB) and has neither
mediapipe nor the `stlpips-pytorch` wheel. This writes OUT/packs/NAME-256.npz (each
avatar's render pack with every --every-th frame, compressed) and OUT/stlpips.pt (the
first --layers blocks of the ST-LPIPS VGG weights, made from the installed wheel; never
commit it), and says whether they fit --budget-mib. There (a frame-stage run; thinned
packs refuse the clip stage):

    DHLIVE_STLPIPS_WEIGHTS=.carry/train/stlpips.pt python3 -m dhlive.cli train-render \\
        --avatars .carry/train/packs/*.npz --init checkpoints/render_fast.pt \\
        --mouth checkpoints/audio/pca.pkl --holdout 0 --config configs/render_gpu_call.yaml \\
        --out /tmp/base --device cuda --quiet && cp /tmp/base/render_model.pt /tmp/base/log.csv $OUT/

(training imports neither PyAV nor mediapipe).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from dhlive.train.packs import ensure_pack, thin_pack
from dhlive.train.perceptual import export_weights

RESOLUTION = 256


def avatar_name(path: Path) -> str:
    return path.stem.rsplit("-", 1)[0] if path.suffix == ".npz" else path.name  # packs are NAME-SIZE.npz


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--avatars", nargs="+", required=True, help="avatar folders or render packs (.npz)")
    ap.add_argument(
        "--exclude", nargs="*", default=[], help="avatar names to leave out (e.g. a report's held-out clip)"
    )
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--layers", type=int, default=3, help="ST-LPIPS blocks (the config's perceptual_layers)")
    ap.add_argument("--budget-mib", type=float, default=50.0)
    ap.add_argument(
        "--cache", type=Path, default=Path("work/packs"), help="where full packs of avatar folders are cached"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    (args.out / "packs").mkdir(parents=True, exist_ok=True)
    total = export_weights(args.out / "stlpips.pt", args.layers).stat().st_size
    sources = [Path(a) for a in args.avatars if avatar_name(Path(a)) not in args.exclude]
    for src in tqdm(sources, desc="packs", unit="avatar"):
        pack = ensure_pack(src, RESOLUTION, args.cache, progress=False)
        name = pack.name if src.suffix == ".npz" else f"{src.name}-{RESOLUTION}.npz"
        total += thin_pack(pack, args.out / "packs" / name, args.every).stat().st_size
    mib = total / 2**20
    print(
        f"{args.out}: {len(sources)} packs (1 frame in {args.every}) + ST-LPIPS {args.layers} blocks = {mib:.1f} MiB "
        f"({'within' if mib <= args.budget_mib else 'OVER'} the {args.budget_mib:g} MiB budget)"
    )
    if mib > args.budget_mib:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
