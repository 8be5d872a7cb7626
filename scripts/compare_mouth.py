"""Which mouth representation should the audio model predict? Lip-landmark PCA, DH_live's
mouth-pixel PCA, or both in one PCA. Leave-one-clip-out over the talking clips, printed and
saved as JSON (the table in docs/audio.md comes from here).

    .venv/bin/python scripts/compare_mouth.py [--data ../shared/data] [--json compare_mouth.json]

For each held-out clip and each variant (kind, components k, lip weight w), a basis is fitted on
the other clips (less any cut from the same recording); the held-out clip's real mouth is
encoded and decoded, and its decoded mouth is compared with the real one:
  aperture_r  Pearson r of the aperture |13-14|/|78-308| (opening)
  width_r     r of the outer corner distance |61-291| (width, rounding)
  protrusion_r r of the outer lips' depth relative to the rest shape (rounding)
  teeth_r     r of the brightness in the middle of the mouth image (teeth shown vs dark mouth)
  lips_err    mean lip-landmark error, % of the eye-corner distance
and, as a measure of what audio can predict: a ridge regression from 9 frames of fbank
(t-4..t+4) to the coefficients, fitted on the other clips, decoded to aperture on the
held-out clip (audio_aperture_r).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from benchlib import DEFAULT_CACHE, DEFAULT_DATA, machine, talking_avatars

from dhlive.audio.clips import load_clip, shared_recordings
from dhlive.facemesh import LIPS, aperture
from dhlive.metrics import pearson
from dhlive.mouth import IMAGE_H, IMAGE_W, fit_basis, mouth_deltas

CONTEXT = 4
RIDGE = 10.0
_I = {p: i for i, p in enumerate(LIPS)}
# (kind, components, lip weight): DH_live's pixels at 6, landmarks alone, and the combination
VARIANTS = [
    ("pixels", 6, 1.0),
    ("pixels", 8, 1.0),
    ("lips", 6, 1.0),
    ("lips", 8, 1.0),
    ("lips+pixels", 6, 1.0),
    ("lips+pixels", 6, 2.0),
    ("lips+pixels", 8, 1.0),
    ("lips+pixels", 8, 2.0),
    ("lips+pixels", 8, 3.0),
]


def width(lips):
    return np.linalg.norm(lips[:, _I[61], :2] - lips[:, _I[291], :2], axis=-1)


def protrusion(lips, rest):
    return (lips[:, :20, 2] - rest.lips[None, :20, 2]).mean(1)


def teeth(images):
    h0, h1, w0, w1 = IMAGE_H // 3, 2 * IMAGE_H // 3 + 1, IMAGE_W // 3, 2 * IMAGE_W // 3
    return images[:, h0:h1, w0:w1].mean((1, 2, 3))


def context_features(clip) -> np.ndarray:
    f = clip.features()
    pad = np.pad(f, ((CONTEXT, CONTEXT), (0, 0)), mode="edge")
    stacked = np.concatenate([pad[k : k + len(f)] for k in range(2 * CONTEXT + 1)], 1)
    return stacked[clip.frames]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--json", type=Path, default=Path("compare_mouth.json"))
    args = ap.parse_args()

    t0 = time.time()
    clips = [load_clip(p) for p in talking_avatars(args.data, args.cache)]
    deltas = [mouth_deltas(c.lips, c.images, c.rest) for c in clips]
    feats = [context_features(c) for c in clips]
    names = [f"{kind} k={k} w={w:g}" for kind, k, w in VARIANTS]
    rows = {n: [] for n in names}
    together = {i: g for g in shared_recordings(clips) for i in g}  # one recording: held out as one
    for h, held in enumerate(clips):
        train = [i for i in range(len(clips)) if i not in together[h]]
        dl = np.concatenate([deltas[i][0] for i in train])
        di = np.concatenate([deltas[i][1] for i in train])
        x = np.concatenate([feats[i] for i in train])
        mu, sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - mu) / sd
        gram = xs.T @ xs + RIDGE * len(xs) / 100 * np.eye(xs.shape[1])
        for name, (kind, k, lip_weight) in zip(names, VARIANTS):
            basis = fit_basis(dl, di, kind, k, lip_weight)
            coeffs = basis.encode(*deltas[h])
            lips, images = basis.decode(coeffs, held.rest)
            y = np.concatenate([basis.encode(*deltas[i]) for i in train])
            w = np.linalg.solve(gram, xs.T @ (y - y.mean(0)))
            pred = ((feats[h] - mu) / sd) @ w + y.mean(0)
            pred_lips, _ = basis.decode(pred, held.rest)
            rows[name].append(
                {
                    "clip": held.name,
                    "frames": len(held.frames),
                    "aperture_r": pearson(aperture(lips), held.aperture),
                    "width_r": pearson(width(lips), width(held.lips)),
                    "protrusion_r": pearson(protrusion(lips, held.rest), protrusion(held.lips, held.rest)),
                    "teeth_r": pearson(teeth(images), teeth(held.images)),
                    "lips_err": float(100 * np.linalg.norm(lips - held.lips, axis=-1).mean()),
                    "explained": float(basis.explained.sum()),
                    "audio_aperture_r": pearson(aperture(pred_lips), held.aperture),
                }
            )
    metrics = [k for k in rows[names[0]][0] if k not in ("clip", "frames")]
    summary = {n: {m: float(np.mean([r[m] for r in rows[n]])) for m in metrics} for n in names}
    report = {
        "machine": machine(),
        "seconds": round(time.time() - t0, 1),
        "n_clips": len(clips),
        "summary": summary,
        "per_clip": rows,
    }
    print(f"{'variant':24s} " + " ".join(f"{m:>16s}" for m in metrics))
    for n in names:
        print(f"{n:24s} " + " ".join(f"{summary[n][m]:16.3f}" for m in metrics))
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
