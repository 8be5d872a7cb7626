"""Talking clips for the audio model: an avatar's audio, and its real mouth at each video frame;
and which clips were cut from one recording, so that training and evaluation never share one.

Frame i of an avatar was taken at `meta["source_index"][i] / fps` in its source; that is
where its audio features are read, so frames dropped by prepare (no face, extreme pose)
leave holes in the targets, never a shift between sound and mouth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import media
from ..constants import FPS, SAMPLE_RATE
from ..errors import DhliveError
from ..facemesh import aperture
from ..formats import load_avatar
from ..mouth import MouthRest, avatar_mouth
from .features import N_MELS, fbank_features

MIN_SECONDS = 2.0  # a clip shorter than this teaches nothing and cannot be evaluated
MIN_SPEECH_RMS = 1e-3  # about -60 dBFS over the whole clip: below this it is silent
SAME_RECORDING_R = 0.8  # spectral correlation above which two tracks are one recording
SAME_RECORDING_SECONDS = 2.0  # over at least this much overlap
MATCH_BANDS = 48  # mel bands compared: up to about 2.5 kHz, which every codec keeps
MATCH_FLOOR_DB = 25.0  # quieter than this below a band's loud frames is "nothing" when matching


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # 16 kHz mono float32, the whole source track
    frames: np.ndarray  # (N,) source frame index of each avatar frame (at FPS)
    lips: np.ndarray  # (N,40,3) canonical lip landmarks
    images: np.ndarray | None  # (N,H,W,3) mouth images
    rest: MouthRest

    @property
    def n_timeline(self) -> int:
        """Video frames covered by the audio."""
        return int(np.ceil(len(self.audio) / (SAMPLE_RATE / FPS)))

    @property
    def aperture(self) -> np.ndarray:
        return aperture(self.lips)

    def features(self) -> np.ndarray:
        """(n_timeline, 160) fbank rows of the clip's audio."""
        return fbank_features(self.audio)


def load_clip(path: str | Path, with_images: bool = True, min_seconds: float = MIN_SECONDS) -> Clip:
    """Load an avatar folder as a training or evaluation clip; errors name the folder and the problem."""
    avatar = load_avatar(path, check_images=with_images)
    if avatar.audio_path is None:
        raise DhliveError(f"avatar {avatar.root}: has no audio track, so it cannot teach or test the audio model")
    if abs(avatar.fps - FPS) > 1e-6:
        raise DhliveError(f"avatar {avatar.root}: prepared at {avatar.fps:g} fps; the audio model needs {FPS} fps")
    audio = media.load_audio(avatar.audio_path)
    seconds = len(audio) / SAMPLE_RATE
    if seconds < min_seconds:
        raise DhliveError(f"avatar {avatar.root}: audio is {seconds:.2f} s long, at least {min_seconds:g} s is needed")
    if float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) < MIN_SPEECH_RMS:
        raise DhliveError(f"avatar {avatar.root}: audio is silent (below -60 dBFS), nothing to learn from")
    frames = np.asarray(avatar.meta.get("source_index", np.arange(avatar.n_frames)), np.int64)
    lips, images, rest = avatar_mouth(avatar, with_images)
    clip = Clip(avatar.root.name, audio, frames, lips, images, rest)
    keep = frames < clip.n_timeline  # video may run a little past the audio
    if keep.sum() < min_seconds * FPS:
        raise DhliveError(f"avatar {avatar.root}: fewer than {min_seconds:g} s of frames overlap its audio")
    if not keep.all():
        clip.frames, clip.lips = frames[keep], lips[keep]
        clip.images = None if images is None else images[keep]
    return clip


def recording_match(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(r, offset): the best correlation of the two audio tracks' log-mel spectrograms (the
    lower MATCH_BANDS bands) over all offsets at which they overlap by
    SAME_RECORDING_SECONDS or more, and b's offset in a in video frames. Re-encoding,
    resampling and a level change keep r near 1; two different utterances, even of one
    speaker, stay well below SAME_RECORDING_R."""
    return _match(_spectrogram_z(a), _spectrogram_z(b))


def _match(fa: np.ndarray, fb: np.ndarray) -> tuple[float, int]:
    need = int(SAME_RECORDING_SECONDS * FPS)
    if min(len(fa), len(fb)) < need:
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(len(fa) + len(fb))))
    # cross-correlation along time, summed over bands, for every offset at once (FFT)
    cross = np.fft.irfft((np.fft.rfft(fa, size, axis=0) * np.conj(np.fft.rfft(fb, size, axis=0))).sum(1), size)
    lags = np.arange(-(len(fb) - 1), len(fa))  # where b's first frame falls in a
    cross = cross[lags % size]
    # each offset's energy of the overlapping parts, so r is a cosine over the overlap only
    ea = np.concatenate([[0.0], np.cumsum((fa**2).sum(1))])
    eb = np.concatenate([[0.0], np.cumsum((fb**2).sum(1))])
    lo_a, hi_a = np.maximum(0, lags), np.minimum(len(fa), lags + len(fb))
    lo_b, hi_b = lo_a - lags, hi_a - lags
    energy = np.sqrt(np.maximum((ea[hi_a] - ea[lo_a]) * (eb[hi_b] - eb[lo_b]), 1e-9))
    r = np.where(hi_a - lo_a >= need, cross / energy, -1.0)
    best = int(np.argmax(r))
    return float(r[best]), int(lags[best])


def _spectrogram_z(audio: np.ndarray) -> np.ndarray:
    """(frames, MATCH_BANDS / 2) log-mel of the lower bands in pairs, floored at MATCH_FLOOR_DB
    below each band's loud frames (so a copy's noise floor or digital silence does not count)
    and standardised over the clip (so level and a channel's colour cancel)."""
    mel = fbank_features(audio).reshape(-1, 2, N_MELS).mean(1)[:, :MATCH_BANDS]
    mel = mel.reshape(len(mel), MATCH_BANDS // 2, 2).mean(2)
    mel = np.maximum(mel, np.percentile(mel, 90, axis=0) - MATCH_FLOOR_DB * np.log(10) / 10)  # fbank: ln power
    return (mel - mel.mean(0)) / (mel.std(0) + 1e-6)


def shared_recordings(clips: list) -> list[set]:
    """Groups (sets of indices) of clips whose audio is one recording (re-encoded, cropped,
    cut differently): a benchmark must hold them out together, or it scores on what it
    trained on. Clips that share nothing are groups of one."""
    spectrograms = [_spectrogram_z(c.audio) for c in clips]
    group = list(range(len(clips)))
    for i in range(len(clips)):
        for j in range(i + 1, len(clips)):
            if _match(spectrograms[i], spectrograms[j])[0] >= SAME_RECORDING_R:
                old, new = group[j], group[i]
                group = [new if g == old else g for g in group]
    out: dict[int, set] = {}
    for i, g in enumerate(group):
        out.setdefault(g, set()).add(i)
    return list(out.values())


def source_of(name: str) -> str:
    """The source a clip came from: the part of its name before '__' (the repository it was
    taken from), or the whole name."""
    return name.split("__", 1)[0]


@dataclass(frozen=True)
class Fold:
    """One round of a benchmark held out by source: train on `train`, score `held` (clip indices)."""

    source: str
    held: tuple[int, ...]
    train: tuple[int, ...]


def source_folds(sources: list[str], recordings: list[set]) -> list[Fold]:
    """A fold per source: its clips are scored after training on every other clip except those
    that share a recording (`shared_recordings`) with one of them, so no source and no
    recording is ever on both sides."""
    together = {i: g for g in recordings for i in g}
    folds = []
    for source in sorted(set(sources)):
        held = [i for i, s in enumerate(sources) if s == source]
        heard = set().union(*(together.get(i, {i}) for i in held))
        train = [i for i, s in enumerate(sources) if s != source and i not in heard]
        folds.append(Fold(source, tuple(held), tuple(train)))
    return folds
