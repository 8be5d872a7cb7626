"""What the audio model learns from: each clip's audio (and augmented copies of it) with the
mouth coefficients on a common 25 fps timeline, non-speech sounds that must close the
mouth, and batches of windows drawn from them.

Batches are a pure function of (seed, step), so a resumed run sees the batches an
uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..audio.clips import Clip
from ..audio.features import FEATURE_DIM, N_MELS, fbank_features
from ..audio.phonetic import N_FEATURES
from ..constants import FPS, SAMPLE_RATE
from ..errors import DhliveError

if TYPE_CHECKING:
    from .audio import DistillConfig


# --- data ---------------------------------------------------------------------------------


@dataclass
class Track:
    """One playable copy of a clip: features and targets on a common 25 fps timeline."""

    feats: np.ndarray  # (T, 160)
    target: np.ndarray  # (T, k) coefficients
    valid: np.ndarray  # (T,) bool: a real mouth exists at this frame


def targets_on_timeline(clip: Clip, coeffs: np.ndarray, n: int, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients at the frames of a copy played `speed` times faster (1 = original)."""
    full = np.full((clip.n_timeline + 1, coeffs.shape[1]), np.nan, np.float32)
    full[clip.frames] = coeffs
    pos = np.arange(n) * speed  # source frame each new frame shows
    lo = np.clip(np.floor(pos).astype(int), 0, len(full) - 1)
    hi = np.clip(lo + 1, 0, len(full) - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    tgt = (1 - w) * full[lo] + w * full[hi]
    exact = w[:, 0] < 1e-6
    tgt[exact] = full[lo[exact]]
    valid = np.isfinite(tgt).all(1)
    return np.nan_to_num(tgt), valid


def _noise(rng, n: int) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if rng.random() < 0.5:
        return white
    spec = np.fft.rfft(white)  # pink: 1/f power
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    pink = np.fft.irfft(spec, n).astype(np.float32)
    return pink / (pink.std() + 1e-8)


def _add_noise(audio: np.ndarray, snr_db: float, rng) -> np.ndarray:
    power = float(np.mean(audio**2)) + 1e-10
    return audio + _noise(rng, len(audio)) * math.sqrt(power / 10 ** (snr_db / 10))


AUGMENT_CACHE = "audio_copies"  # folder of the dhlive cache with the augmented features of training clips
AUGMENT_FIELDS = ("seed", "copies", "pitch_semitones", "speed_range", "noise_snr_db")  # what a copy depends on


def augmented_copies(clip: Clip, coeffs: np.ndarray, cfg: DistillConfig, cache: Path | None = None) -> list[Track]:
    """The clip as it is, and cfg.copies copies changed in pitch, speed and noise, each drawn
    from a generator seeded by (seed, clip name). The copies' features are kept in `cache`
    (a folder), keyed by the audio and the settings, so other runs on the clip reuse them."""
    feats = clip.features()
    tracks = [Track(feats, *targets_on_timeline(clip, coeffs, len(feats), 1.0))]
    if cfg.copies <= 0:
        return tracks
    settings = json.dumps({k: getattr(cfg, k) for k in AUGMENT_FIELDS}, sort_keys=True).encode()
    key = hashlib.sha256(np.ascontiguousarray(clip.audio).tobytes() + settings).hexdigest()[:24]
    path = None if cache is None else Path(cache) / f"{key}.npz"
    copies = _load_copies(path)
    if copies is None:
        copies = _make_copies(clip.audio, cfg, np.random.default_rng([cfg.seed, zlib.crc32(clip.name.encode())]))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.part.npz")
            np.savez(tmp, speeds=np.array([s for s, _ in copies]), **{f"f{i}": f for i, (_, f) in enumerate(copies)})
            os.replace(tmp, path)
    for speed, f in copies:
        tracks.append(Track(f, *targets_on_timeline(clip, coeffs, len(f), speed)))
    return tracks


def _load_copies(path: Path | None) -> list | None:
    if path is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return [(float(s), z[f"f{i}"]) for i, s in enumerate(z["speeds"])]
    except (OSError, ValueError, KeyError):
        return None


def _make_copies(audio: np.ndarray, cfg: DistillConfig, rng) -> list[tuple[float, np.ndarray]]:
    """(speed, features) of cfg.copies augmented versions of `audio`."""
    import librosa  # slow to import; only training needs it

    out = []
    for _ in range(cfg.copies):
        copy = audio
        semis = float(rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones))
        speed = float(np.exp(rng.uniform(np.log(1 - cfg.speed_range), np.log(1 + cfg.speed_range))))
        if abs(semis) > 0.1:
            copy = librosa.effects.pitch_shift(copy, sr=SAMPLE_RATE, n_steps=semis)
        if abs(speed - 1) > 0.01:
            copy = librosa.effects.time_stretch(copy, rate=speed)
        copy = _add_noise(copy.astype(np.float32), float(rng.uniform(*cfg.noise_snr_db)), rng)
        peak = float(np.abs(copy).max())
        copy = copy / peak * 0.9 if peak > 0.99 else copy
        out.append((speed, fbank_features(copy.astype(np.float32))))
    return out


def non_speech_pool(rng, seconds: float = 6.0) -> list[np.ndarray]:
    """Feature sequences of sounds during which nobody speaks: silence with a faint floor,
    steady and gliding tones, hum, synthetic music (notes, chords, drums), noise."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    db = lambda lo, hi: 10 ** (rng.uniform(lo, hi) / 20)  # noqa: E731
    sounds = [np.zeros(n, np.float32)]
    for _ in range(3):
        sounds.append(_noise(rng, n) * db(-90, -55))
    for _ in range(4):
        f = rng.uniform(80, 3000)
        glide = rng.uniform(-0.3, 0.3) * f * t / seconds
        sounds.append(np.sin(2 * np.pi * (f + glide) * t) * db(-40, -3))
    for mains in (50, 60):
        sounds.append(sum(np.sin(2 * np.pi * mains * h * t) / h for h in range(1, 6)) * db(-45, -15))
    for _ in range(6):  # music: a note or chord every 0.15-0.6 s with harmonics and decay, some drums
        music = np.zeros(n)
        pos = 0
        while pos < n:
            length = int(rng.uniform(0.15, 0.6) * SAMPLE_RATE)
            seg = np.arange(min(length, n - pos)) / SAMPLE_RATE
            for _ in range(rng.integers(1, 4)):
                f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
                music[pos : pos + len(seg)] += sum(
                    np.sin(2 * np.pi * f0 * h * seg) / h**1.5 for h in range(1, 8)
                ) * np.exp(-seg * rng.uniform(1, 6))
            if rng.random() < 0.4:
                hit = min(int(0.05 * SAMPLE_RATE), len(seg))
                music[pos : pos + hit] += _noise(rng, hit) * np.exp(-np.arange(hit) / 200) * 2
            pos += length
        sounds.append(music / (np.abs(music).max() + 1e-9) * db(-30, -3))
    for _ in range(3):
        sounds.append(_noise(rng, n) * db(-45, -20))
    return [fbank_features(np.asarray(s, np.float32)) for s in sounds]


MIN_TRACK_FRAMES = 20  # a clip shorter than this (0.8 s) teaches too little to be worth a window


def pad_short(track: Track, span: int) -> Track:
    """A clip shorter than a training window, set in silence: it is cut from speech (a word
    clip), so no target is given in the silence around it (mask off), only on its frames."""
    n = len(track.feats)
    if n > span or n < MIN_TRACK_FRAMES:
        return track
    pad = span - n // 2  # each side: the clip's frames land anywhere in the window's span
    silence = np.repeat(fbank_features(np.zeros(640, np.float32))[:1], pad, 0)
    zeros = np.zeros((pad, track.target.shape[1]), np.float32)
    off = np.zeros(pad, bool)
    return Track(
        np.concatenate([silence, track.feats, silence]),
        np.concatenate([zeros, track.target, zeros]),
        np.concatenate([off, track.valid, off]),
    )


class Batches:
    """Windows drawn from the tracks, augmented on the fly; batch(step) is a pure function of step."""

    def __init__(
        self,
        tracks: list[Track],
        pool: list[np.ndarray],
        closed: np.ndarray,
        cfg: DistillConfig,
        lookahead: int,
        phonetic: list[Track] = (),
    ):
        self.pool, self.closed, self.cfg, self.lookahead = pool, closed, cfg, lookahead
        self.span = cfg.burn_in + cfg.window + lookahead  # feature rows per window
        self.tracks = [pad_short(tr, self.span) for tr in tracks]
        self.usable, self.weights = self._windows(self.tracks)
        if not self.usable:
            raise DhliveError(f"no clip is longer than {self.span / FPS:.1f} s, the training window")
        self.phonetic = list(phonetic)
        self.n_phonetic = cfg.phonetic_batch if self.phonetic else 0
        if self.n_phonetic:
            self.phonetic_usable, self.phonetic_weights = self._windows(self.phonetic)

    def _windows(self, tracks):
        ok = [i for i, tr in enumerate(tracks) if len(tr.feats) > self.span and tr.valid.any()]
        lengths = np.array([len(tracks[i].feats) - self.span for i in ok], np.float64)
        return ok, lengths / max(lengths.sum(), 1.0)

    def batch(self, step: int):
        """(x, y, m, a): feature windows, the first cfg.batch of real clips with their target
        coefficients y and mask m, then those of synthetic speech with their articulation a."""
        cfg, B = self.cfg, self.cfg.burn_in
        rng = np.random.default_rng([cfg.seed, step])
        x = np.empty((cfg.batch + self.n_phonetic, self.span, FEATURE_DIM), np.float32)
        y = np.empty((cfg.batch, cfg.window, len(self.closed)), np.float32)
        m = np.empty((cfg.batch, cfg.window), np.float32)
        a = np.empty((self.n_phonetic, cfg.window, N_FEATURES), np.float32)
        for b in range(cfg.batch + self.n_phonetic):
            real = b < cfg.batch
            tracks, usable, weights = (
                (self.tracks, self.usable, self.weights)
                if real
                else (self.phonetic, self.phonetic_usable, self.phonetic_weights)
            )
            tr = tracks[usable[rng.choice(len(usable), p=weights)]]
            s = int(rng.integers(0, len(tr.feats) - self.span + 1))
            x[b] = tr.feats[s : s + self.span]
            # output row j belongs to frame s + j - L; loss on frames s + B .. s + B + window - 1
            if real:
                y[b] = tr.target[s + B : s + B + cfg.window]
                m[b] = tr.valid[s + B : s + B + cfg.window]
                if rng.random() < cfg.non_speech_prob:
                    self._insert_non_speech(rng, x[b], y[b], m[b])
            else:
                a[b - cfg.batch] = tr.target[s + B : s + B + cfg.window]
            x[b] += 2 * math.log(10) / 20 * rng.uniform(-cfg.gain_db, cfg.gain_db) * (x[b] > -15)  # gain on log mel
            self._mask(rng, x[b])
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m), torch.from_numpy(a)

    def _mask(self, rng, x):
        """SpecAugment: hide random mel bands (in both fbank frames of a row) and a few rows."""
        mels = x.reshape(len(x), 2, N_MELS)
        for _ in range(self.cfg.freq_masks):
            w = int(rng.integers(0, 13))
            f = int(rng.integers(0, N_MELS - w + 1))
            mels[:, :, f : f + w] = mels.mean()
        for _ in range(self.cfg.time_masks):
            w = int(rng.integers(0, 4))
            t = int(rng.integers(0, len(x) - w + 1))
            mels[t : t + w] = mels.mean()

    def _insert_non_speech(self, rng, x, y, m):
        """Replace feature rows a..b with a non-speech sound; frames whose whole view
        (their rows up to the look-ahead) is non-speech must show the closed mouth."""
        cfg, L, B = self.cfg, self.lookahead, self.cfg.burn_in
        length = int(rng.integers(L + 8, self.span + 1))
        a = int(rng.integers(0, self.span - length + 1))
        src = self.pool[rng.integers(len(self.pool))]
        o = int(rng.integers(0, len(src) - length + 1))
        x[a : a + length] = src[o : o + length]
        # frame f (row f - s) sees rows up to f - s + L; closed if rows (f-s-2 .. f-s+L) are all inside
        for j in range(cfg.window):
            row = B + j
            if a + 2 <= row and row + L < a + length:
                y[j] = self.closed
                m[j] = 1.0
            elif a <= row + L and row - 2 < a + length:
                m[j] = 0.0  # partly speech, partly not: no target is right
