"""Quality benchmark: both `dhlive eval` modes over ../shared/data, one JSON summary per release.

    .venv/bin/python scripts/bench_quality.py [--data ../shared/data] [--avatars DIR] \\
        [--audio-model DIR] [--renderer FILE] [--cross-avatar LivePortrait__d6] [--work DIR] [--json bench_quality.json]

1. anchors: every real talking clip scored by `eval video` against its own audio: what real
   people measure (silence leak, audio-video offset, jitter, mouth sharpness);
2. self-reenactment: every talking clip's held-out last 20% driven by its own audio
   (`--drive audio`) and by its real mouth through the PCA (`--drive real`, the renderer alone);
3. cross-audio: one avatar says a few recordings from data/audio (languages, noise, a song,
   a sine tone) through `dhlive infer`; each output scored by `eval video` with the avatar as
   the reference (seam, sharpness ratio, the anchor row).
Avatars are prepared once into the cache (or taken from --avatars, one folder per clip name).
The shipped audio model was trained on all 12 talking clips, so self-reenactment with
`--drive audio` is in-sample for it (scripts/bench_audio.py holds clips out); the shipped
renderer never saw LivePortrait__d6.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchlib import DEFAULT_CACHE, DEFAULT_DATA, machine, talking_avatars

from dhlive import __version__
from dhlive.eval.selfreenact import SUMMARY_KEYS, selfreenact_all
from dhlive.eval.video import evaluate_video, mean_rows
from dhlive.formats import META_FILE, file_sha256, write_json
from dhlive.infer import infer
from dhlive.metrics import SKIN_TINT_MEANING
from dhlive.models import DEFAULT_AUDIO_MODEL, DEFAULT_RENDERER

CROSS_AUDIO = [
    "SadTalker__RD_Radio31_000.wav",
    "dreamtalk__German1.wav",
    "dreamtalk__japan1.wav",
    "dreamtalk__chinese1_haierlizhi.wav",
    "dreamtalk__noisy_audio_office_snr_0.wav",
    "SadTalker__itosinger1.wav",
    "MuseTalk__sine_440hz_1s.wav",
]
ROW_KEYS = ("silence_leak", "silent_frames", "av_offset_ms", "av_sync_r", "jitter", "mouth_sharpness")


def slim(row: dict | None) -> dict | None:
    return None if row is None else {k: row[k] for k in ROW_KEYS if k in row}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--avatars", type=Path, help="prepared avatars, one folder per talking clip [default: prepare into the cache]"
    )
    ap.add_argument("--audio-model", type=Path, default=DEFAULT_AUDIO_MODEL)
    ap.add_argument("--renderer", type=Path, default=DEFAULT_RENDERER)
    ap.add_argument("--cross-avatar", default="LivePortrait__d6", help="the avatar that says the data/audio recordings")
    ap.add_argument("--work", type=Path, default=Path("work/bench_quality"), help="reports, plots and videos go here")
    ap.add_argument("--json", default="bench_quality.json")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    progress = not args.quiet
    start = time.time()
    clips = sorted((args.data / "talking").glob("*.mp4"))
    if args.avatars:
        avatars = [args.avatars / c.stem for c in clips if (args.avatars / c.stem / META_FILE).exists()]
        if not avatars:
            raise SystemExit(f"no prepared avatars named after {args.data / 'talking'}/*.mp4 in {args.avatars}")
    else:
        avatars = talking_avatars(args.data, DEFAULT_CACHE, progress)
    models = {
        "audio_model": str(args.audio_model),
        "renderer": str(args.renderer),
        "audio_model_sha256": file_sha256(args.audio_model / "audio_model.pt")[:16],
        "renderer_sha256": file_sha256(args.renderer)[:16],
    }

    # 1. real clips against their own audio: the anchors
    t0 = time.time()
    anchors = [evaluate_video(c, out_dir=args.work / "anchors", progress=progress) for c in clips]
    anchor_mean = mean_rows(anchors, ("generated",))["generated"]
    t_anchor = time.time() - t0

    # 2. self-reenactment, by the audio and by the real mouth
    selfre, t_self = {}, {}
    for drive in ("audio", "real"):
        t0 = time.time()
        res = selfreenact_all(
            avatars,
            args.work / f"selfreenact_{drive}",
            drive=drive,
            audio_model=args.audio_model,
            renderer=args.renderer,
            progress=progress,
        )
        t_self[drive] = time.time() - t0
        selfre[drive] = {
            "mean": {k: res["mean"].get(k) for k in SUMMARY_KEYS},
            "median": {k: res["median"].get(k) for k in SUMMARY_KEYS},
            "generated": slim(res["mean"].get("generated")),
            "real": slim(res["mean"].get("real")),
            "clips": [{"name": r["name"], **{k: r[k] for k in SUMMARY_KEYS}} for r in res["clips"]],
        }

    # 3. one avatar, many voices
    t0 = time.time()
    avatar = next((a for a in avatars if a.name == args.cross_avatar), avatars[0])
    cross = []
    for name in CROSS_AUDIO:
        speech = args.data / "audio" / name
        if not speech.exists():
            continue
        video = args.work / "cross" / f"{avatar.name}__{Path(name).stem}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        infer(speech, avatar, video, audio_model=args.audio_model, renderer=args.renderer, progress=False)
        rep = evaluate_video(video, audio=speech, reference=avatar, out_dir=args.work / "cross", progress=progress)
        cross.append(
            {
                "audio": name,
                "generated": slim(rep["generated"]),
                "seam": rep.get("seam"),
                "sharpness_ratio": rep.get("sharpness_ratio"),
            }
        )
    t_cross = time.time() - t0

    summary = {
        "version": __version__,
        "machine": machine(),
        "models": models,
        "work": str(args.work),
        "anchors": {"mean": slim(anchor_mean), "clips": [{"name": a["name"], **slim(a["generated"])} for a in anchors]},
        "selfreenact": selfre,
        "cross_audio": {
            "avatar": avatar.name,
            "reference": slim(rep["reference_row"]) if cross else None,
            "mean": mean_rows(cross, ("generated", "seam"), ("sharpness_ratio",)),
            "recordings": cross,
        },
        "seconds": {
            "anchors": round(t_anchor, 1),
            **{f"selfreenact_{k}": round(v, 1) for k, v in t_self.items()},
            "cross_audio": round(t_cross, 1),
            "total": round(time.time() - start, 1),
        },
    }
    write_json(args.json, summary)
    print(json.dumps(summary, indent=1) if not args.quiet else "")
    print_table(summary)
    print(f"wrote {args.json}; reports and plots under {args.work}/")


def print_table(s: dict) -> None:
    def f(v, fmt):
        return "-" if v is None or v != v else format(v, fmt)

    print("\nself-reenactment (held-out 20% of each clip; mean and median over clips)")
    print(
        f"{'drive':14s} {'ap r':>6s} {'artic':>6s} {'lag':>5s} {'lipdist':>8s} {'mouthPSNR':>10s} "
        f"{'mouthSSIM':>10s} {'faceSSIM':>9s} {'sharp':>6s}"
    )
    for (drive, res), how in ((d, h) for d in s["selfreenact"].items() for h in ("mean", "median")):
        m = res[how]
        print(
            f"{drive + ' ' + how:14s} {f(m['aperture_r'], '.3f'):>6s} {f(m['articulation'], '.2f'):>6s} "
            f"{f(m['best_lag'], '+.1f'):>5s} "
            f"{f(m['lip_distance'], '.3f'):>8s} {f(m['mouth_psnr'], '.2f'):>10s} {f(m['mouth_ssim'], '.3f'):>10s} "
            f"{f(m['face_ssim'], '.3f'):>9s} {f(m['sharpness_ratio'], '.2f'):>6s}"
        )
    print("\nvideo metrics (mean)")
    print(f"{'row':34s} {'leak':>6s} {'offset ms':>10s} {'sync r':>7s} {'jitter':>7s}")
    rows = [("real clips, own audio (anchor)", s["anchors"]["mean"])]
    rows += [(f"selfreenact {d}: generated", r["generated"]) for d, r in s["selfreenact"].items()]
    rows += [("selfreenact: real held-out", s["selfreenact"]["audio"]["real"])]
    rows += [(f"cross-audio on {s['cross_audio']['avatar']}"[:34], s["cross_audio"]["mean"].get("generated"))]
    rows += [("  its source video, own audio", s["cross_audio"]["reference"])]
    for label, r in rows:
        r = r or {}
        print(
            f"{label:34s} {f(r.get('silence_leak'), '.1%'):>6s} {f(r.get('av_offset_ms'), '+.0f'):>10s} "
            f"{f(r.get('av_sync_r'), '.2f'):>7s} {f(r.get('jitter'), '.4f'):>7s}"
        )
    seam = s["cross_audio"]["mean"].get("seam") or {}
    if "colour_step_generated" in seam:
        print(
            f"\nseam colour step {seam['colour_step_generated']:.2f} vs source {seam['colour_step_reference']:.2f}; "
            f"gradient {seam['gradient_generated']:.2f} vs {seam['gradient_reference']:.2f}"
        )
    if "skin_tint" in seam:
        print(f"skin tint {seam['skin_tint']:.2f} ({SKIN_TINT_MEANING})")


if __name__ == "__main__":
    main()
