"""What the renderer sees, built by the same functions in training and at inference.

The render window is a square fixed to the face in the canonical frame (pose removed,
unit = eye-corner distance): the bounding square of the person's lower-face polygon
plus a margin, on the plane of the mouth. Each frame's head pose maps it into the
crop (and the source frame) by one affine transform, so in the window the mouth sits
in the same place and scale whatever the head does; paste-back inverts the transform.

For one frame the renderer gets

    source      the window with the repaint region blacked out (3), the mouth prompt (3)
                and the lip sketch (1)                                   -> SOURCE_CHANNELS
    references  n windows of the same person, each RGB (3) + a landmark sketch (1)

The mouth prompt and the lip sketch come from mouth PCA coefficients decoded for this
speaker (`MouthBasis.decode`): at inference the audio model's coefficients, in
training the real mouth encoded into the same basis with noise added, so the renderer
is trained on exactly the kind of prompt it will be given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..facemesh import FACE_OVAL, LIPS, LIPS_INNER, LIPS_OUTER, NOSE_LOWER
from ..geometry import polygon_mask
from ..mouth import IMAGE_H, IMAGE_W, MouthBasis, MouthRest, mouth_grid
from .model import REFERENCE_CHANNELS, SOURCE_CHANNELS

WINDOW_MARGIN = 1.12  # window side / the lower-face polygon's larger extent
FEATHER = 0.035  # paste-back feather, in window sides: the composite fades in inside the polygon
MOUTH_MARGIN = 0.06  # paste-back: skin this far (in window sides) around the lips counts as mouth
MOUTH_BOX = 0.42  # side of the mouth crop (metrics, mouth discriminator), in window sides
SKETCH_WIDTH = 1.0 / 128  # line width of the sketches, in window sides
NOSE_MARGIN = 0.008  # paste-back begins this far (in window sides) below the nostrils
LIP_CLEARANCE = 0.055  # ... and at least this far above the lips: the feather is at 95% there

_LIP_SLOTS = {p: i for i, p in enumerate(LIPS)}
_OUTER = [_LIP_SLOTS[p] for p in LIPS_OUTER]
_INNER = [_LIP_SLOTS[p] for p in LIPS_INNER]


@dataclass(frozen=True)
class Window:
    """The render window of one person: a canonical square on the mouth plane."""

    x0: float  # top-left corner, canonical units
    y0: float
    side: float
    z: float  # canonical depth of the plane (the mouth)
    size: int  # pixels per side (the renderer's resolution)

    def canonical_to_window(self, pose: np.ndarray) -> np.ndarray:
        """(2,4) matrix: canonical [x, y, z, 1] -> window pixels, for a frame's 4x4 pose.

        Points on the window plane map exactly; points off it follow the pose's own
        parallax, so lips drawn with it land where the camera saw them."""
        to_pixels = np.asarray(pose, np.float64)[:2]  # (2,4) canonical -> source pixels
        plane = self._plane_to_pixels(to_pixels)  # (2,3) window pixels -> source pixels
        inv = cv2.invertAffineTransform(plane)
        return (inv[:, :2] @ to_pixels + np.concatenate([np.zeros((2, 3)), inv[:, 2:]], 1)).astype(np.float32)

    def _plane_to_pixels(self, to_pixels: np.ndarray) -> np.ndarray:
        k = self.side / self.size
        a = to_pixels[:, :2] * k
        b = to_pixels[:, :2] @ (self.x0, self.y0) + to_pixels[:, 2] * self.z + to_pixels[:, 3]
        return np.concatenate([a, b[:, None]], 1)

    def to_source(self, pose: np.ndarray) -> np.ndarray:
        """(2,3) affine: window pixels -> source-frame pixels (warpAffine with WARP_INVERSE_MAP
        samples the window from a frame; without it, pastes a window into the frame)."""
        return self._plane_to_pixels(np.asarray(pose, np.float64)[:2]).astype(np.float32)


def face_window(lower_face: np.ndarray, lips: np.ndarray, size: int) -> Window:
    """The window of a person from their canonical lower-face polygon and (40,3) rest lips."""
    lo, hi = lower_face[:, :2].min(0), lower_face[:, :2].max(0)
    side = float(max(hi - lo) * WINDOW_MARGIN)
    cx, cy = (lo + hi) / 2
    return Window(float(cx - side / 2), float(cy - side / 2), side, float(np.mean(lips[:, 2])), int(size))


def cut_window(image: np.ndarray, window_to_image: np.ndarray, size: int) -> np.ndarray:
    """Sample the (size, size) window from a source frame (training packs and inference alike).

    Bicubic, as at paste-back: bilinear sampling at both ends blurs the mouth's fine detail."""
    return cv2.warpAffine(
        image,
        window_to_image,
        (size, size),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def project(points: np.ndarray, canonical_to_window: np.ndarray) -> np.ndarray:
    """(..., 3) canonical points -> (..., 2) window pixels."""
    return points @ canonical_to_window[:, :3].T + canonical_to_window[:, 3]


def repaint_mask(polygon_xy: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 mask of the repaint polygon in window pixels (anti-aliased edge)."""
    return polygon_mask(polygon_xy, size, size)


def nose_row(landmarks_window: np.ndarray, size: int) -> float:
    """The row of a size x size window just below the frame's nostrils (its landmarks in
    window pixels): above it the paste-back keeps the real frame. Never so low that the
    feather reaches the upper lip: the lips are always drawn at full strength."""
    below_nose = landmarks_window[NOSE_LOWER, 1].max() + NOSE_MARGIN * size
    above_lips = landmarks_window[LIPS_OUTER, 1].min() - LIP_CLEARANCE * size
    return float(min(below_nose, above_lips))


def paste_mask(repaint: np.ndarray, keep_above: float | None = None) -> np.ndarray:
    """The feathered paste-back mask: 0 outside the repaint polygon, fading to 1 inside it.

    Eroded before blurring, so nothing outside the polygon (where the source was not
    blacked out) ever changes. Rows above `keep_above` (`nose_row`) count as outside: the
    nose does not move with the mouth, and the real one is sharper than any redrawn one."""
    size = repaint.shape[0]
    r = max(1, int(round(FEATHER * size)))
    inside = (repaint > 0).astype(np.uint8)  # eroded as bytes: several times faster than as floats, same result
    if keep_above is not None:
        inside[: max(0, int(np.ceil(keep_above)))] = 0
    core = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.GaussianBlur(core.astype(np.float32), (0, 0), r / 3) * inside


def mouth_region(lips_windows: list[np.ndarray], size: int) -> np.ndarray:
    """(size, size) float mask, 1 over the lips given (each (40, 2) pixels: the generated
    mouth and the real one) and MOUTH_MARGIN around them, soft-edged: where the paste-back
    leaves the generated pixels' own contrast."""
    m = np.zeros((size, size), np.uint8)
    for lips in lips_windows:
        cv2.fillConvexPoly(m, cv2.convexHull(np.round(np.asarray(lips)[:, :2]).astype(np.int32)), 1)
    r = max(1, int(round(MOUTH_MARGIN * size)))
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.GaussianBlur(m.astype(np.float32), (0, 0), r / 2)


def mouth_box(lips_window: np.ndarray, size: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square mouth crop around a frame's lips, inside the window."""
    side = int(round(MOUTH_BOX * size))
    c = lips_window.mean(0)
    x0 = int(np.clip(round(c[0] - side / 2), 0, size - side))
    y0 = int(np.clip(round(c[1] - side / 2), 0, size - side))
    return x0, y0, side


def draw_lines(size: int, chains: list[np.ndarray], closed: bool = True) -> np.ndarray:
    canvas = np.zeros((size, size), np.float32)
    width = max(1, int(round(SKETCH_WIDTH * size)))
    pts = [np.round(c[:, :2] * 16).astype(np.int32) for c in chains]
    cv2.polylines(canvas, pts, closed, 1.0, width, lineType=cv2.LINE_AA, shift=4)
    return canvas


def lip_sketch(lips_window: np.ndarray, size: int) -> np.ndarray:
    """(size, size) line drawing of the outer and inner lip contours."""
    return draw_lines(size, [lips_window[_OUTER], lips_window[_INNER]])


def face_sketch(landmarks_window: np.ndarray, size: int) -> np.ndarray:
    """(size, size) line drawing of a reference frame: lips, face oval and nose base."""
    lips = landmarks_window[LIPS]
    return np.maximum(
        draw_lines(size, [lips[_OUTER], lips[_INNER], landmarks_window[FACE_OVAL]]),
        draw_lines(size, [landmarks_window[NOSE_LOWER]], closed=False),
    )


def prompt_image(mouth_image: np.ndarray, grid_window: np.ndarray, size: int) -> np.ndarray:
    """Paint the (IMAGE_H, IMAGE_W, 3) 0..255 mouth image into the window where its
    canonical sampling grid lies; (size, size, 3) float 0..1, black elsewhere."""
    src = np.float32([[0, 0], [IMAGE_W - 1, 0], [0, IMAGE_H - 1]])
    dst = np.float32([grid_window[0, 0], grid_window[0, -1], grid_window[-1, 0]])
    m = cv2.getAffineTransform(src, dst)
    img = cv2.warpAffine(
        np.ascontiguousarray(mouth_image, np.float32) / 255.0,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    step = float(np.linalg.norm(grid_window[0, 1] - grid_window[0, 0]))
    return cv2.GaussianBlur(img, (0, 0), max(step / 2, 0.5))  # the grid's resolution, no blocks


def mouth_prompt(
    coeffs: np.ndarray, basis: MouthBasis, rest: MouthRest, canonical_to_window: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth PCA coefficients (k,) of one frame -> prompt (size,size,3), lip sketch (size,size)
    and the decoded lips in window pixels (40,2)."""
    lips, image = basis.decode(np.asarray(coeffs, np.float32)[None], rest)
    lips_window = project(lips[0], canonical_to_window)
    grid_window = project(mouth_grid(rest.lips), canonical_to_window)
    return prompt_image(image[0], grid_window, size), lip_sketch(lips_window, size), lips_window


def source_input(window_rgb: np.ndarray, repaint: np.ndarray, prompt: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """(SOURCE_CHANNELS, R, R) float32: the window (uint8 RGB) with the repaint region
    blacked out, the mouth prompt and the lip sketch."""
    x = np.empty((SOURCE_CHANNELS, *repaint.shape), np.float32)  # filled in place: this runs per frame
    np.multiply(window_rgb.transpose(2, 0, 1), repaint <= 0, out=x[:3])
    x[:3] /= 255.0
    x[3:6] = prompt.transpose(2, 0, 1)
    x[6] = sketch
    return x


def reference_input(windows_rgb: np.ndarray, landmarks_window: np.ndarray) -> np.ndarray:
    """(n, R, R, 3) uint8 reference windows and their (n, 478, 2) landmarks ->
    (n * REFERENCE_CHANNELS, R, R) float32."""
    size = windows_rgb.shape[1]
    parts = [
        np.concatenate([w.astype(np.float32) / 255.0, face_sketch(lm, size)[..., None]], -1)
        for w, lm in zip(windows_rgb, landmarks_window)
    ]
    x = np.concatenate(parts, -1).transpose(2, 0, 1)
    assert x.shape[0] == REFERENCE_CHANNELS * len(windows_rgb)
    return np.ascontiguousarray(x, np.float32)


def composite(generated, window, paste):
    """Generated window over the real one through the feathered paste-back mask (numpy or torch)."""
    return generated * paste + window * (1 - paste)
