"""How well the audio model moves the mouth: on held-out clips, its aperture against the real one."""

from __future__ import annotations

import numpy as np

from ..facemesh import aperture
from ..metrics import articulation_ratio, best_lag, closed_fraction, pearson
from ..mouth import MouthBasis
from .clips import Clip
from .inference import predict
from .model import AudioModel

MAX_LAG = 5  # frames searched either way for the best audio-video lag


def clip_apertures(model: AudioModel, basis: MouthBasis, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """(generated, real) aperture at the clip's frames."""
    coeffs = predict(model, clip.audio)
    lips, _ = basis.decode(coeffs, clip.rest)
    gen = aperture(lips)
    frames = np.clip(clip.frames, 0, len(gen) - 1)
    return gen[frames], clip.aperture


def evaluate_clip(model: AudioModel, basis: MouthBasis, clip: Clip) -> dict:
    gen, real = clip_apertures(model, basis, clip)
    lag, r_lag = best_lag(gen, real, MAX_LAG)
    return {
        "clip": clip.name,
        "frames": len(real),
        "aperture_r": pearson(gen, real),
        "articulation": articulation_ratio(gen, real),
        "best_lag": lag,
        "aperture_r_at_best_lag": r_lag,
    }


def silence_check(model: AudioModel, basis: MouthBasis, clip: Clip, audio: np.ndarray) -> float:
    """Share of frames of `audio` (meant to be non-speech) in which this speaker's mouth is closed."""
    lips, _ = basis.decode(predict(model, audio), clip.rest)
    rest_ap = float(aperture(clip.rest.lips[None])[0])
    return closed_fraction(aperture(lips), rest_ap, *clip.rest.aperture_range)


def evaluate_clips(model: AudioModel, basis: MouthBasis, clips: list[Clip]) -> dict:
    """Per-clip metrics and their means, as a JSON-ready dict."""
    rows = [evaluate_clip(model, basis, c) for c in clips]
    keys = ("aperture_r", "articulation", "best_lag", "aperture_r_at_best_lag")
    return {"clips": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}
