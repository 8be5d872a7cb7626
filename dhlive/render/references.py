"""Which frames of an avatar the renderer sees as references.

DINet picks references at random and DH_live takes the most open mouths; both can leave the
renderer without a closed mouth, or without the head turned the way the frame being drawn
is. Here the references spread over mouth opening and head pose: farthest-point sampling
in (aperture, yaw, pitch), each axis in units of its spread over the avatar, starting from
the most open mouth (teeth and inner mouth are what the renderer cannot invent).
"""

from __future__ import annotations

import numpy as np


def select_references(aperture: np.ndarray, euler: np.ndarray, n: int) -> np.ndarray:
    """Indices of n frames spread over mouth opening (N,) and head pose (N,3: yaw, pitch, roll)."""
    aperture = np.asarray(aperture, np.float64)
    if len(aperture) == 0 or n < 1:
        raise ValueError("need at least one frame and one reference")
    pose = np.asarray(euler, np.float64)[:, :2]
    points = np.column_stack([aperture, pose])
    spread = points.std(0)
    points = points / np.where(spread > 1e-9, spread, 1.0)
    chosen = [int(np.argmax(aperture))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < min(n, len(aperture)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:  # every remaining frame is a copy of one already chosen
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    distinct = len(chosen)
    while len(chosen) < n:  # fewer distinct frames than references: repeat them in order
        chosen.append(chosen[len(chosen) % distinct])
    return np.array(chosen)
