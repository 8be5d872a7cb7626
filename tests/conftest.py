"""Self-contained test material: a short talking clip made from skimage's astronaut photo
(with a known head motion) and espeak-ng speech, plus helpers for bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data as skdata

from dhlive import media
from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.speech import synthesize

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DHLIVE_SHARED_DATA", REPO.parent / "shared" / "data"))

# The astronaut photo is cut to this window and scaled up, so the face is ~200 px.
ASTRONAUT_WINDOW = (100, 20, 256)  # x0, y0, side in the original 512x512 photo
CLIP_SIZE = 384
CLIP_FPS = 25
CLIP_FRAMES = 50
# Where the face is in the original photo, read off the picture by eye (not by a detector).
ASTRONAUT_FACE_BOX = (160, 50, 290, 200)  # x0, y0, x1, y1: every face landmark is inside
ASTRONAUT_NOSE_BOX = (195, 110, 245, 150)  # the nose tip is inside


def astronaut_frame() -> np.ndarray:
    x0, y0, side = ASTRONAUT_WINDOW
    img = skdata.astronaut()[y0:y0 + side, x0:x0 + side]
    return cv2.resize(img, (CLIP_SIZE, CLIP_SIZE), interpolation=cv2.INTER_CUBIC)


def to_clip_coords(x, y):
    """Original-photo coordinates -> coordinates in the test clip."""
    x0, y0, side = ASTRONAUT_WINDOW
    s = CLIP_SIZE / side
    return (np.asarray(x) - x0) * s, (np.asarray(y) - y0) * s


def applied_roll(i: int) -> float:
    """Degrees (counter-clockwise on screen, as cv2 rotates) applied to frame i of the clip."""
    return 6.0 * np.sin(2 * np.pi * i / CLIP_FRAMES)


def moving_frames(base: np.ndarray, n: int = CLIP_FRAMES):
    h, w = base.shape[:2]
    for i in range(n):
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), applied_roll(i), 1.0)
        mat[:, 2] += (2.0 * np.sin(i / 7), 1.5 * np.cos(i / 5))
        yield cv2.warpAffine(base, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_clip(path: Path, frames, fps=CLIP_FPS, audio=None, rotation=0):
    """mp4 via PyAV; `rotation` stores frames turned and sets display-rotation metadata."""
    frames = list(frames)
    if rotation:
        k = rotation // 90
        frames = [np.ascontiguousarray(np.rot90(f, -k)) for f in frames]  # store turned back
        h, w = frames[0].shape[:2]
        with av.open(str(path), "w") as c:
            s = c.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.set_display_rotation(rotation)
            for f in frames:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode(None))
        return path
    h, w = frames[0].shape[:2]
    with media.Mp4Writer(path, fps, w, h, audio=audio) as wr:
        for f in frames:
            wr.write(f)
    return path


@pytest.fixture(scope="session")
def speech():
    """About 2 s of English speech, 16 kHz."""
    return synthesize("Hello there, how are you today?", words_per_minute=190)


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory, speech):
    path = tmp_path_factory.mktemp("clip") / "astronaut.mp4"
    return write_clip(path, moving_frames(astronaut_frame()), audio=speech)


@pytest.fixture(scope="session")
def face_avatar(tmp_path_factory, face_clip):
    out = tmp_path_factory.mktemp("avatars")
    return prepare(face_clip, "astro", out, PrepareConfig(size=256), progress=False).path


def run_cli(*args, cwd=None):
    """Run the installed `dhlive` entry point as a user would."""
    return subprocess.run([sys.executable, "-m", "dhlive.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def shared(*parts) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path
