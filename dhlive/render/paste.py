"""Paste-back: the generated render window goes back into the full-resolution frame.

Before pasting, the generated window's colour is matched to the frame it replaces
(`COLOUR_MATCH`): `skin` gives the skin outside the mouth the frame's own colour and
smoothness, `edge` matches the colour only where the two meet, `off` pastes as drawn.
The window is then warped into the frame by its affine map and blended through the
feathered paste-back mask, touching only the region the window covers.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import inputs

COLOUR_MATCH = ("skin", "edge", "off")  # before pasting: match_skin, match_edge, as drawn

SKIN_SIGMA = 1 / 16  # smoothness of the colour and contrast fields, in window sides
SKIN_CHANGE = (
    25.0  # grey levels: where generated and real skin differ more than the rest (the jaw moved), they are not compared
)
TEXTURE_FLOOR = 0.5  # the generated skin's local contrast is damped to the real skin's, at most to half


def match_edge(generated: np.ndarray, window: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Shift the generated window's colour so that, in the feathered band where it meets the
    real frame, its local mean colour equals the frame's: a smooth per-channel correction
    field (not one global offset), so light falling across the face is followed too. Where
    the jaw crosses the band, the two differ in kind, not in colour; those pixels are left
    out (`_same_skin`), or the whole face would take their offset. The field is smooth, so it
    is computed at a quarter of the resolution."""
    size = generated.shape[1], generated.shape[0]
    small = (max(8, size[0] // 4), max(8, size[1] // 4))
    band_s = cv2.resize(((alpha > 0.02) & (alpha < 0.9)).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    diff_s = cv2.resize(window - generated, small, interpolation=cv2.INTER_AREA)
    band_s *= _same_skin(diff_s, band_s)
    if band_s.sum() * (size[0] * size[1]) / (small[0] * small[1]) < 16:
        return generated
    sigma = small[1] / 12
    diff_s *= band_s[..., None]
    mean = diff_s.sum((0, 1)) / band_s.sum()  # the band's mean offset
    diff_s = cv2.GaussianBlur(diff_s, (0, 0), sigma)
    weight_s = cv2.GaussianBlur(band_s, (0, 0), sigma)[..., None]
    # where the band is far away, fall back to the band's mean offset
    field = (diff_s + mean * 1e-2) / (weight_s + 1e-2)
    return generated + cv2.resize(field, size, interpolation=cv2.INTER_LINEAR)


def _same_skin(difference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Where (weight > 0) the real and generated windows differ by about the typical amount,
    from their (H, W, 3) difference at a quarter of the resolution: the same skin, shaded
    differently. Elsewhere (more than SKIN_CHANGE grey levels from the median difference) the
    jaw or the lips moved, and comparing colours there would be comparing different things."""
    change = cv2.GaussianBlur(difference.mean(-1), (0, 0), 1.0)
    if (weight > 0).sum() < 4:
        return np.ones_like(change)
    return (np.abs(change - np.median(change[weight > 0])) < SKIN_CHANGE).astype(np.float32)


def match_skin(generated: np.ndarray, window: np.ndarray, alpha: np.ndarray, lips: list[np.ndarray]) -> np.ndarray:
    """Give the generated skin the colour and the smoothness of the real frame it replaces.

    Only the mouth and the jaw should change; the cheeks, chin and upper lip keep the
    person's own skin, which a base renderer that has not seen this face draws as its
    training faces' skin instead. So, compared over the paste-back region less the mouth
    (around the `lips` given, (40, 2) window pixels each: `inputs.mouth_region`) and less
    where the two differ in kind (the jaw moved), the generated window is shifted to the
    real one's local mean colour and its local contrast is damped to the real one's (never
    raised): two smooth fields, computed at a quarter of the resolution. Inside the mouth
    only the colour shift applies, carried in from around it."""
    size = generated.shape[1], generated.shape[0]
    small = (max(8, size[0] // 4), max(8, size[1] // 4))
    down = lambda x: cv2.resize(x, small, interpolation=cv2.INTER_AREA)  # noqa: E731
    mouth = inputs.mouth_region([np.asarray(p)[:, :2] * (small[0] / size[0]) for p in lips], small[0])
    weight = ((down(alpha) > 0.02) & (mouth < 0.5)).astype(np.float32)
    gen, win = down(generated), down(window)
    weight *= _same_skin(win - gen, weight)
    if weight.sum() < 4:
        return generated
    w = weight[..., None]
    # the local sums of the weight, colours and squares, in one blur
    sums = cv2.GaussianBlur(
        np.concatenate([w, gen * w, win * w, down(generated * generated) * w, down(window * window) * w], -1),
        (0, 0),
        small[1] * SKIN_SIGMA,
    )
    cover, sum_g, sum_w, sq_g, sq_w = sums[..., :1], sums[..., 1:4], sums[..., 4:7], sums[..., 7:10], sums[..., 10:]
    mean_shift = ((win - gen) * w).sum((0, 1)) / weight.sum()
    # where no skin is near, fall back to the region's mean shift
    shift = (sum_w - sum_g + mean_shift * 1e-2) / (cover + 1e-2)
    c = np.maximum(cover, 1e-3)
    mean_g, mean_w = sum_g / c, sum_w / c
    var_g, var_w = sq_g / c - mean_g**2, sq_w / c - mean_w**2
    gain = np.clip(np.sqrt((np.maximum(var_w, 0) + 1) / (np.maximum(var_g, 0) + 1)), TEXTURE_FLOOR, 1.0)
    gain = np.where(cover > 0.05, gain, 1.0)
    gain = 1 - (1 - gain) * (1 - mouth[..., None])
    shift = shift + mean_g * (1 - gain)  # out = mean + shift + (generated - mean) * gain
    up = lambda x: cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    return generated * up(gain) + up(shift)


def paste_window(
    frame: np.ndarray,
    generated: np.ndarray,
    window: np.ndarray,
    alpha: np.ndarray,
    window_to_frame: np.ndarray,
    lips: list[np.ndarray],
    colour_match: str = "skin",
) -> np.ndarray:
    """`frame` (H, W, 3 uint8, changed in place and returned) with the (R, R, 3) generated
    window pasted through the (R, R) paste-back mask `alpha`; `window` is what was cut from
    the frame there, `window_to_frame` the (2, 3) map from window to frame pixels, `lips`
    the generated and real lips in window pixels (the skin match leaves the mouth alone)."""
    size = generated.shape[0]
    gen, win = generated.astype(np.float32), window.astype(np.float32)
    if colour_match == "skin":
        gen = match_skin(gen, win, alpha, lips)
    elif colour_match == "edge":
        gen = match_edge(gen, win, alpha)
    h, w = frame.shape[:2]
    m = np.asarray(window_to_frame, np.float64).copy()
    corners = np.c_[[[0, 0], [size, 0], [0, size], [size, size]], np.ones(4)] @ m.T
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, (w, h))
    if x1 <= x0 or y1 <= y0:
        return frame
    m[:, 2] -= (x0, y0)  # warp into the region of interest only
    roi_size = (int(x1 - x0), int(y1 - y0))
    a = cv2.warpAffine(alpha, m, roi_size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    # bicubic, like the cut: bilinear sampling at both ends loses fine detail of the mouth
    g = cv2.warpAffine(np.clip(gen, 0, 255), m, roi_size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi + a * (g - roi) + 0.5, 0, 255).astype(np.uint8)
    return frame
