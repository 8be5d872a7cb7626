"""Train the shipped audio models on every checked talking clip of ../shared/data.

    .venv/bin/python scripts/train_audio.py [--data ../shared/data] [--work work/audio] \\
        [--mouth checkpoints/audio/pca.pkl] [--install checkpoints]

The clips are those scripts/bench_audio.py validates on (`talking/`, `more/talking/` and the
verified clips of `more/talking_doubtful/`, each moved by its offset in scripts/av_offsets.tsv),
all of them, every source. The models predict the coefficients of one mouth PCA, `--mouth`:
by default the shipped one, which the shipped renderer was trained on, so the pair stays
consistent (scripts/train_base.sh fits it on the clips of `talking/`). Two runs, each resumable
(run the script again after a stop): configs/audio.yaml -> WORK/audio and
configs/audio_live.yaml -> WORK/audio_live; with --install, their files are copied into
checkpoints/audio and checkpoints/audio_live (then update checkpoints/SHA256SUMS).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from benchlib import DEFAULT_CACHE, DEFAULT_DATA, REPO, TALKING_DIRS, talking_avatars

from dhlive.config import load_config
from dhlive.formats import AUDIO_MODEL_FILE, MOUTH_PCA_FILE
from dhlive.train.audio import DistillConfig, distill

RUNS = {"audio": "configs/audio.yaml", "audio_live": "configs/audio_live.yaml"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the prepared avatars are kept")
    ap.add_argument("--work", type=Path, default=REPO / "work" / "audio")
    ap.add_argument("--mouth", type=Path, help="mouth PCA to predict [default: the shipped one]")
    ap.add_argument("--install", type=Path, help="copy the finished models into this checkpoints folder")
    ap.add_argument("--stop-at", type=int, help="stop each run after this step (resume by running again)")
    args = ap.parse_args()

    progress = sys.stderr.isatty()
    avatars = talking_avatars(args.data, args.cache, progress, dirs=TALKING_DIRS)
    print(f"{len(avatars)} talking clips")
    mouth = args.mouth or REPO / "checkpoints" / "audio" / MOUTH_PCA_FILE
    if not mouth.exists():
        sys.exit(f"{mouth}: no such mouth PCA (scripts/train_base.sh fits one on the clips of talking/)")
    for name, config in RUNS.items():
        out = args.work / name
        if not (out / AUDIO_MODEL_FILE).exists():  # a finished run is kept
            cfg = load_config(REPO / config, DistillConfig)
            resume = (out / "train_state.pt").exists()
            res = distill(avatars, out, cfg, mouth=mouth, resume=resume, progress=progress, stop_at=args.stop_at)
            if res.get("stopped"):
                sys.exit(f"{out}: stopped at step {res['steps']}; run again to continue")
            print(f"{out}: {res['steps']} steps in {res['seconds']:.0f} s")
        if args.install:
            dest = args.install / name
            dest.mkdir(parents=True, exist_ok=True)
            for f in (AUDIO_MODEL_FILE, MOUTH_PCA_FILE):
                shutil.copyfile(out / f, dest / f)


if __name__ == "__main__":
    main()
