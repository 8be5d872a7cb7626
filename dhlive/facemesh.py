"""The mediapipe face mesh as every stage refers to it: which of its 478 landmarks are the
lips, the face oval and the rigid points, and the mouth aperture measured on them.

Indices are mediapipe's; "right" and "left" are the subject's.
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 478
N_BLENDSHAPES = 52

# lip contours (subject's right corner first), 20 outer + 20 inner
LIPS_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
LIPS_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
LIPS = LIPS_OUTER + LIPS_INNER
UPPER_INNER, LOWER_INNER, CORNER_RIGHT, CORNER_LEFT = 13, 14, 78, 308  # aperture = |13-14| / |78-308|

# the face oval, clockwise from the top of the forehead
FACE_OVAL = [
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
]
NOSE_TIP = 1
CHIN = 152
NOSE_LOWER = [98, 97, 2, 326, 327]  # nostrils and the columella

# Forehead and upper face oval, temples, eye corners (not lids) and nose: they move
# with the skull, not with speech or expression.
RIGID_POINTS = np.array(
    [
        10,
        338,
        297,
        332,
        284,
        109,
        67,
        103,
        54,
        151,
        9,
        8,  # forehead
        251,
        389,
        356,
        454,
        21,
        162,
        127,
        234,  # upper oval / temples
        33,
        133,
        362,
        263,  # eye corners
        168,
        6,
        197,
        195,
        5,
        4,
        1,
        98,
        327,
        129,
        358,  # nose bridge, tip, wings
    ]
)
EYE_OUTER = (33, 263)  # right eye outer corner, left eye outer corner

_LIP_SLOT = {p: i for i, p in enumerate(LIPS)}


def lip_points(landmarks: np.ndarray) -> np.ndarray:
    """(..., 478, 3) face landmarks -> (..., 40, 3) lip landmarks."""
    return landmarks[..., LIPS, :]


def lip_slot(point: int) -> int:
    """Where face-mesh point `point` sits in a (40, ...) lip array."""
    return _LIP_SLOT[point]


def aperture(points: np.ndarray) -> np.ndarray:
    """Mouth opening |p13 - p14| / |p78 - p308| of face (478) or lip (40) landmark arrays."""
    idx = _LIP_SLOT if points.shape[-2] == len(LIPS) else {p: p for p in _LIP_SLOT}
    p = lambda k: points[..., idx[k], :2]  # noqa: E731
    return np.linalg.norm(p(UPPER_INNER) - p(LOWER_INNER), axis=-1) / np.maximum(
        np.linalg.norm(p(CORNER_RIGHT) - p(CORNER_LEFT), axis=-1), 1e-6
    )
