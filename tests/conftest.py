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
import torch
from skimage import data as skdata

from dhlive import media
from dhlive.audio.inference import save_audio_model
from dhlive.audio.model import AudioModel, AudioModelConfig
from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.facemesh import LIPS
from dhlive.mouth import fit_basis, save_basis
from dhlive.render.checkpoint import save_renderer
from dhlive.render.model import Renderer, preset
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
    img = skdata.astronaut()[y0 : y0 + side, x0 : x0 + side]
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


TINY_MODEL = {"resolution": 128, "width": 8, "max_width": 32, "blocks": 1}


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """An audio model folder (basis with a known 'open' direction, strong output) and a renderer."""
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    open_dir = np.zeros((len(LIPS), 3), np.float32)
    open_dir[[*range(1, 10), *range(21, 30)], 1] = 0.1
    a = rng.uniform(0, 1, (100, 1))
    dl = (a * open_dir.reshape(1, -1) + rng.normal(0, 1e-3, (100, 120))).astype(np.float32)
    di = (a * rng.normal(0, 1, (1, 1350)) + rng.normal(0, 0.1, (100, 1350))).astype(np.float32)
    basis = fit_basis(dl, di, "lips+pixels", n_coeffs=4)
    (root / "audio").mkdir()
    save_basis(root / "audio" / "pca.pkl", basis)
    torch.manual_seed(0)
    model = AudioModel(AudioModelConfig(n_coeffs=4))
    model.closed.copy_(torch.from_numpy(basis.closed))
    save_audio_model(root / "audio" / "audio_model.pt", model, root / "audio" / "pca.pkl", {})
    torch.manual_seed(0)
    renderer = Renderer(preset("fast", **TINY_MODEL))
    with torch.no_grad():  # a renderer that draws something visible: mid-grey plus its input's structure
        renderer.to_rgb[0].bias.fill_(0.3)
    save_renderer(root / "render.pt", renderer)
    return root / "audio", root / "render.pt"


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory, speech):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    audio = np.concatenate([speech, np.zeros(16000 * 3, np.float32), speech])  # 7 s: longer than the 2 s avatar
    media.write_wav(path, audio)
    return path


# distill-audio settings small enough for a test: seconds on a CPU
SMALL_DISTILL = dict(
    steps=30,
    batch=8,
    window=12,
    burn_in=4,
    copies=1,
    checkpoint_every=10,
    log_every=5,
    warmup=5,
    phonetic_seconds=15,
    phonetic_batch=4,
)


def talking(root, name: str, text: str):
    """An avatar of the moving astronaut saying `text` (generated speech)."""
    from dhlive.speech import synthesize

    audio = synthesize(text, words_per_minute=190)
    n = int(np.ceil(audio.size / 640))
    clip = write_clip(root / f"{name}.mp4", moving_frames(astronaut_frame(), n), audio=audio)
    return prepare(clip, name, root, PrepareConfig(size=128), progress=False).path


@pytest.fixture(scope="session")
def talking_avatar(tmp_path_factory):
    """About 4 s of generated speech over the moving astronaut."""
    return talking(
        tmp_path_factory.mktemp("talking"), "talk", "Hello there, how are you today? I am fine, thank you very much."
    )


def run_cli(*args, cwd=None):
    """Run the installed `dhlive` entry point as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "dhlive.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def shared(*parts) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture()
def serve_parts(tmp_path, face_avatar, models):
    """What a `dhlive serve` app is made of in the tests: an avatars folder with one avatar,
    anna; a jobs folder; `render` (infer with the small models); `live` (a LiveAvatar with the
    shipped live audio model, so that the mouth means something, and the small renderer), and
    `made`, the LiveAvatars it made."""
    import shutil
    from types import SimpleNamespace

    from dhlive.infer import infer
    from dhlive.serve.live import LiveAvatar

    avatars = tmp_path / "avatars"
    avatars.mkdir()
    shutil.copytree(face_avatar, avatars / "anna")
    made = []

    def render(job, audio, out, on_frame):
        infer(
            audio,
            avatars / job.avatar,
            out,
            audio_model=models[0],
            renderer=models[1],
            progress=False,
            on_frame=on_frame,
        )

    def live(folder):
        made.append(LiveAvatar(folder, None, models[1]))
        return made[-1]

    return SimpleNamespace(avatars=avatars, work=tmp_path / "jobs", render=render, live=live, made=made)
