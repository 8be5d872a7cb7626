"""Benchmark `dhlive prepare` on real clips: throughput and pose jitter, printed and saved as JSON.

    .venv/bin/python scripts/bench_prepare.py [--data ../shared/data] [--json bench_prepare.json]

throughput: source frames (at the avatar fps) per second of wall time, end to end
  (decode, landmarks, pose, crops, PNG and source-video writing).
jitter: mean second difference over time of the pose-normalised upper-face landmarks
  (the rigid points), in % of the outer eye-corner distance; smaller is steadier.
  `raw_jitter` is the same on the pixel landmarks scaled by eye distance, i.e. with
  the head motion left in, for scale.
Target (issue 2): >= 25 frames/s end to end on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import machine

from dhlive import __version__
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder with talking/ and silent/")
    ap.add_argument("--json", default="bench_prepare.json", help="where to save the results")
    ap.add_argument("--only", default="", help="substring filter on clip names")
    args = ap.parse_args()

    data = Path(args.data)
    clips = sorted((data / "talking").glob("*.mp4")) + sorted((data / "silent").glob("*.mp4"))
    clips = [c for c in clips if args.only in c.name]
    if not clips:
        print(f"no clips under {data}/talking or {data}/silent", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for clip in clips:
            name = clip.stem.replace("__", "-")
            t0 = time.perf_counter()
            try:
                res = prepare(clip, name, out, PrepareConfig(), progress=False)
            except DhliveError as e:
                rows.append({"clip": f"{clip.parent.name}/{clip.name}", "ok": False, "error": str(e)})
                print(f"FAIL {clip.name}: {e}")
                continue
            secs = time.perf_counter() - t0
            a = load_avatar(res.path)
            jit, raw = jitter(a)
            row = {
                "clip": f"{clip.parent.name}/{clip.name}",
                "ok": True,
                "source_frames": res.n_source_frames,
                "avatar_frames": res.n_frames,
                "seconds": round(secs, 2),
                "frames_per_s": round(res.n_source_frames / secs, 1),
                "jitter_pct": round(jit, 3),
                "raw_jitter_pct": round(raw, 3),
                "has_audio": a.audio_path is not None,
                "notes": res.notes,
            }
            rows.append(row)
            print(
                f"{row['clip']:60s} {row['source_frames']:5d} fr {row['frames_per_s']:6.1f} fr/s "
                f"jitter {jit:5.2f}% (raw {raw:5.2f}%) kept {res.n_frames}"
            )
            # keep the temp folder small: crops of finished clips are not needed
            shutil.rmtree(res.path)
    ok = [r for r in rows if r["ok"]]
    frames = sum(r["source_frames"] for r in ok)
    seconds = sum(r["seconds"] for r in ok)
    summary = {
        "clips": len(rows),
        "succeeded": len(ok),
        "frames": frames,
        "frames_per_s": round(frames / seconds, 1) if seconds else None,
        "mean_jitter_pct": round(float(np.mean([r["jitter_pct"] for r in ok])), 3) if ok else None,
        "mean_raw_jitter_pct": round(float(np.mean([r["raw_jitter_pct"] for r in ok])), 3) if ok else None,
        "target_frames_per_s": 25,
    }
    result = {
        "benchmark": "prepare",
        "dhlive": __version__,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "summary": summary,
        "clips": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"saved {args.json}")
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
