"""The mouth representation the audio model predicts: a few PCA coefficients per frame.

A mouth is described relative to the speaker's own closed, resting mouth, in the
canonical frontal frame (pose removed, unit = outer eye-corner distance), so the
coefficients mean the same motion for every person and every head pose:

    lips    the 40 lip landmarks (outer and inner contour, x y z) minus the rest shape;
    pixels  a 30x15 colour image of the mouth sampled on a grid fixed to the face,
            minus the resting mouth image, divided by the speaker's image contrast
            (DH_live's choice; it is what shows the teeth).

A basis is fitted on the training avatars over one part or both ("lips+pixels": each
part scaled to unit total variance, then one PCA), and decodes coefficients back
into both lip landmarks (what aperture and the renderer's sketch use) and a mouth
image (the renderer's prompt) for any speaker, given that speaker's `MouthRest`.

Silence is the zero delta: `MouthBasis.closed` are the coefficients of the resting
mouth, the value the audio model is trained to emit, and gated to, when nobody speaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import choice, number
from .errors import DhliveError
from .facemesh import CORNER_LEFT, CORNER_RIGHT, LIPS, LOWER_INNER, UPPER_INNER, aperture, lip_points, lip_slot
from .formats import load_mouth_pca, save_mouth_pca

KINDS = ("lips", "pixels", "lips+pixels")
N_COEFFS = 8
LIP_WEIGHT = 2.0  # relative weight of the lip part in the combined PCA (docs/audio.md)
REST_QUANTILE = 0.1  # frames with aperture in the lowest 10% define the resting mouth
IMAGE_W, IMAGE_H = 30, 15  # DH_live's mouth image size
# the mouth image grid around the rest mouth centre, in eye-corner distances
IMAGE_HALF_WIDTH = 0.42
IMAGE_TOP, IMAGE_BOTTOM = -0.16, 0.26  # y points down: the jaw opens downward


def mouth_grid(rest_lips: np.ndarray) -> np.ndarray:
    """(IMAGE_H, IMAGE_W, 3) canonical points where the mouth image is sampled."""
    centre = rest_lips[
        [lip_slot(CORNER_RIGHT), lip_slot(CORNER_LEFT), lip_slot(UPPER_INNER), lip_slot(LOWER_INNER)]
    ].mean(0)
    xs = centre[0] + np.linspace(-IMAGE_HALF_WIDTH, IMAGE_HALF_WIDTH, IMAGE_W)
    ys = centre[1] + np.linspace(IMAGE_TOP, IMAGE_BOTTOM, IMAGE_H)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy, np.full_like(gx, centre[2])], -1).astype(np.float32)


def sample_mouth_image(crop: np.ndarray, grid_crop_xy: np.ndarray) -> np.ndarray:
    """Sample a (IMAGE_H, IMAGE_W, 3) float image from an RGB crop at the grid's crop pixels."""
    step = np.linalg.norm(grid_crop_xy[0, 1] - grid_crop_xy[0, 0])
    sigma = max(0.5 * step, 0.01)  # low-pass to the grid spacing so sampling does not alias
    blurred = cv2.GaussianBlur(crop, (0, 0), sigma) if sigma > 0.6 else crop
    g = np.ascontiguousarray(grid_crop_xy, np.float32)
    return cv2.remap(blurred, g[..., 0], g[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(
        np.float32
    )


@dataclass
class MouthRest:
    """One speaker's resting mouth: what a zero delta decodes to."""

    lips: np.ndarray  # (40,3) canonical
    image: np.ndarray  # (IMAGE_H, IMAGE_W, 3) RGB 0..255
    contrast: float  # std of the resting mouth image: pixel deltas are in these units
    aperture_range: tuple[float, float]  # the speaker's 5th and 95th percentile aperture


def rest_frames(apertures: np.ndarray) -> np.ndarray:
    """Indices of the frames whose mouth is the most closed (lowest REST_QUANTILE)."""
    k = max(1, int(round(REST_QUANTILE * len(apertures))))
    return np.argsort(apertures, kind="stable")[:k]


def speaker_rest(lips: np.ndarray, images: np.ndarray | None) -> MouthRest:
    """The resting mouth of a speaker from their (N,40,3) lips and (N,H,W,3) mouth images."""
    ap = aperture(lips)
    idx = rest_frames(ap)
    image = images[idx].mean(0) if images is not None else np.zeros((IMAGE_H, IMAGE_W, 3), np.float32)
    return MouthRest(
        lips=lips[idx].mean(0).astype(np.float32),
        image=image.astype(np.float32),
        contrast=float(max(image.std(), 4.0)),
        aperture_range=(float(np.percentile(ap, 5)), float(np.percentile(ap, 95))),
    )


def mouth_deltas(lips: np.ndarray, images: np.ndarray | None, rest: MouthRest) -> tuple[np.ndarray, np.ndarray | None]:
    """Speaker-independent mouth motion: (N,120) lip deltas, (N,1350) image deltas."""
    dl = (lips - rest.lips).reshape(len(lips), -1)
    di = None if images is None else ((images - rest.image) / rest.contrast).reshape(len(images), -1)
    return dl.astype(np.float32), None if di is None else di.astype(np.float32)


@dataclass
class MouthBasis:
    """PCA over mouth deltas. Coefficients = (x - mean) @ components.T / coeff_scale."""

    kind: str
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) orthonormal rows
    explained: np.ndarray  # (k,) fraction of the total variance each component explains
    lip_scale: float  # a lip delta is divided by this before the PCA (the lip weight folded in)
    pixel_scale: float  # an image delta is divided by this
    coeff_scale: float  # coefficients are divided by this (std of the first one becomes 1)
    decoder: np.ndarray  # (k+1, 120+1350): [coeffs, 1] -> [lip delta, image delta], least squares

    @property
    def n_coeffs(self) -> int:
        return len(self.components)

    def _stack(self, dl, di) -> np.ndarray:
        parts = []
        if "lips" in self.kind:
            parts.append(dl / self.lip_scale)
        if "pixels" in self.kind:
            parts.append(di / self.pixel_scale)
        return np.concatenate(parts, -1)

    def encode(self, lip_delta: np.ndarray, image_delta: np.ndarray | None = None) -> np.ndarray:
        """(N,120) and (N,1350) deltas -> (N,k) coefficients (the part the kind does not use may be None)."""
        x = self._stack(lip_delta, image_delta)
        return ((x - self.mean) @ self.components.T / self.coeff_scale).astype(np.float32)

    def decode_deltas(self, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,k) -> (N,120) lip and (N,1350) image deltas. The part a basis was fitted on is its
        PCA reconstruction; the other part is the least-squares estimate from the coefficients."""
        c = np.asarray(coeffs, np.float32)
        x = c @ self.decoder[:-1] + self.decoder[-1]
        n_lip = len(LIPS) * 3
        return x[..., :n_lip], x[..., n_lip:]

    def decode(self, coeffs: np.ndarray, rest: MouthRest) -> tuple[np.ndarray, np.ndarray]:
        """(N,k) coefficients -> (N,40,3) canonical lips and (N,H,W,3) RGB mouth images of a speaker."""
        dl, di = self.decode_deltas(coeffs)
        lips = rest.lips + dl.reshape(*dl.shape[:-1], len(LIPS), 3)
        img = np.clip(rest.image + rest.contrast * di.reshape(*di.shape[:-1], IMAGE_H, IMAGE_W, 3), 0, 255)
        return lips, img

    @property
    def closed(self) -> np.ndarray:
        """The coefficients of the resting (closed) mouth: a zero delta."""
        return (-self.mean @ self.components.T / self.coeff_scale).astype(np.float32)


@dataclass
class MouthFitConfig:
    """How a training run fits its mouth PCA when none is given (both trainers share these fields)."""

    mouth_kind: str = "lips+pixels"  # lips, pixels or lips+pixels (docs/audio.md compares them)
    n_coeffs: int = N_COEFFS
    lip_weight: float = LIP_WEIGHT

    def __post_init__(self):
        choice("mouth_kind", self.mouth_kind, KINDS)
        number("n_coeffs", self.n_coeffs, low=1, high=64, integer=True)
        number("lip_weight", self.lip_weight, low=0, above=True)

    def fit(self, speakers: list) -> MouthBasis:
        """A basis over the mouths of several speakers, each (lips (N,40,3), images (N,H,W,3), rest)."""
        deltas = [mouth_deltas(lips, images, rest) for lips, images, rest in speakers]
        return fit_basis(
            np.concatenate([d[0] for d in deltas]),
            np.concatenate([d[1] for d in deltas]),
            self.mouth_kind,
            self.n_coeffs,
            self.lip_weight,
        )


def fit_basis(
    lip_deltas: np.ndarray,
    image_deltas: np.ndarray,
    kind: str,
    n_coeffs: int = N_COEFFS,
    lip_weight: float = LIP_WEIGHT,
) -> MouthBasis:
    """PCA of (N,120) lip and (N,1350) image deltas pooled over speakers into n_coeffs components.

    With both parts, each is scaled to unit total variance and the lips then weighted by
    lip_weight, so the geometry is not drowned by the 1350 pixel values."""
    if kind not in KINDS:
        raise ValueError(f"mouth representation must be one of {KINDS}, not {kind!r}")
    dl, di = np.asarray(lip_deltas, np.float64), np.asarray(image_deltas, np.float64)
    if len(dl) <= n_coeffs:
        raise ValueError(f"{len(dl)} frames cannot fit {n_coeffs} mouth components")
    basis = MouthBasis(
        kind,
        np.zeros(1, np.float32),
        np.zeros((0, 1), np.float32),
        np.zeros(0, np.float32),
        max(float(np.sqrt(dl.var(0).sum())), 1e-8) / lip_weight,
        max(float(np.sqrt(di.var(0).sum())), 1e-8),
        1.0,
        np.zeros((1, 1), np.float32),
    )
    x = basis._stack(dl, di)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2 / len(x)
    comps = vt[:n_coeffs]
    comps *= np.sign(comps[:, [int(np.argmax(np.abs(c))) for c in comps]].diagonal())[:, None]  # deterministic signs
    basis.mean, basis.components = mean.astype(np.float32), comps.astype(np.float32)
    basis.explained = (var[:n_coeffs] / var.sum()).astype(np.float32)
    basis.coeff_scale = float(np.sqrt(var[0]))
    c = np.concatenate([basis.encode(dl, di), np.ones((len(dl), 1), np.float32)], 1).astype(np.float64)
    basis.decoder = np.linalg.lstsq(c, np.concatenate([dl, di], 1), rcond=None)[0].astype(np.float32)
    return basis


def save_basis(path, basis: MouthBasis) -> None:
    save_mouth_pca(
        path,
        {
            "kind": basis.kind,
            "lip_indices": list(LIPS),
            "image_size": [IMAGE_W, IMAGE_H],
            "mean": basis.mean,
            "components": basis.components,
            "explained": basis.explained,
            "decoder": basis.decoder,
            "lip_scale": basis.lip_scale,
            "pixel_scale": basis.pixel_scale,
            "coeff_scale": basis.coeff_scale,
        },
    )


def load_basis(path) -> MouthBasis:
    d = load_mouth_pca(path)
    if d["kind"] not in KINDS or list(d["lip_indices"]) != LIPS or list(d["image_size"]) != [IMAGE_W, IMAGE_H]:
        raise DhliveError(f"mouth PCA {path}: made for another mouth layout (kind {d['kind']!r}) than this dhlive uses")
    if d["decoder"].shape[1] != len(LIPS) * 3 + IMAGE_W * IMAGE_H * 3:
        raise DhliveError(f"mouth PCA {path}: its decoder does not produce this dhlive's lips and mouth image")
    return MouthBasis(
        d["kind"],
        d["mean"],
        d["components"],
        d["explained"],
        float(d["lip_scale"]),
        float(d["pixel_scale"]),
        float(d["coeff_scale"]),
        d["decoder"],
    )


def _sample_avatar_mouths(avatar, grid: np.ndarray, frames) -> np.ndarray:
    grid_h = np.concatenate([grid, np.ones((len(grid), 1), np.float32)], 1)
    boxes = avatar.crop_boxes
    images = np.empty((len(frames), IMAGE_H, IMAGE_W, 3), np.float32)
    for k, i in enumerate(frames):
        px = grid_h @ avatar.pose[i].T
        x0, y0, side = boxes[i]
        xy = (px[:, :2] - (x0, y0)) * (avatar.crop_size / side)
        images[k] = sample_mouth_image(avatar.read_crop(i), xy.reshape(IMAGE_H, IMAGE_W, 2))
    return images


def avatar_rest(avatar) -> MouthRest:
    """The resting mouth of an avatar, reading only the crops of its most closed frames
    (what inference needs; the same result as avatar_mouth's)."""
    lips = lip_points(avatar.canonical)
    bare = speaker_rest(lips, None)
    idx = rest_frames(aperture(lips))
    image = _sample_avatar_mouths(avatar, mouth_grid(bare.lips).reshape(-1, 3), idx).mean(0)
    return MouthRest(bare.lips, image.astype(np.float32), float(max(image.std(), 4.0)), bare.aperture_range)


def avatar_mouth(avatar, with_images: bool = True) -> tuple[np.ndarray, np.ndarray | None, MouthRest]:
    """(N,40,3) canonical lips, (N,H,W,3) mouth images and the resting mouth of an avatar."""
    lips = lip_points(avatar.canonical)
    if not with_images:
        return lips, None, speaker_rest(lips, None)
    grid = mouth_grid(speaker_rest(lips, None).lips).reshape(-1, 3)
    images = _sample_avatar_mouths(avatar, grid, range(avatar.n_frames))
    return lips, images, speaker_rest(lips, images)
