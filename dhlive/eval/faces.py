"""Following the main face through a video with the landmarker, for the metrics."""

from __future__ import annotations

import numpy as np

from ..constants import FPS
from ..data.landmarks import FaceLandmarker, MainFaceFollower
from ..facemesh import N_LANDMARKS


class FaceTrack:
    """Landmarks (pixels) of the main face, frame after frame; NaN where no face is found.
    Use as a context manager: the landmarker holds native threads."""

    def __init__(self, fps: float = FPS, face_model=None):
        self.fps = fps
        self._landmarker = FaceLandmarker(face_model, max_faces=2, video=True)
        self._follower = None
        self.landmarks: list[np.ndarray] = []

    def add(self, rgb: np.ndarray) -> np.ndarray | None:
        """Landmarks (478, 3) of this frame's main face, or None."""
        if self._follower is None:
            self._follower = MainFaceFollower(rgb.shape[1], rgb.shape[0])
        t_ms = int(round(len(self.landmarks) * 1000 / self.fps))
        face = self._follower.choose(self._landmarker.detect(rgb, t_ms))
        lm = face.landmarks.astype(np.float64) if face is not None else np.full((N_LANDMARKS, 3), np.nan)
        self.landmarks.append(lm)
        return lm if face is not None else None

    def array(self) -> np.ndarray:
        """(T, 478, 3) landmarks so far."""
        return np.stack(self.landmarks) if self.landmarks else np.zeros((0, N_LANDMARKS, 3))

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
