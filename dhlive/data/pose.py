"""Head pose from landmarks: a similarity fit on rigid points only, so that talking
(mouth, jaw, cheeks, eyelids, brows) does not move the pose.

Pixel frame: x right, y down, z depth away from the camera. The canonical frame is the
person's own frontal mean face (origin at the rigid points' centroid, unit = outer
eye-corner distance), oriented frontal using mediapipe's facial transformation matrix.
pixel = s R canonical + t, stored as a 4x4 matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..facemesh import EYE_OUTER, RIGID_POINTS
from ..geometry import smooth_series, umeyama

# The DH_live smoothing kernel, applied where the head is still. Where it moves fast,
# any smoothing lags the real head (on a fast-moving clip the fixed kernel quadrupled
# the jitter of the pose-normalised upper face), so the raw fit is blended back in.
DEFAULT_SMOOTHING = (0.1, 0.8, 0.1)
STILL_SPEED = 0.01  # eye distances per frame: below this the pose is fully smoothed
FAST_SPEED = 0.03  # above this it is not smoothed at all

_FLIP = np.diag([1.0, -1.0, -1.0])  # mediapipe's OpenGL axes (y up, z to viewer) <-> pixel axes


def mediapipe_rotation(matrix: np.ndarray) -> np.ndarray:
    """Rotation part of mediapipe's facial transformation matrix, in pixel axes."""
    r = np.asarray(matrix, np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(r)  # strip any scale
    return _FLIP @ (u @ vt) @ _FLIP


def euler_angles(r: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of R = Rz(roll) Ry(yaw) Rx(pitch), pixel axes.

    Roll is positive when the face turns clockwise on screen.
    """
    yaw = np.degrees(np.arcsin(np.clip(-r[..., 2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(r[..., 2, 1], r[..., 2, 2]))
    roll = np.degrees(np.arctan2(r[..., 1, 0], r[..., 0, 0]))
    return np.stack([yaw, pitch, roll], -1)


def _mean_rotation(rs: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(rs.mean(0))
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


def _to_quat(r: np.ndarray) -> np.ndarray:
    """(N,3,3) -> (N,4) unit quaternions (w, x, y, z)."""
    q = np.empty((len(r), 4))
    for i, m in enumerate(r):
        t = np.trace(m)
        if t > 0:
            s = np.sqrt(t + 1.0) * 2
            q[i] = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s)
        else:
            k = int(np.argmax(np.diag(m)))
            a, b = (k + 1) % 3, (k + 2) % 3
            s = np.sqrt(1.0 + m[k, k] - m[a, a] - m[b, b]) * 2
            v = np.empty(3)
            v[k] = 0.25 * s
            v[a] = (m[a, k] + m[k, a]) / s
            v[b] = (m[b, k] + m[k, b]) / s
            q[i] = ((m[b, a] - m[a, b]) / s, *v)
    return q


def _from_quat(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        1,
    )


@dataclass
class PoseFit:
    matrices: np.ndarray  # (N,4,4) canonical -> pixel
    euler: np.ndarray  # (N,3) yaw, pitch, roll degrees
    mean_face: np.ndarray  # (478,3) canonical frontal mean face
    canonical: np.ndarray  # (N,478,3) landmarks in the canonical frame


def _fit_all(template: np.ndarray, pixels: np.ndarray):
    s = np.empty(len(pixels))
    r = np.empty((len(pixels), 3, 3))
    t = np.empty((len(pixels), 3))
    src = template[RIGID_POINTS]
    for i, p in enumerate(pixels):
        s[i], r[i], t[i] = umeyama(src, p[RIGID_POINTS].astype(np.float64))
    return s, r, t


def _speed_gate(points, s, r, t, segments) -> np.ndarray:
    """Per frame 0 (still head: smooth) .. 1 (fast head: keep the raw fit), from how far
    the rigid points travel per frame, in eye distances (central difference)."""
    moved = s[:, None, None] * np.einsum("nij,pj->npi", r, points) + t[:, None]
    speed = np.zeros(len(s))
    for a, b in segments:
        seg = moved[a:b]
        if len(seg) >= 3:
            step = np.linalg.norm(seg[2:] - seg[:-2], axis=-1).mean(1) / (2 * s[a + 1 : b - 1])
            speed[a + 1 : b - 1] = step
            speed[a], speed[b - 1] = step[0], step[-1]
    return np.clip((speed - STILL_SPEED) / (FAST_SPEED - STILL_SPEED), 0, 1)


def _normalise(face: np.ndarray) -> np.ndarray:
    """Centre on the rigid centroid, scale to unit eye-corner distance."""
    face = face - face[RIGID_POINTS].mean(0)
    return face / np.linalg.norm(face[EYE_OUTER[0]] - face[EYE_OUTER[1]])


def fit_poses(
    pixels: np.ndarray,
    mp_matrices: np.ndarray,
    segments: list[tuple[int, int]] | None = None,
    smoothing=DEFAULT_SMOOTHING,
) -> PoseFit:
    """Per-frame head pose of one person.

    pixels: (N,478,3) landmarks; mp_matrices: (N,4,4) mediapipe transformation matrices
    (only their rotations are used, to turn the mean face frontal); segments: runs of
    consecutive frames, smoothing does not cross their borders.
    """
    pixels = np.asarray(pixels, np.float64)
    n = len(pixels)
    segments = segments or [(0, n)]
    mp_rot = np.stack([mediapipe_rotation(m) for m in mp_matrices])

    # Pass 1: the frame mediapipe finds most frontal is the first template.
    angles = np.abs(euler_angles(mp_rot)[:, :2]).sum(1)
    template = _normalise(pixels[int(np.argmin(angles))])
    s, r, t = _fit_all(template, pixels)
    canon = np.einsum("nji,nkj->nki", r, pixels - t[:, None]) / s[:, None, None]
    mean = canon.mean(0)
    # Turn the personal mean face frontal: mediapipe's rotation of each frame relative to
    # our fitted one, averaged, is the template's own rotation away from frontal.
    frontal = _mean_rotation(np.einsum("nji,njk->nik", mp_rot, r))
    template = _normalise(mean @ frontal.T)

    # Pass 2: fit against the frontal personal mean face, then smooth where the head is still.
    s, r, t = _fit_all(template, pixels)
    q = _to_quat(r)
    for i in range(1, n):  # keep quaternions on one hemisphere so averaging is meaningful
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    keep_raw = _speed_gate(template[RIGID_POINTS], s, r, t, segments)[:, None]
    q = keep_raw * q + (1 - keep_raw) * smooth_series(q, smoothing, segments)
    r = _from_quat(q)
    s = np.exp(keep_raw[:, 0] * np.log(s) + (1 - keep_raw[:, 0]) * smooth_series(np.log(s), smoothing, segments))
    t = keep_raw * t + (1 - keep_raw) * smooth_series(t, smoothing, segments)

    mats = np.zeros((n, 4, 4))
    mats[:, :3, :3] = s[:, None, None] * r
    mats[:, :3, 3] = t
    mats[:, 3, 3] = 1
    canonical = to_canonical(pixels, mats)
    return PoseFit(mats, euler_angles(r), canonical.mean(0), canonical)


def to_canonical(pixels: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(N,P,3) pixel points -> canonical frame, by the inverse of each pose."""
    inv = np.linalg.inv(matrices)
    return np.einsum("nij,npj->npi", inv[:, :3, :3], pixels) + inv[:, None, :3, 3]


def to_pixels(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(P,3) or (N,P,3) canonical points -> (N,P,3) pixels."""
    pts = np.broadcast_to(points, (len(matrices),) + np.shape(points)[-2:])
    return np.einsum("nij,npj->npi", matrices[:, :3, :3], pts) + matrices[:, None, :3, 3]
