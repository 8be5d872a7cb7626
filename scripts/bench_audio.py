"""Benchmark the audio model on speakers from sources it never heard: folds held out by source,
two baselines on the same folds, silence, streaming cost.

    .venv/bin/python scripts/bench_audio.py [--data ../shared/data] [--json bench_audio.json]
        [--steps N] [--config configs/audio.yaml] [--mouth PCA] [--only SOURCE ...] [--work DIR]

The clips are every real talking clip with sound in ../shared/data (`talking/` and
`more/talking/`, each moved by its checked audio/video offset, scripts/av_offsets.tsv;
clips under 2 s are left out). A clip's source is the repository it came from (the
`REPO__` prefix of its name; SOURCE_ALIASES merges two that hold one corpus). For each
source: train `dhlive distill-audio` (the shipped recipe, configs/audio.yaml, unless --config;
each fold fits its own mouth PCA unless --mouth) on the clips of every other source, less any clip
that shares a recording with a held-out one (`shared_recordings`), and score the
held-out clips: aperture Pearson r against the real video at lag 0 and at the best lag
within +-3 frames, articulation ratio std(gen)/std(real). The same folds fit the two
baselines of `dhlive.audio.baselines` (log-mel ridge, frame energy). Means are over
clips; per-fold means are in the JSON. On each fold's held-out speakers, the share of
frames with the mouth closed (aperture below rest + 10% of its range) during 3 s of
digital silence, faint room noise, the shared 440 Hz sine and synthetic music.
Streaming cost: ms per 40 ms chunk through MouthStream on one CPU thread.
Targets (the audio issue): mean r >= 0.40 and >= 0.10 above the ridge, articulation
0.8-1.2 on every fold, closed >= 98%, <= 2 ms per chunk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import DEFAULT_CACHE, DEFAULT_DATA, REPO, TALKING_DIRS, accepted_avatars, machine, talking_avatars

from dhlive import __version__, media
from dhlive.audio.baselines import energy_baseline, ridge_baseline
from dhlive.audio.clips import load_clip, shared_recordings, source_folds, source_of
from dhlive.audio.evaluate import clip_apertures, silence_check
from dhlive.audio.inference import MouthStream, load_audio_model
from dhlive.config import load_config
from dhlive.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from dhlive.errors import DhliveError
from dhlive.metrics import articulation_ratio, best_lag, pearson
from dhlive.train.audio import DistillConfig, distill

MAX_LAG = 3  # frames either way for the best-lag figure
SOURCE_ALIASES = {"deep_lip_reading": "deep_avsr_LRS2"}  # both are BBC clips of the LRS2 corpus


def non_speech_sounds(data: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 3 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    music = np.zeros(n)
    for k, semis in enumerate([0, 4, 7, 12, 7, 4, 0, -5, 0, 5, 9, 12]):  # an arpeggio, 0.25 s per note
        seg = t[: n // 12]
        f0 = 261.6 * 2 ** (semis / 12)
        tone = sum(np.sin(2 * np.pi * f0 * h * seg) / h**2 for h in range(1, 6)) * np.exp(-3 * seg)
        music[k * len(seg) : (k + 1) * len(seg)] = tone
    sounds = {
        "silence": np.zeros(n, np.float32),
        "room_noise": (rng.standard_normal(n) * 10 ** (-65 / 20)).astype(np.float32),
        "music": (0.3 * music / np.abs(music).max()).astype(np.float32),
    }
    sine = data / "audio" / "MuseTalk__sine_440hz_1s.wav"
    sounds["sine_440hz"] = (
        media.load_audio(sine) if sine.exists() else (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    )
    return sounds


def streaming_cost(model) -> float:
    """Median ms to push one 40 ms chunk through MouthStream on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        audio = (np.random.default_rng(0).standard_normal(SAMPLE_RATE * 8) * 0.1).astype(np.float32)
        stream = MouthStream(model)
        times = []
        for i in range(0, len(audio), SAMPLES_PER_FRAME):
            t0 = time.perf_counter()
            stream.push(audio[i : i + SAMPLES_PER_FRAME])
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times[10:]))
    finally:
        torch.set_num_threads(threads)


def scores(gen: np.ndarray, real: np.ndarray) -> dict:
    lag, r_lag = best_lag(gen, real, MAX_LAG)
    return {
        "r": pearson(gen, real),
        "r_best_lag": r_lag,
        "best_lag": lag,
        "articulation": articulation_ratio(gen, real),
    }


def usable_clips(folders: list[Path]) -> tuple[list[Path], list]:
    """The folders load_clip accepts (with their clips, no images), the others reported and left out."""
    kept, clips = [], []
    for f in folders:
        try:
            clips.append(load_clip(f, with_images=False))
            kept.append(f)
        except DhliveError as e:
            print(f"left out: {e}", file=sys.stderr)
    return kept, clips


def train_fold(run: Path, train: list[Path], cfg: DistillConfig, mouth: Path | None) -> None:
    """Train (or resume, or reuse) the fold's model; a folder trained on other clips is refused."""
    used = run / "training_clips.txt"
    listed = "".join(f"{f.name}\n" for f in train)
    if used.exists() and used.read_text() != listed:
        sys.exit(f"{run}: was trained on other clips than this benchmark now uses; pick another --work")
    if not (run / "audio_model.pt").exists():
        run.mkdir(parents=True, exist_ok=True)
        used.write_text(listed)
        distill(train, run, cfg, resume=True, progress=sys.stderr.isatty(), mouth=mouth)


def mean_of(rows: list[dict], keys=("r", "r_best_lag", "articulation")) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the prepared avatars are kept")
    ap.add_argument("--work", type=Path, default=Path("bench_audio_runs"), help="per-fold checkpoints (resumable)")
    ap.add_argument("--json", type=Path, default=Path("bench_audio.json"))
    ap.add_argument("--steps", type=int, help=f"training steps per fold [default: {DistillConfig.steps}]")
    ap.add_argument(
        "--config", type=Path, default=REPO / "configs" / "audio.yaml", help="distill-audio YAML [the shipped recipe]"
    )
    ap.add_argument("--mouth", type=Path, help="a mouth PCA every fold predicts [default: each fits its own]")
    ap.add_argument("--only", nargs="*", help="held-out sources to run (default: all)")
    ap.add_argument("--baselines-only", action="store_true", help="score the two baselines, train nothing")
    ap.add_argument(
        "--extra-training",
        type=Path,
        help="a list of more/faces_lrw_ar clips (scripts/check_offsets.py --accepted) every fold, and the "
        "baselines, also train on",
    )
    args = ap.parse_args()

    t0 = time.time()
    cfg = load_config(args.config, DistillConfig, steps=args.steps)
    folders, clips = usable_clips(talking_avatars(args.data, args.cache, dirs=TALKING_DIRS))
    sources = [SOURCE_ALIASES.get(source_of(c.name), source_of(c.name)) for c in clips]
    folds = source_folds(sources, shared_recordings(clips))
    extra = accepted_avatars(args.data, args.extra_training) if args.extra_training else []
    extra_clips = [load_clip(f, with_images=False, min_seconds=cfg.min_clip_seconds) for f in extra]
    sounds = non_speech_sounds(args.data)
    rows, fold_rows = [], []
    for fold in folds:
        if args.only and fold.source not in args.only:
            continue
        run = args.work / fold.source
        if not args.baselines_only:
            train_fold(run, [folders[i] for i in fold.train] + extra, cfg, args.mouth)
            model, basis = load_audio_model(run)
        train_clips, held_clips = [clips[i] for i in fold.train] + extra_clips, [clips[i] for i in fold.held]
        groups = [sources[i] for i in fold.train] + ["LRW-AR"] * len(extra_clips)
        ridge, alpha = ridge_baseline(train_clips, groups, held_clips)
        energy = energy_baseline(train_clips, held_clips)
        fold_clip_rows = []
        for k, i in enumerate(fold.held):
            if args.baselines_only:
                clip, real = clips[i], clips[i].aperture
                row = {
                    "clip": clip.name,
                    "source": fold.source,
                    "frames": len(real),
                    **scores(real * 0, real),
                    "closed": {name: float("nan") for name in sounds},
                }
            else:
                clip = load_clip(folders[i])  # with images: the resting mouth the silence check decodes to
                gen, real = clip_apertures(model, basis, clip)
                row = {
                    "clip": clip.name,
                    "source": fold.source,
                    "frames": len(real),
                    **scores(gen, real),
                    "closed": {name: silence_check(model, basis, clip, a) for name, a in sounds.items()},
                }
            row.update(ridge=scores(ridge[k], real), energy=scores(energy[k], real))
            fold_clip_rows.append(row)
            print(
                f"{fold.source:18s} {clip.name:44s} r {row['r']:+.3f} (lag {row['best_lag']:+d}: "
                f"{row['r_best_lag']:+.3f}) articulation {row['articulation']:.2f} | ridge {row['ridge']['r']:+.3f} "
                f"energy {row['energy']['r']:+.3f} | closed " + " ".join(f"{v:.0%}" for v in row["closed"].values()),
                flush=True,
            )
        rows += fold_clip_rows
        fold_rows.append(
            {
                "source": fold.source,
                "held_out": len(fold.held),
                "trained_on": len(fold.train),
                "ridge_alpha": alpha,
                **mean_of(fold_clip_rows),
                "ridge": mean_of([r["ridge"] for r in fold_clip_rows]),
                "energy": mean_of([r["energy"] for r in fold_clip_rows]),
            }
        )
    mean = {
        **mean_of(rows),
        "ridge": mean_of([r["ridge"] for r in rows]),
        "energy": mean_of([r["energy"] for r in rows]),
        "closed": {k: float(np.mean([r["closed"][k] for r in rows])) for k in sounds},
        "closed_min": {k: float(np.min([r["closed"][k] for r in rows])) for k in sounds},
        "fold_articulation_range": [
            float(min(f["articulation"] for f in fold_rows)),
            float(max(f["articulation"] for f in fold_rows)),
        ],
    }
    cost = None if args.baselines_only else streaming_cost(load_audio_model(run)[0])
    report = {
        "dhlive": __version__,
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "split": "by source",
        "extra_training": str(args.extra_training) if args.extra_training else None,
        "n_extra_training_clips": len(extra),
        "steps": cfg.steps,
        "config": str(args.config),
        "mouth_pca": str(args.mouth) if args.mouth else "fitted per fold",
        "seconds": round(time.time() - t0, 1),
        "n_clips": len(rows),
        "n_folds": len(fold_rows),
        "mean_aperture_r": mean["r"],
        "baseline_ridge_r": mean["ridge"]["r"],
        "baseline_energy_r": mean["energy"]["r"],
        "mean": mean,
        "streaming_ms_per_40ms_chunk_1_thread": cost,
        "folds": fold_rows,
        "clips": rows,
    }
    print(f"{'fold':18s} {'clips':>5s} {'r':>7s} {'r lag':>7s} {'artic':>6s} {'ridge':>7s} {'energy':>7s}")
    for f in fold_rows + [{"source": "mean over clips", "held_out": len(rows), **mean}]:
        print(
            f"{f['source']:18s} {f['held_out']:5d} {f['r']:+7.3f} {f['r_best_lag']:+7.3f} {f['articulation']:6.2f} "
            f"{f['ridge']['r']:+7.3f} {f['energy']['r']:+7.3f}"
        )
    print(json.dumps({k: v for k, v in report.items() if k not in ("folds", "clips")}, indent=1))
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
