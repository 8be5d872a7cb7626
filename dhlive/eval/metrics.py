"""Quality metrics without pretrained judges (BRIEF section 3), as small pure numpy functions.

Series are per video frame. A lag is in frames and positive when the generated series
comes later than the real one.
"""

from __future__ import annotations

import numpy as np


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either series is constant."""
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def shifted(gen: np.ndarray, real: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of gen and real when gen is `lag` frames late: gen[t + lag] ~ real[t]."""
    n = min(len(gen), len(real))
    gen, real = gen[:n], real[:n]
    return (gen[lag:], real[:n - lag]) if lag >= 0 else (gen[:n + lag], real[-lag:])


def best_lag(gen: np.ndarray, real: np.ndarray, max_lag: int = 5) -> tuple[int, float]:
    """(lag, r) maximising the correlation of gen and real over lags in [-max_lag, max_lag]."""
    best = (0, -np.inf)
    for lag in range(-max_lag, max_lag + 1):
        g, r = shifted(gen, real, lag)
        if len(g) > 2:
            c = pearson(g, r)
            if c > best[1] + 1e-12 or (abs(c - best[1]) <= 1e-12 and abs(lag) < abs(best[0])):
                best = (lag, c)
    return best[0], float(best[1])


def articulation_ratio(gen: np.ndarray, real: np.ndarray) -> float:
    """std(generated) / std(real): 1 moves as much as the real mouth, < 1 mumbles."""
    s = float(np.std(real))
    return float(np.std(gen)) / s if s > 0 else float("nan")


def closed_fraction(aperture: np.ndarray, rest: float, low: float, high: float) -> float:
    """Share of frames whose aperture is below the resting level + 10% of the speaker's range."""
    return float(np.mean(np.asarray(aperture) <= rest + 0.1 * (high - low)))


def jitter(points: np.ndarray) -> float:
    """Mean norm of the second difference over time of (T, P, D) points (or (T, D))."""
    p = np.asarray(points, np.float64)
    if len(p) < 3:
        return 0.0
    d2 = p[2:] - 2 * p[1:-1] + p[:-2]
    return float(np.linalg.norm(d2.reshape(len(d2), -1, p.shape[-1]), axis=-1).mean())


# --- images (uint8 RGB arrays of the same shape) -------------------------------------------

def psnr(gen: np.ndarray, real: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit images (100 for identical images)."""
    mse = float(np.mean((np.asarray(gen, np.float64) - np.asarray(real, np.float64)) ** 2))
    return 100.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(gen: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window) of 8-bit colour images."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(gen), np.asarray(real), channel_axis=-1, data_range=255,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: higher is sharper."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def seam_score(frame: np.ndarray, mask: np.ndarray, radius: float = 3.0) -> dict:
    """How visible the edge of a paste-back mask is in a frame (uint8 RGB, mask 0..1 float).

    At the pixels on the mask's half-level contour: `colour_step`, the mean absolute
    difference (0..255, averaged over channels) between the local mean colour just inside
    and just outside the edge; `gradient`, the mean grey-level gradient magnitude there.
    Score the real frame with the same mask as the anchor: a seamless paste-back matches it."""
    import cv2

    inside = (np.asarray(mask) > 0.5).astype(np.float32)
    edge = (inside - cv2.erode(inside, np.ones((3, 3), np.uint8))) > 0
    if not edge.any() or inside.all():
        return {"colour_step": 0.0, "gradient": 0.0}
    img = np.asarray(frame, np.float32)

    def local_mean(weight):
        num = cv2.GaussianBlur(img * weight[..., None], (0, 0), radius)
        den = cv2.GaussianBlur(weight, (0, 0), radius)[..., None]
        return num / np.maximum(den, 1e-6)

    step = np.abs(local_mean(inside) - local_mean(1 - inside))[edge].mean()
    grey = cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))[edge].mean() / 8
    return {"colour_step": float(step), "gradient": float(grad)}
