"""Numeric helpers several stages share: a similarity fit between point sets, smoothing a
series over time within segments, and rasterising a polygon."""

from __future__ import annotations

import cv2
import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ s R src + t (Umeyama 1991) of (N, D) points; R is a proper rotation."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    e = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[-1, -1] = -1
    r = u @ e @ vt
    var = (a**2).sum() / len(src)
    s = float(np.trace(np.diag(d) @ e) / var)
    t = mu_d - s * r @ mu_s
    return s, r, t


def smooth_series(x: np.ndarray, kernel, segments: list[tuple[int, int]]) -> np.ndarray:
    """Convolve along time within each [start, end) segment, edges held."""
    kernel = np.asarray(kernel, np.float64)
    kernel = kernel / kernel.sum()
    half = len(kernel) // 2
    out = np.array(x, np.float64, copy=True)
    for a, b in segments:
        seg = np.asarray(x[a:b], np.float64)
        padded = np.concatenate([np.repeat(seg[:1], half, 0), seg, np.repeat(seg[-1:], half, 0)])
        acc = np.zeros_like(seg)
        for j, w in enumerate(kernel):
            acc += w * padded[j : j + len(seg)]
        out[a:b] = acc
    return out


def polygon_mask(polygon_xy: np.ndarray, height: int, width: int, feather: float = 0.0) -> np.ndarray:
    """Float mask in [0,1] of a pixel polygon; `feather` px of Gaussian softening."""
    mask = np.zeros((height, width), np.float32)
    cv2.fillPoly(mask, [np.round(polygon_xy[:, :2] * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    if feather > 0:
        k = int(feather * 3) | 1
        mask = cv2.GaussianBlur(mask, (k, k), feather)
    return mask
