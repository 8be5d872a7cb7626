"""Talking clips for the audio model: an avatar's audio, and its real mouth at each video frame.

Frame i of an avatar was taken at `meta["source_index"][i] / fps` in its source; that is
where its audio features are read, so frames dropped by prepare (no face, extreme pose)
leave holes in the targets, never a shift between sound and mouth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import media
from ..errors import DhliveError
from ..formats import load_avatar
from .features import FPS, SAMPLE_RATE, fbank_features
from .mouth import MouthRest, aperture, avatar_mouth

MIN_SECONDS = 2.0  # a clip shorter than this teaches nothing and cannot be evaluated
MIN_SPEECH_RMS = 1e-3  # about -60 dBFS over the whole clip: below this it is silent


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


def load_clip(path: str | Path, with_images: bool = True) -> Clip:
    """Load an avatar folder as a training or evaluation clip; errors name the folder and the problem."""
    avatar = load_avatar(path, check_images=with_images)
    if avatar.audio_path is None:
        raise DhliveError(f"avatar {avatar.root}: has no audio track, so it cannot teach or test the audio model")
    if abs(avatar.fps - FPS) > 1e-6:
        raise DhliveError(f"avatar {avatar.root}: prepared at {avatar.fps:g} fps; the audio model needs {FPS} fps")
    audio = media.load_audio(avatar.audio_path)
    seconds = len(audio) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise DhliveError(f"avatar {avatar.root}: audio is {seconds:.2f} s long, at least {MIN_SECONDS:g} s is needed")
    if float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) < MIN_SPEECH_RMS:
        raise DhliveError(f"avatar {avatar.root}: audio is silent (below -60 dBFS), nothing to learn from")
    frames = np.asarray(avatar.meta.get("source_index", np.arange(avatar.n_frames)), np.int64)
    lips, images, rest = avatar_mouth(avatar, with_images)
    clip = Clip(avatar.root.name, audio, frames, lips, images, rest)
    keep = frames < clip.n_timeline  # video may run a little past the audio
    if keep.sum() < MIN_SECONDS * FPS:
        raise DhliveError(f"avatar {avatar.root}: fewer than {MIN_SECONDS:g} s of frames overlap its audio")
    if not keep.all():
        clip.frames, clip.lips = frames[keep], lips[keep]
        clip.images = None if images is None else images[keep]
    return clip
