"""Find each talking clip's audio/video offset: the lag at which what an audio model hears
agrees best with the mouth the video shows, kept only where that peak is clear.

    .venv/bin/python scripts/check_offsets.py [--data ../shared/data] [--model checkpoints/audio]
        [--dirs talking more/talking more/talking_doubtful] [--json offsets.json]

For every clip (prepared as it is, with no offset): the aperture an audio model predicts
from the sound, and the clip's speech envelope, are each correlated with the real aperture
at every lag within +-MAX_LAG frames. The two curves are standardised and averaged; the
offset is the lag of their peak. It is trusted when the peak stands CLEAR_Z standard
deviations above the curve's other lags and both signals agree within a frame; then
scripts/av_offsets.tsv may list it (benchlib prepares the clip with its sound moved).
A clip whose sound is a separate file (NAME.wav beside NAME.mp4) is prepared with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from benchlib import AS_IS_CACHE, DEFAULT_DATA, as_is_avatar, machine

from dhlive.audio.clips import load_clip
from dhlive.audio.evaluate import clip_apertures
from dhlive.audio.inference import load_audio_model
from dhlive.errors import DhliveError
from dhlive.formats import SHIPPED_AUDIO_MODEL
from dhlive.metrics import pearson, shifted, speech_envelope

MAX_LAG = 12  # frames either way
CLEAR_Z = 2.5  # the peak's height above the other lags, in their standard deviations
AGREE = 1  # frames: the model's and the envelope's peaks must be this close


def lag_curve(gen: np.ndarray, real: np.ndarray) -> np.ndarray:
    """r of gen shifted by each lag in -MAX_LAG..MAX_LAG (positive: gen later than real)."""
    return np.array([pearson(*shifted(gen, real, lag)) for lag in range(-MAX_LAG, MAX_LAG + 1)])


def peak(curve: np.ndarray) -> tuple[int, float]:
    """(lag, z) of a curve's maximum; z against the lags more than 2 frames from it."""
    k = int(np.argmax(curve))
    far = np.abs(np.arange(len(curve)) - k) > 2
    z = (curve[k] - curve[far].mean()) / (curve[far].std() + 1e-9)
    return k - MAX_LAG, float(z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=AS_IS_CACHE)
    ap.add_argument("--model", type=Path, default=SHIPPED_AUDIO_MODEL)
    ap.add_argument("--dirs", nargs="+", default=["talking", "more/talking", "more/talking_doubtful"])
    ap.add_argument("--json", type=Path, default=Path("offsets.json"))
    ap.add_argument("--sample", type=int, help="check this many clips of each folder, spread over it")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="shortest clip checked")
    ap.add_argument(
        "--accepted", type=Path, help="also write the clips whose clear peak is within a frame of 0, one name a line"
    )
    args = ap.parse_args()

    model, basis = load_audio_model(args.model)
    rows = []
    for d in args.dirs:
        paths = sorted(p for p in (args.data / d).glob("*") if p.suffix in (".mp4", ".mpg"))
        if args.sample and len(paths) > args.sample:
            paths = [paths[i] for i in np.linspace(0, len(paths) - 1, args.sample).round().astype(int)]
        for clip_path in paths:
            try:
                clip = load_clip(as_is_avatar(clip_path, args.cache), with_images=False, min_seconds=args.min_seconds)
            except DhliveError as e:
                print(f"{clip_path.name}: left out ({e})", file=sys.stderr)
                continue
            gen, real = clip_apertures(model, basis, clip)
            env = speech_envelope(clip.audio, clip.n_timeline, 25)[np.clip(clip.frames, 0, clip.n_timeline - 1)]
            cm, ce = lag_curve(gen, real), lag_curve(env, real)
            both = (cm - cm.mean()) / (cm.std() + 1e-9) + (ce - ce.mean()) / (ce.std() + 1e-9)
            (lm, zm), (le, ze), (lb, zb) = peak(cm), peak(ce), peak(both)
            clear = zb >= CLEAR_Z and abs(lm - le) <= AGREE
            # the prediction peaks at `lag` > 0 when the sound comes `lag` frames after the mouth it belongs to
            row = {
                "clip": clip_path.stem,
                "dir": d,
                "frames": len(real),
                "model_lag": lm,
                "model_z": zm,
                "model_r0": float(cm[MAX_LAG]),
                "model_r_peak": float(cm.max()),
                "envelope_lag": le,
                "envelope_z": ze,
                "lag": lb,
                "z": zb,
                "clear": bool(clear),
                "sound_lags_picture_frames": lb,
            }
            rows.append(row)
            print(
                f"{row['clip']:48s} model {lm:+3d} (z {zm:4.1f}, r0 {row['model_r0']:+.2f} "
                f"peak {row['model_r_peak']:+.2f}) "
                f"envelope {le:+3d} (z {ze:4.1f}) both {lb:+3d} (z {zb:4.1f}) {'CLEAR' if clear else ''}",
                flush=True,
            )
    if args.accepted:
        names = [r["clip"] for r in rows if r["clear"] and abs(r["lag"]) <= 1]
        args.accepted.write_text("".join(f"{n}\n" for n in names))
        print(f"{len(names)} of {len(rows)} clips accepted: {args.accepted}")
    args.json.write_text(
        json.dumps(
            {"machine": machine(), "model": str(args.model), "max_lag": MAX_LAG, "clear_z": CLEAR_Z, "clips": rows},
            indent=1,
        )
        + "\n"
    )
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
