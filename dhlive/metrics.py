"""Quality metrics without pretrained judges (BRIEF section 3), as small pure numpy functions.

Series are per video frame. A lag is in frames and positive when the generated series
comes later than the real one.
"""

from __future__ import annotations

import numpy as np

from .constants import FPS, SAMPLE_RATE
from .facemesh import EYE_OUTER, LIPS_INNER, LIPS_OUTER, RIGID_POINTS
from .geometry import umeyama


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
    return (gen[lag:], real[: n - lag]) if lag >= 0 else (gen[: n + lag], real[-lag:])


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
    return 100.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(gen: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window) of 8-bit colour images."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            np.asarray(gen),
            np.asarray(real),
            channel_axis=-1,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: higher is sharper."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


GRID_PERIODS = (2, 4)  # pixels: the periods stride-2 upsampling leaves its grid at (the decoder's last two levels)


def checkerboard(image: np.ndarray) -> float:
    """Share of an image's fine detail that sits on a regular pixel grid: the energy of the
    high-passed grey image at the frequencies of a period-2 or period-4 pattern (and their
    mixes), over all its high-pass energy. Upsampling in a decoder draws such a grid
    (checkerboard) into teeth and lips; natural detail spreads over all frequencies. Score
    the real image the same way as the anchor."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float64)
    n = min(grey.shape) // 4 * 4
    if n < 8:
        return 0.0
    grey = grey[:n, :n]
    high = grey - cv2.GaussianBlur(grey, (0, 0), 2.0)
    power = np.abs(np.fft.fft2(high * np.outer(np.hanning(n), np.hanning(n)))) ** 2
    total = power.sum() - power[0, 0]
    if total <= 0:
        return 0.0
    at = sorted({n // p % n for p in GRID_PERIODS} | {(n - n // p) % n for p in GRID_PERIODS} | {0})
    grid = np.zeros_like(power, bool)
    for u in at:
        for v in at:
            if u or v:
                grid[np.ix_([(u + d) % n for d in (-1, 0, 1)], [(v + d) % n for d in (-1, 0, 1)])] = True
    return float(power[grid].sum() / total)


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


# --- audio, per video frame ------------------------------------------------------------------

SPECTRUM_WINDOW = 1024  # samples (64 ms at 16 kHz), centred on each video frame
VOICE_BAND = (100.0, 4000.0)  # Hz: where speech energy is, for the voice activity detector
ENVELOPE_BAND = (800.0, 3000.0)  # Hz: the band whose level follows lip opening best (F2 region)
ENVELOPE_RANGE_DB = 30.0  # the envelope is floored this far below its 95th percentile
VAD_MIN_DB, VAD_SPAN_DB, VAD_FLOOR_DB = 35.0, 15.0, 10.0  # see voice_activity
VAD_ABSOLUTE_DB = -5.0  # band level under which nothing is speech: white noise at about -55 dBFS
VAD_FILL, VAD_MIN_RUN = 3, 2  # frames: gaps shorter than this are speech; speech runs shorter are clicks
TONE_PEAK_SHARE, TONE_MIN_RUN = 0.99, 5  # a steady tone: one spectral peak holds 99% of the band, 200 ms on


def frame_spectra(audio: np.ndarray, n_frames: int, fps: float = FPS, sample_rate: int = SAMPLE_RATE):
    """(n_frames, F) power spectra of Hann windows centred on each video frame, and their frequencies."""
    a = np.asarray(audio, np.float64)
    win = SPECTRUM_WINDOW
    centres = ((np.arange(n_frames) + 0.5) * sample_rate / fps).astype(np.int64)
    padded = np.pad(a, (win // 2, win // 2))
    idx = np.clip(centres[:, None] + np.arange(win)[None], 0, len(padded) - 1)
    power = np.abs(np.fft.rfft(padded[idx] * np.hanning(win), axis=1)) ** 2
    return power, np.fft.rfftfreq(win, 1.0 / sample_rate)


def band_level(power: np.ndarray, freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Level in dB of each frame's power within [lo, hi) Hz."""
    sel = (freqs >= band[0]) & (freqs < band[1])
    return 10 * np.log10(power[:, sel].sum(1) + 1e-12)


def speech_envelope(audio: np.ndarray, n_frames: int, fps: float = FPS, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-frame level (dB) of the 800-3000 Hz band, floored 30 dB below its loud frames, so
    that silence of any depth counts the same. What the mouth opening is correlated with."""
    level = band_level(*frame_spectra(audio, n_frames, fps, sample_rate), ENVELOPE_BAND)
    return np.maximum(level, np.percentile(level, 95) - ENVELOPE_RANGE_DB)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    m = np.r_[False, np.asarray(mask, bool), False].astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def voice_activity(audio: np.ndarray, n_frames: int, fps: float = FPS, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_frames,) bool: someone is speaking at that video frame.

    Energy in 100-4000 Hz against a threshold set by the recording itself: 35 dB under its
    loud frames at most, and 10 dB over its quiet floor unless that comes within 15 dB of the
    loud frames (a recording with no pause); and never below VAD_ABSOLUTE_DB, so that digital
    silence or faint noise, a recording with nobody in it, is not read as all speech. Gaps
    under 120 ms are kept as speech (stops between syllables), runs under 80 ms dropped
    (clicks), and a steady pure tone (one peak holding 99% of the band for 200 ms or more) is
    not speech."""
    power, freqs = frame_spectra(audio, n_frames, fps, sample_rate)
    level = band_level(power, freqs, VOICE_BAND)
    quiet, loud = np.percentile(level, 10), np.percentile(level, 98)
    speech = level > max(loud - VAD_MIN_DB, min(quiet + VAD_FLOOR_DB, loud - VAD_SPAN_DB), VAD_ABSOLUTE_DB)
    band = power[:, (freqs >= VOICE_BAND[0]) & (freqs < VOICE_BAND[1])]
    peak = np.argmax(band, 1)
    padded = np.cumsum(np.pad(band, ((0, 0), (3, 3))), 1)  # energy within +-2 bins of the peak
    share = (np.take_along_axis(padded, peak[:, None] + 5, 1) - np.take_along_axis(padded, peak[:, None], 1))[:, 0]
    tonal = share / np.maximum(band.sum(1), 1e-20) > TONE_PEAK_SHARE
    for a, b in _runs(tonal):
        if b - a >= TONE_MIN_RUN:
            speech[a:b] = False
    for a, b in _runs(~speech):
        if b - a < VAD_FILL and a > 0 and b < len(speech):
            speech[a:b] = True
    for a, b in _runs(speech):
        if b - a < VAD_MIN_RUN:
            speech[a:b] = False
    return speech


# frames: shorter pauses are part of speaking (real speakers breathe through 0.4-0.6 s pauses
# with the mouth open); and the time a mouth is given to close after a word or open before one
MIN_PAUSE, PAUSE_GUARD = 15, 3


def silence_frames(speech: np.ndarray, guard: int = PAUSE_GUARD, min_pause: int = MIN_PAUSE) -> np.ndarray:
    """Frames of pauses of at least `min_pause` frames, `guard` frames away from any speech:
    where a mouth should be closed (the guard leaves time to close after a word and to
    open before one)."""
    speech = np.asarray(speech, bool)
    quiet = np.zeros(len(speech), bool)
    for a, b in _runs(~speech):
        if b - a >= min_pause:
            quiet[a + (guard if a > 0 else 0) : b - (guard if b < len(speech) else 0)] = True
    return quiet


MIN_OPEN_MARGIN = 0.04  # aperture: a mouth this much above its rest is open even if it barely moves (a photo)


def open_level(aperture: np.ndarray) -> float:
    """The aperture above which a mouth counts as open: its resting level (mean of the lowest
    10% of frames) plus 10% of its 5-95 percentile range (as for the audio model's silence),
    and at least MIN_OPEN_MARGIN (a still photo has no range)."""
    ap = np.asarray(aperture, np.float64)
    ap = ap[np.isfinite(ap)]
    k = max(1, int(round(0.1 * len(ap))))
    rest = float(np.sort(ap)[:k].mean())
    return rest + max(0.1 * float(np.percentile(ap, 95) - np.percentile(ap, 5)), MIN_OPEN_MARGIN)


def silence_leak(
    aperture: np.ndarray, speech: np.ndarray, threshold: float, guard: int = PAUSE_GUARD, min_pause: int = MIN_PAUSE
) -> float:
    """Share of the silent frames (see silence_frames) with the mouth open above `threshold`;
    NaN when there is no silence to judge (or no face in it)."""
    ap = np.asarray(aperture, np.float64)
    quiet = silence_frames(speech, guard, min_pause) & np.isfinite(ap)
    return float(np.mean(ap[quiet] > threshold)) if quiet.any() else float("nan")


AV_MAX_LAG = 8  # frames (320 ms) searched either way for the audio-video offset


def av_offset(aperture: np.ndarray, envelope: np.ndarray, max_lag: int = AV_MAX_LAG) -> tuple[int, float]:
    """(lag, r): the shift of the mouth opening against the speech envelope that correlates
    best; positive when the video comes late. Real speakers sit near 0 to -2 (the mouth moves
    a little before the sound)."""
    ap = np.asarray(aperture, np.float64)
    ok = np.isfinite(ap)
    ap = np.where(ok, ap, np.nanmean(ap) if ok.any() else 0.0)
    return best_lag(ap, np.asarray(envelope, np.float64), max_lag)


# --- landmarks (T, 478, 2..3) in pixels, NaN where no face was found --------------------------

# Points a lip-sync system must not move: the head pose's rigid points (forehead, temples,
# eye corners, nose); the outer eye corners give the face's scale.
STABLE_POINTS = RIGID_POINTS.tolist()
EYE_CORNERS = EYE_OUTER


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Outer eye-corner distance in pixels, per frame: the face's scale."""
    lm = np.asarray(landmarks, np.float64)
    return np.linalg.norm(lm[..., EYE_CORNERS[0], :2] - lm[..., EYE_CORNERS[1], :2], axis=-1)


def lip_distance(gen: np.ndarray, real: np.ndarray, lips: list[int]) -> np.ndarray:
    """Per frame: mean distance of the lip points after aligning the generated face onto the
    real one by a similarity fitted on the stable points (head pose removed), in units of
    the real face's eye-corner distance. NaN where either face is missing."""
    out = np.full(len(gen), np.nan)
    for i, (g, r) in enumerate(zip(np.asarray(gen, np.float64), np.asarray(real, np.float64))):
        if not (np.isfinite(g).all() and np.isfinite(r).all()):
            continue
        s, rot, t = umeyama(g[STABLE_POINTS, :2], r[STABLE_POINTS, :2])  # 2-D similarity
        moved = s * g[lips, :2] @ rot.T + t
        out[i] = np.linalg.norm(moved - r[lips, :2], axis=-1).mean() / max(float(eye_distance(r)), 1e-6)
    return out


def landmark_jitter(landmarks: np.ndarray, points: list[int]) -> float:
    """Jitter (mean second difference over time) of some points, in eye-corner distances per
    frame, over the runs of frames with a face."""
    lm = np.asarray(landmarks, np.float64)
    ok = np.isfinite(lm.reshape(len(lm), -1)).all(1)
    scale = np.nanmedian(eye_distance(lm[ok])) if ok.any() else np.nan
    vals, weights = [], []
    for a, b in _runs(ok):
        if b - a >= 3:
            vals.append(jitter(lm[a:b][:, points, :2]))
            weights.append(b - a - 2)
    return float(np.average(vals, weights=weights) / scale) if vals else float("nan")


# --- image regions ------------------------------------------------------------------------

MOUTH_CROP = 0.9  # side of the mouth crop, in eye-corner distances, centred on the lips


def mouth_square(landmarks: np.ndarray, lips: list[int]) -> tuple[float, float, float]:
    """(x0, y0, side) of the square mouth crop of one face."""
    lm = np.asarray(landmarks, np.float64)
    cx, cy = lm[lips, :2].mean(0)
    side = MOUTH_CROP * float(eye_distance(lm))
    return cx - side / 2, cy - side / 2, side


def face_square(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(x0, y0, side) of the square around all the face's landmarks."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    side = max(x1 - x0, y1 - y0)
    return (x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side


def crop_square(image: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """The square box of an image resampled to size x size (edges replicated outside the image)."""
    import cv2

    x0, y0, side = box
    s = size / max(side, 1e-6)
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]])
    src = np.ascontiguousarray(image)
    if s < 0.5:  # shrinking a lot: low-pass first so the crop does not alias
        src = cv2.GaussianBlur(src, (0, 0), 0.5 / s)
    return cv2.warpAffine(
        src, m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def lip_colour_difference(generated: np.ndarray, real: np.ndarray, landmarks: np.ndarray) -> float | None:
    """CIEDE2000 distance between the mean colour of the lips (the ring between the outer and
    the inner lip contour of the real frame's landmarks) in a generated frame and in the real
    one: how far the lips' colour drifted (about 2.3 is just noticeable; pale lipstick for a
    red one is over 10). None when the lips cover too few pixels to measure."""
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    lm = np.asarray(landmarks, np.float64)[:, :2]
    h, w = real.shape[:2]
    ring = np.zeros((h, w), np.uint8)
    cv2.fillPoly(ring, [np.round(lm[LIPS_OUTER]).astype(np.int32)], 1)
    cv2.fillPoly(ring, [np.round(lm[LIPS_INNER]).astype(np.int32)], 0)
    inside = ring > 0
    if inside.sum() < 20:
        return None
    mean_lab = [
        rgb2lab(np.asarray(img, np.uint8)[inside][None].astype(np.float64) / 255).mean(1) for img in (generated, real)
    ]
    return float(deltaE_ciede2000(mean_lab[0], mean_lab[1])[0])


SKIN_TINT_MEANING = "chromaticity drift of the repainted skin from the source, in hundredths; 0 = none"


def skin_tint(
    frame: np.ndarray,
    reference: np.ndarray,
    mask: np.ndarray,
    mouth_box: tuple[float, float, float] | None,
    sigma: float = 3.0,
) -> float:
    """How far the colour of the repainted skin drifts from the frame it was made from: the
    mean distance between the two frames' chromaticities (R, G, B) / (R + G + B), each
    low-passed, over the mask (0..1 float) less the mouth square, in hundredths. Chromaticity,
    because a jaw that moves with speech changes the shading legitimately (a darker pixel of
    the same hue has the same chromaticity) but not the hue of the skin; 0 for no drift."""
    import cv2

    region = np.asarray(mask) > 0.5
    if mouth_box is not None:
        x0, y0, side = mouth_box
        region[max(int(y0), 0) : max(int(np.ceil(y0 + side)), 0), max(int(x0), 0) : max(int(np.ceil(x0 + side)), 0)] = (
            False
        )
    if not region.any():
        return float("nan")

    def chromaticity(img):
        rgb = cv2.GaussianBlur(np.asarray(img, np.float32), (0, 0), sigma)
        return rgb / np.maximum(rgb.sum(-1, keepdims=True), 1.0)

    return float(100 * np.linalg.norm(chromaticity(frame) - chromaticity(reference), axis=-1)[region].mean())


CHANGE_LEVEL = 6.0  # grey levels: a smoothed difference above this is a change, not codec noise


def changed_region(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(H, W) float 0/1 mask of where a generated frame differs from the frame it was made from:
    the largest connected area whose smoothed difference exceeds CHANGE_LEVEL, holes filled.
    Its edge is where a paste-back seam would be. Empty if nothing changed."""
    import cv2

    diff = np.abs(np.asarray(generated, np.float32) - np.asarray(reference, np.float32)).mean(-1)
    diff = cv2.GaussianBlur(diff, (0, 0), 2.0)
    mask = (diff > CHANGE_LEVEL).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, np.float32)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == k).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(np.float32)
