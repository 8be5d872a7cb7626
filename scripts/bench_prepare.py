"""Benchmark `dhlive prepare` on real clips: throughput and pose jitter, printed and saved as JSON.

    .venv/bin/python scripts/bench_prepare.py [--data ../shared/data] [--json bench_prepare.json]
        [--sections clips,phone]

clips: every clip of talking/ and silent/.
phone: every 1920x1080 clip of more/talking*/ made into a 1080x1920 portrait clip, as a
  phone records one (the centre cut and scaled up, 30 fps kept, H.264 at crf 20), in a
  temporary folder.

throughput: source frames (at the avatar fps) per second of wall time, end to end
  (decode, landmarks, pose, crops, PNG and source-video writing).
jitter: mean second difference over time of the pose-normalised upper-face landmarks
  (the rigid points), in % of the outer eye-corner distance; smaller is steadier.
  `raw_jitter` is the same on the pixel landmarks scaled by eye distance, i.e. with
  the head motion left in, for scale.
Targets: >= 25 frames/s end to end on a 2-core CPU, 1080x1920 phone clips included.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from benchlib import machine

from dhlive import __version__, media
from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.errors import DhliveError
from dhlive.facemesh import EYE_OUTER, RIGID_POINTS
from dhlive.formats import load_avatar

REPO = Path(__file__).resolve().parents[1]


def second_difference(x: np.ndarray, segments) -> float:
    """Mean |x[t-1] - 2x[t] + x[t+1]| (2-D norm per point) within segments of consecutive frames."""
    vals = []
    for a, b in segments:
        seg = x[a : b + 1]
        if len(seg) >= 3:
            d2 = seg[2:] - 2 * seg[1:-1] + seg[:-2]
            vals.append(np.linalg.norm(d2[..., :2], axis=-1).reshape(-1))
    return float(np.concatenate(vals).mean()) if vals else float("nan")


def jitter(avatar) -> tuple[float, float]:
    idx = np.asarray(avatar.meta["source_index"])
    starts = np.r_[0, np.flatnonzero(np.diff(idx) > 1) + 1]
    ends = np.r_[starts[1:] - 1, len(idx) - 1]
    segments = list(zip(starts, ends))
    canon = avatar.canonical[:, RIGID_POINTS]
    eye = np.linalg.norm(avatar.pixels[:, EYE_OUTER[0], :2] - avatar.pixels[:, EYE_OUTER[1], :2], axis=1)
    raw = avatar.pixels[:, RIGID_POINTS] / eye[:, None, None]
    return 100 * second_difference(canon, segments), 100 * second_difference(raw, segments)


PHONE_SIZE = (1080, 1920)


def phone_clip(src: Path, dst: Path) -> Path:
    """`src` (landscape) as a portrait phone recording: the centre cut, scaled up to 1080x1920."""
    info = media.probe(src)
    w, h = PHONE_SIZE
    cut = int(round(info.height * w / h))
    x0 = (info.width - cut) // 2
    audio = media.load_audio(src) if info.has_audio else None
    with media.Mp4Writer(dst, info.fps, w, h, crf=20, preset="fast", audio=audio) as out:
        for frame in media.iter_frames(src, info.fps):
            out.write(cv2.resize(frame[:, x0 : x0 + cut], (w, h), interpolation=cv2.INTER_CUBIC))
    return dst


def bench_clip(clip: Path, label: str, out: str) -> dict:
    name = clip.stem.replace("__", "-")
    t0 = time.perf_counter()
    try:
        res = prepare(clip, name, out, PrepareConfig(), progress=False)
    except DhliveError as e:
        print(f"FAIL {label}: {e}")
        return {"clip": label, "ok": False, "error": str(e)}
    secs = time.perf_counter() - t0
    a = load_avatar(res.path)
    jit, raw = jitter(a)
    row = {
        "clip": label,
        "ok": True,
        "size": a.meta["source"]["size"],
        "source_frames": res.n_source_frames,
        "avatar_frames": res.n_frames,
        "seconds": round(secs, 2),
        "frames_per_s": round(res.n_source_frames / secs, 1),
        "jitter_pct": round(jit, 3),
        "raw_jitter_pct": round(raw, 3),
        "has_audio": a.audio_path is not None,
        "notes": res.notes,
    }
    print(
        f"{label:60s} {row['source_frames']:5d} fr {row['frames_per_s']:6.1f} fr/s "
        f"jitter {jit:5.2f}% (raw {raw:5.2f}%) kept {res.n_frames}"
    )
    shutil.rmtree(res.path)  # keep the temp folder small: crops of finished clips are not needed
    return row


def summarise(rows: list) -> dict:
    ok = [r for r in rows if r["ok"]]
    frames = sum(r["source_frames"] for r in ok)
    seconds = sum(r["seconds"] for r in ok)
    return {
        "clips": len(rows),
        "succeeded": len(ok),
        "frames": frames,
        "frames_per_s": round(frames / seconds, 1) if seconds else None,
        "slowest_frames_per_s": min((r["frames_per_s"] for r in ok), default=None),
        "mean_jitter_pct": round(float(np.mean([r["jitter_pct"] for r in ok])), 3) if ok else None,
        "mean_raw_jitter_pct": round(float(np.mean([r["raw_jitter_pct"] for r in ok])), 3) if ok else None,
        "target_frames_per_s": 25,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder with talking/ and silent/")
    ap.add_argument("--json", default="bench_prepare.json", help="where to save the results")
    ap.add_argument("--only", default="", help="substring filter on clip names")
    ap.add_argument("--sections", default="clips,phone", help="comma-separated: clips, phone")
    args = ap.parse_args()

    data = Path(args.data)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    clips = sorted((data / "talking").glob("*.mp4")) + sorted((data / "silent").glob("*.mp4"))
    clips = [c for c in clips if args.only in c.name] if "clips" in sections else []
    landscape = sorted((data / "more").glob("talking*/*.mp4")) if "phone" in sections else []
    landscape = [c for c in landscape if args.only in c.name and media.probe(c).width == 1920]
    if not clips and not landscape:
        print(f"no clips under {data} for sections {sorted(sections)}", file=sys.stderr)
        return 1
    result = {"benchmark": "prepare", "dhlive": __version__, "machine": machine(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as out:
        if clips:
            rows = [bench_clip(c, f"{c.parent.name}/{c.name}", out) for c in clips]
            result["summary"] = summarise(rows)
            result["clips"] = rows
            print(json.dumps(result["summary"], indent=1))
        if landscape:
            rows = []
            for c in landscape:
                portrait = phone_clip(c, Path(out) / f"phone__{c.stem}.mp4")
                rows.append(bench_clip(portrait, f"{c.parent.name}/{c.name} as 1080x1920", out))
                portrait.unlink()
            result["phone_summary"] = summarise(rows)
            result["phone"] = rows
            print(json.dumps(result["phone_summary"], indent=1))
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"saved {args.json}")
    failed = [r for r in result.get("clips", []) + result.get("phone", []) if not r["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
