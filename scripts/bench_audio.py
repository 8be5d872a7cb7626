"""Benchmark the audio model: leave-one-out over the talking clips (by recording), silence, streaming cost.

    .venv/bin/python scripts/bench_audio.py [--data ../shared/data] [--json bench_audio.json]
        [--steps 3000] [--config configs/audio.yaml] [--only NAME ...] [--work DIR]

For each of the talking clips in ../shared/data/talking: train `dhlive distill-audio` on
the other clips (less any cut from the same recording, which are held out with it),
evaluate on it (aperture Pearson r against the real video, articulation ratio
std(gen)/std(real), best lag); on the same held-out speaker, the share of frames
with the mouth closed (aperture below rest + 10% of its range) during 3 s of digital
silence, 3 s of faint room noise, the shared 440 Hz sine tone and synthetic music.
Streaming cost: ms per 40 ms chunk through MouthStream on one CPU thread.
Targets (issue 3): mean r >= 0.6, articulation 0.8-1.2, closed >= 98%, <= 2 ms per chunk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dhlive import __version__, media
from dhlive.audio.clips import load_clip, shared_recordings
from dhlive.audio.evaluate import evaluate_clip, silence_check
from dhlive.audio.features import SAMPLE_RATE, SAMPLES_PER_FRAME
from dhlive.audio.inference import MouthStream
from dhlive.audio.inference import load_audio_model
from dhlive.config import load_config
from dhlive.train.audio import DistillConfig, distill

from benchlib import DEFAULT_CACHE, DEFAULT_DATA, machine, talking_avatars


def non_speech_sounds(data: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 3 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    music = np.zeros(n)
    for k, semis in enumerate([0, 4, 7, 12, 7, 4, 0, -5, 0, 5, 9, 12]):  # an arpeggio, 0.25 s per note
        seg = t[: n // 12]
        f0 = 261.6 * 2 ** (semis / 12)
        music[k * len(seg):(k + 1) * len(seg)] = sum(np.sin(2 * np.pi * f0 * h * seg) / h ** 2 for h in range(1, 6)) * np.exp(-3 * seg)
    sounds = {"silence": np.zeros(n, np.float32),
              "room_noise": (rng.standard_normal(n) * 10 ** (-65 / 20)).astype(np.float32),
              "music": (0.3 * music / np.abs(music).max()).astype(np.float32)}
    sine = data / "audio" / "MuseTalk__sine_440hz_1s.wav"
    sounds["sine_440hz"] = media.load_audio(sine) if sine.exists() else (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
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
            stream.push(audio[i:i + SAMPLES_PER_FRAME])
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times[10:]))
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the prepared avatars are kept")
    ap.add_argument("--work", type=Path, default=Path("bench_audio_runs"), help="per-fold checkpoints (resumable)")
    ap.add_argument("--json", type=Path, default=Path("bench_audio.json"))
    ap.add_argument("--steps", type=int, default=DistillConfig.steps)
    ap.add_argument("--config", type=Path, help="a distill-audio YAML (default: the built-in defaults)")
    ap.add_argument("--only", nargs="*", help="held-out clips to run (default: all)")
    args = ap.parse_args()

    t0 = time.time()
    folders = talking_avatars(args.data, args.cache)
    sounds = non_speech_sounds(args.data)
    # clips cut from one recording are held out together: training on one copy and scoring
    # the other measures memory, not a new speaker
    group_of = {}
    for group in shared_recordings([load_clip(f, with_images=False) for f in folders]):
        for i in group:
            group_of[folders[i]] = [folders[j] for j in sorted(group)]
    rows = []
    runs = {}  # training clips -> the run trained on them (the folds of one recording share it)
    for held in folders:
        if args.only and held.name not in args.only:
            continue
        train = [f for f in folders if f not in group_of[held]]
        run = runs.setdefault(tuple(train), args.work / held.name)
        used = run / "training_clips.txt"
        listed = "".join(f"{f.name}\n" for f in train)
        if used.exists() and used.read_text() != listed:
            sys.exit(f"{run}: was trained on other clips than this benchmark now uses; pick another --work")
        if not (run / "audio_model.pt").exists():
            run.mkdir(parents=True, exist_ok=True)
            used.write_text(listed)
            distill(train, run, load_config(args.config, DistillConfig, steps=args.steps), resume=True,
                    progress=sys.stderr.isatty())
        model, basis = load_audio_model(run)
        clip = load_clip(held)
        row = evaluate_clip(model, basis, clip)
        row["closed"] = {k: silence_check(model, basis, clip, a) for k, a in sounds.items()}
        row["held_out_with"] = [f.name for f in group_of[held] if f != held]
        rows.append(row)
        print(f"{held.name:42s} r {row['aperture_r']:.3f}  articulation {row['articulation']:.2f}  "
              f"lag {row['best_lag']:+d}  closed " + " ".join(f"{k} {v:.0%}" for k, v in row["closed"].items()), flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("aperture_r", "articulation", "best_lag", "aperture_r_at_best_lag")}
    mean["closed"] = {k: float(np.mean([r["closed"][k] for r in rows])) for k in sounds}
    mean["closed_min"] = {k: float(np.min([r["closed"][k] for r in rows])) for k in sounds}
    model, _ = load_audio_model(run)
    report = {"dhlive": __version__, "machine": machine(), "torch_threads": torch.get_num_threads(),
              "steps": args.steps, "config": str(args.config) if args.config else None,
              "seconds": round(time.time() - t0, 1), "n_folds": len(rows), "mean": mean,
              "streaming_ms_per_40ms_chunk_1_thread": streaming_cost(model), "folds": rows}
    print(json.dumps({k: v for k, v in report.items() if k != "folds"}, indent=1))
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
