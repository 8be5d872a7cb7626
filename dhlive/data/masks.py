"""The lower-face region the renderer repaints, defined once in the canonical frame.

The polygon follows the jaw line below the nose tip, closed by a line across the face
at the nose tip's height. It is drawn on the person's mean face and then widened and
let down at the chin, so an open jaw (which the mean face does not show) still falls
inside. Being rigid in the canonical frame, it moves with the head only, never with
the mouth: the region is the same whatever the audio makes the mouth do.
"""

from __future__ import annotations

import numpy as np

from ..facemesh import CHIN, FACE_OVAL, NOSE_TIP

JAW_DROP = 0.25  # how far the chin may open, in eye-corner distances (canonical units)
SIDE_MARGIN = 0.06  # extra width on the cheeks, same units


def lower_face_polygon(
    mean_face: np.ndarray, jaw_drop: float = JAW_DROP, side_margin: float = SIDE_MARGIN
) -> np.ndarray:
    """(K,3) canonical polygon of the repaint region for this person's mean face."""
    face = np.asarray(mean_face, np.float64)
    oval = face[FACE_OVAL]
    cut = face[NOSE_TIP, 1]
    chin = face[CHIN, 1]
    cx = face[[NOSE_TIP, CHIN], 0].mean()
    pts = []
    n = len(oval)
    for i in range(n):  # walk the oval, keeping the part below the cut, with exact crossings
        a, b = oval[i], oval[(i + 1) % n]
        if a[1] >= cut:
            pts.append(a)
        if (a[1] - cut) * (b[1] - cut) < 0:
            w = (cut - a[1]) / (b[1] - a[1])
            pts.append(a + w * (b - a))
    poly = np.array(pts)
    depth = np.clip((poly[:, 1] - cut) / max(chin - cut, 1e-6), 0, 1)
    poly[:, 0] += np.sign(poly[:, 0] - cx) * side_margin
    poly[:, 1] += jaw_drop * depth**2
    return poly
