"""Quality benchmark: both `dhlive eval` modes over ../shared/data, one JSON summary per release.

    .venv/bin/python scripts/bench_quality.py [--data ../shared/data] [--avatars DIR] \\
        [--audio-model DIR] [--renderer FILE] [--cross-avatar LivePortrait__d6] [--work DIR] [--json bench_quality.json]

1. anchors: every real talking clip scored by `eval video` against its own audio: what real
   people measure (silence leak, audio-video offset, jitter, mouth sharpness);
2. self-reenactment: every talking clip's held-out last 20% driven by its own audio
   (`--drive audio`) and by its real mouth through the PCA (`--drive real`, the renderer alone);
3. cross-audio: one avatar says a few recordings from data/audio (languages, noise, a song,
   a sine tone) through `dhlive infer`; each output scored by `eval video` with the avatar as
   the reference (seam, sharpness ratio, the anchor row);
4. unseen faces: the clips of UNSEEN_FACES, from sources the shipped renderer never saw, the
   renderer alone (real mouths through the PCA) on each one's held-out last 20%: zero-shot
   with the base (--renderer), then after the default fine-tune of that base as `dhlive
   prepare` runs it (3 minutes, the tail kept out of it): mouth PSNR / SSIM, sharpness,
   checkerboard, lip colour difference (--zero-shot-only: the first alone); and the
   fine-tuned avatar saying two recordings in other languages (silence leak, skin tint).
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
# validation faces: whole sources kept out of the renderer's training (docs/render.md); the audio
# model was trained on their voices, which this section does not use
UNSEEN_FACES = [
    "more/talking/Wav2Lip-GFPGAN__kim_7s_raw.mp4",  # 1080p podium briefing
    "more/talking_doubtful/Lip-Reading-Cantonese__icable_10075_0.mp4",  # 1080p Cantonese news anchor
    "more/talking/PC-AVS__Audio_Source_00015.mp4",  # VoxCeleb2 interview crops, 224 px
    "more/talking/PC-AVS__Audio_Source_00086.mp4",
    "more/talking/PC-AVS__Pose_Source_00473.mp4",
    "more/talking/PC-AVS__Pose_Source_517600055.mp4",
]
UNSEEN_AUDIO = ["dreamtalk__German1.wav", "dreamtalk__japan1.wav"]
UNSEEN_KEYS = (
    "mouth_psnr",
    "mouth_ssim",
    "sharpness_ratio",
    "checkerboard",
    "checkerboard_real",
    "lip_colour_difference",
)
ROW_KEYS = ("silence_leak", "silent_frames", "av_offset_ms", "av_sync_r", "jitter", "mouth_sharpness")


def slim(row: dict | None) -> dict | None:
    return None if row is None else {k: row[k] for k in ROW_KEYS if k in row}


def _avatars(args, progress: bool) -> list[Path]:
    clips = sorted((args.data / "talking").glob("*.mp4"))
    if not args.avatars:
        return talking_avatars(args.data, DEFAULT_CACHE, progress)
    avatars = [args.avatars / c.stem for c in clips if (args.avatars / c.stem / META_FILE).exists()]
    if not avatars:
        raise SystemExit(f"no prepared avatars named after {args.data / 'talking'}/*.mp4 in {args.avatars}")
    return avatars


def anchors_section(args, progress: bool) -> dict:
    """Section 1: the real clips against their own audio."""
    clips = sorted((args.data / "talking").glob("*.mp4"))
    anchors = [evaluate_video(c, out_dir=args.work / "anchors", progress=progress) for c in clips]
    mean = mean_rows(anchors, ("generated",))["generated"]
    return {"mean": slim(mean), "clips": [{"name": a["name"], **slim(a["generated"])} for a in anchors]}


def selfreenact_section(args, progress: bool) -> dict:
    """Section 2: self-reenactment, by the audio and by the real mouth."""
    avatars, out = _avatars(args, progress), {}
    for drive in ("audio", "real"):
        res = selfreenact_all(
            avatars,
            args.work / f"selfreenact_{drive}",
            drive=drive,
            audio_model=args.audio_model,
            renderer=args.renderer,
            progress=progress,
        )
        out[drive] = {
            "mean": {k: res["mean"].get(k) for k in SUMMARY_KEYS},
            "median": {k: res["median"].get(k) for k in SUMMARY_KEYS},
            "generated": slim(res["mean"].get("generated")),
            "real": slim(res["mean"].get("real")),
            "clips": [{"name": r["name"], **{k: r[k] for k in SUMMARY_KEYS}} for r in res["clips"]],
        }
    return out


def cross_section(args, progress: bool) -> dict:
    """Section 3: one avatar, many voices."""
    avatars = _avatars(args, progress)
    avatar = next((a for a in avatars if a.name == args.cross_avatar), avatars[0])
    cross, rep = [], None
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
    return {
        "avatar": avatar.name,
        "reference": slim(rep["reference_row"]) if rep else None,
        "mean": mean_rows(cross, ("generated", "seam"), ("sharpness_ratio",)),
        "recordings": cross,
    }


def unseen_faces(args, progress: bool) -> dict:
    """Section 4: the renderer alone on faces from sources the shipped renderer never saw,
    zero-shot and after the default fine-tune, and the fine-tuned avatar in other languages."""
    from dhlive.data.prepare import PrepareConfig, prepare
    from dhlive.eval.selfreenact import selfreenact
    from dhlive.train.finetune import finetune_avatar

    home = args.work / "unseen_avatars"
    rows = []
    for rel in UNSEEN_FACES:
        clip = args.data / rel
        if not clip.exists():
            continue
        folder = home / clip.stem
        if not (folder / META_FILE).exists():
            prepare(clip, clip.stem, home, PrepareConfig(), force=True, progress=progress)
        row = {"name": clip.stem}
        out = args.work / "unseen"
        zero = selfreenact(folder, drive="real", renderer=args.renderer, out_dir=out / "zero_shot", progress=progress)
        if args.zero_shot_only:
            row["zero_shot"] = {k: zero.get(k) for k in UNSEEN_KEYS}
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        t0 = time.time()
        if not (folder / "renderer" / "render_model.pt").exists():
            finetune_avatar(folder, holdout=0.2, base=args.renderer, progress=progress)
        row["finetune_seconds"] = round(time.time() - t0, 1)
        tuned = selfreenact(folder, drive="real", out_dir=out / "fine_tuned", progress=progress)
        row["zero_shot"] = {k: zero.get(k) for k in UNSEEN_KEYS}
        row["fine_tuned"] = {k: tuned.get(k) for k in UNSEEN_KEYS}
        row["strips"] = [str(out / d / f"{clip.stem}_mouths.png") for d in ("zero_shot", "fine_tuned")]
        cross = []
        for name in UNSEEN_AUDIO:
            speech = args.data / "audio" / name
            video = out / "cross" / f"{clip.stem}__{Path(name).stem}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            infer(speech, folder, video, audio_model=args.audio_model, progress=False)
            rep = evaluate_video(video, audio=speech, reference=folder, out_dir=out / "cross", progress=progress)
            cross.append(
                {
                    "audio": name,
                    "silence_leak": rep["generated"].get("silence_leak"),
                    "skin_tint": (rep.get("seam") or {}).get("skin_tint"),
                }
            )
        row["cross_audio"] = cross
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.zero_shot_only:
        return {
            "faces": rows,
            "mean": {"zero_shot": {k: _mean([r["zero_shot"][k] for r in rows]) for k in UNSEEN_KEYS}},
        }
    mean = {
        stage: {k: _mean([r[stage][k] for r in rows]) for k in UNSEEN_KEYS} for stage in ("zero_shot", "fine_tuned")
    }
    mean["cross_audio"] = {
        k: _mean([c[k] for r in rows for c in r["cross_audio"]]) for k in ("silence_leak", "skin_tint")
    }
    return {"faces": rows, "mean": mean}


def _mean(values):
    values = [v for v in values if v is not None and v == v]
    return float(sum(values) / len(values)) if values else None


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
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="which sections to run")
    ap.add_argument(
        "--zero-shot-only",
        action="store_true",
        help="unseen faces: the base renderer (--renderer) alone, no fine-tune and no cross-audio (to compare bases)",
    )
    ap.add_argument("--json", default="bench_quality.json")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    progress = not args.quiet
    start = time.time()
    summary = {
        "version": __version__,
        "machine": machine(),
        "models": {
            "audio_model": str(args.audio_model),
            "renderer": str(args.renderer),
            "audio_model_sha256": file_sha256(args.audio_model / "audio_model.pt")[:16],
            "renderer_sha256": file_sha256(args.renderer)[:16],
        },
        "work": str(args.work),
        "seconds": {},
    }
    for section in args.sections:
        t0 = time.time()
        summary[section] = SECTIONS[section](args, progress)
        summary["seconds"][section] = round(time.time() - t0, 1)
    summary["seconds"]["total"] = round(time.time() - start, 1)
    write_json(args.json, summary)
    print(json.dumps(summary, indent=1) if not args.quiet else "")
    print_table(summary)
    print(f"wrote {args.json}; reports and plots under {args.work}/")


SECTIONS = {
    "anchors": anchors_section,
    "selfreenact": selfreenact_section,
    "cross_audio": cross_section,
    "unseen": unseen_faces,
}


def _f(v, fmt):
    return "-" if v is None or v != v else format(v, fmt)


def print_table(s: dict) -> None:
    if "selfreenact" in s:
        print("\nself-reenactment (held-out 20% of each clip; mean and median over clips)")
        print(
            f"{'drive':14s} {'ap r':>6s} {'artic':>6s} {'lag':>5s} {'lipdist':>8s} {'mouthPSNR':>10s} "
            f"{'mouthSSIM':>10s} {'faceSSIM':>9s} {'sharp':>6s}"
        )
        for (drive, res), how in ((d, h) for d in s["selfreenact"].items() for h in ("mean", "median")):
            m = res[how]
            print(
                f"{drive + ' ' + how:14s} {_f(m['aperture_r'], '.3f'):>6s} {_f(m['articulation'], '.2f'):>6s} "
                f"{_f(m['best_lag'], '+.1f'):>5s} {_f(m['lip_distance'], '.3f'):>8s} {_f(m['mouth_psnr'], '.2f'):>10s} "
                f"{_f(m['mouth_ssim'], '.3f'):>10s} {_f(m['face_ssim'], '.3f'):>9s} "
                f"{_f(m['sharpness_ratio'], '.2f'):>6s}"
            )
    rows = []
    if "anchors" in s:
        rows.append(("real clips, own audio (anchor)", s["anchors"]["mean"]))
    if "selfreenact" in s:
        rows += [(f"selfreenact {d}: generated", r["generated"]) for d, r in s["selfreenact"].items()]
        rows.append(("selfreenact: real held-out", s["selfreenact"]["audio"]["real"]))
    if "cross_audio" in s:
        rows.append((f"cross-audio on {s['cross_audio']['avatar']}"[:34], s["cross_audio"]["mean"].get("generated")))
        rows.append(("  its source video, own audio", s["cross_audio"]["reference"]))
    if rows:
        print("\nvideo metrics (mean)")
        print(f"{'row':34s} {'leak':>6s} {'offset ms':>10s} {'sync r':>7s} {'jitter':>7s}")
        for label, r in rows:
            r = r or {}
            print(
                f"{label:34s} {_f(r.get('silence_leak'), '.1%'):>6s} {_f(r.get('av_offset_ms'), '+.0f'):>10s} "
                f"{_f(r.get('av_sync_r'), '.2f'):>7s} {_f(r.get('jitter'), '.4f'):>7s}"
            )
    seam = s["cross_audio"]["mean"].get("seam") or {} if "cross_audio" in s else {}
    if "colour_step_generated" in seam:
        print(
            f"\nseam colour step {seam['colour_step_generated']:.2f} vs source {seam['colour_step_reference']:.2f}; "
            f"gradient {seam['gradient_generated']:.2f} vs {seam['gradient_reference']:.2f}"
        )
    if "skin_tint" in seam:
        print(f"skin tint {seam['skin_tint']:.2f} ({SKIN_TINT_MEANING})")
    if "unseen" in s:
        print_unseen(s["unseen"])


def print_unseen(u: dict) -> None:
    print("\nunseen faces, the renderer alone from real mouths (held-out 20%): zero-shot -> fine-tuned")
    print(f"{'face':40s} {'mouthPSNR':>14s} {'mouthSSIM':>14s} {'sharp':>12s} {'grid x real':>14s} {'lip dE':>12s}")
    for r in u["faces"] + [{"name": "mean", **u["mean"]}]:
        z, t = r["zero_shot"], r.get("fine_tuned")  # no fine_tuned with --zero-shot-only

        def grid(m):
            return _f(m["checkerboard"] / m["checkerboard_real"] if m["checkerboard_real"] else None, ".2f")

        def pair(k, fmt, z=z, t=t):
            show = grid if k == "grid" else (lambda m: _f(m[k], fmt))
            return show(z) + (f" -> {show(t)}" if t else "")

        print(
            f"{r['name'][:40]:40s} {pair('mouth_psnr', '.2f'):>14s} {pair('mouth_ssim', '.3f'):>14s} "
            f"{pair('sharpness_ratio', '.2f'):>12s} {pair('grid', ''):>14s} "
            f"{pair('lip_colour_difference', '.1f'):>12s}"
        )
    c = u["mean"].get("cross_audio")
    if c is None:
        return
    print(
        f"fine-tuned avatars in other languages: silence leak {_f(c['silence_leak'], '.1%')}, "
        f"skin tint {_f(c['skin_tint'], '.2f')}"
    )


if __name__ == "__main__":
    main()
