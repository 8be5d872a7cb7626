"""Render packs: one avatar's training material for the renderer in one portable file (the
format is in formats.py), and that material decoded for training.

A pack holds the render windows cut from the source frames exactly as inference cuts them
(JPEG), and per frame the geometry and the real mouth the renderer's inputs are built from.
Packs are cached per run folder and rebuilt when their avatar changes; a thinned copy
(every k-th frame, compressed) is what travels to a lent GPU machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import DhliveError
from ..facemesh import aperture
from ..formats import file_sha256, load_avatar, load_render_pack, save_render_pack
from ..mouth import MouthRest, avatar_mouth
from ..render import inputs
from ..render.references import select_references

PACK_DIR = "packs"
JPEG_QUALITY = 95


def build_pack(avatar_dir, size: int, path: Path, progress: bool = True) -> None:
    """One avatar's render windows and per-frame geometry, written to `path` (atomic).

    The windows are cut from the source frames exactly as inference cuts them (not from the
    crops, which were resampled once already and are softer)."""
    from .. import media  # here, not at the top: training from packs alone needs no PyAV

    avatar = load_avatar(avatar_dir)
    lips, images, rest = avatar_mouth(avatar)
    window = inputs.face_window(avatar.lower_face, rest.lips, size)
    n = avatar.n_frames
    blobs, c2w = [], np.empty((n, 2, 4), np.float32)
    repaint = np.empty((n, len(avatar.lower_face), 2), np.float32)
    landmarks = np.empty((n, avatar.canonical.shape[1], 2), np.float32)
    source = media.SourceFrames(avatar)
    try:
        for i in tqdm(range(n), desc=f"packing {avatar.root.name}", disable=not progress, leave=False):
            win = inputs.cut_window(source[i], window.to_source(avatar.pose[i]), size)
            ok, enc = cv2.imencode(
                ".jpg", cv2.cvtColor(win, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
            blobs.append(enc.reshape(-1))
            c2w[i] = window.canonical_to_window(avatar.pose[i])
            landmarks[i] = inputs.project(avatar.canonical[i], c2w[i])
            repaint[i] = inputs.project(avatar.lower_face, c2w[i])
    finally:
        source.close()
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    meta = {
        "avatar": avatar.root.name,
        "avatar_meta_sha256": file_sha256(avatar.root / "meta.json"),
        "size": size,
        "window": asdict(window),
        "rest_contrast": rest.contrast,
        "aperture_range": list(rest.aperture_range),
        "fps": avatar.fps,
    }
    save_render_pack(
        path,
        meta,
        {
            "jpeg": np.concatenate(blobs),
            "jpeg_offsets": offsets,
            "canonical_to_window": c2w,
            "repaint": repaint,
            "landmarks": landmarks,
            "lips": lips,
            "mouth_images": images,
            "aperture": aperture(lips),
            "euler": avatar.euler,
            "rest_lips": rest.lips,
            "rest_image": rest.image,
        },
    )


def thin_pack(src, dst, every: int) -> Path:
    """A copy of a render pack with every `every`-th frame, compressed: what travels to a
    machine that receives little data. Its frames are no longer consecutive, so the clip
    stage refuses it (meta frame_step)."""
    if every < 1:
        raise DhliveError(f"every must be at least 1, not {every}")
    meta, a = load_render_pack(src)
    n, off = len(a["aperture"]), a["jpeg_offsets"]
    keep = np.arange(0, n, every)
    blobs = [a["jpeg"][off[i] : off[i + 1]] for i in keep]
    per_frame = {k: v[keep] for k, v in a.items() if k not in ("jpeg", "jpeg_offsets", "rest_lips", "rest_image")}
    save_render_pack(
        dst,
        {**meta, "frame_step": int(meta.get("frame_step", 1)) * every},
        {
            **a,
            **per_frame,
            "jpeg": np.concatenate(blobs),
            "jpeg_offsets": np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64),
        },
        compressed=True,
    )
    return Path(dst)


def ensure_pack(avatar_dir, size: int, pack_dir: Path, progress: bool = True) -> Path:
    """The cached pack of an avatar, rebuilt when the avatar changed (resumable: one file per avatar)."""
    avatar_dir = Path(avatar_dir)
    if avatar_dir.suffix == ".npz":  # a pack given directly (e.g. carried to a GPU machine)
        return avatar_dir
    path = pack_dir / f"{avatar_dir.name}-{size}.npz"
    meta_file = avatar_dir / "meta.json"
    if path.exists() and meta_file.exists():
        try:
            meta, _ = load_render_pack(path)
            if meta.get("avatar_meta_sha256") == file_sha256(meta_file):
                return path
        except DhliveError:
            pass
    pack_dir.mkdir(parents=True, exist_ok=True)
    build_pack(avatar_dir, size, path, progress)
    return path


@dataclass
class AvatarFrames:
    """One avatar's training material, decoded: windows, geometry, mouth and its references."""

    name: str
    windows: np.ndarray  # (N, R, R, 3) uint8
    arrays: dict
    rest: MouthRest
    coeffs: np.ndarray  # (N, k) the real mouth in the PCA
    n_train: int  # frames [0, n_train) train; the rest are held out
    reference_ids: np.ndarray
    references: np.ndarray  # (4n, R, R) float32

    @property
    def n(self) -> int:
        return len(self.windows)

    def lips_window(self, i: int) -> np.ndarray:
        return inputs.project(self.arrays["lips"][i], self.arrays["canonical_to_window"][i])


def load_frames(pack_path: Path, holdout: float, n_refs: int, size: int) -> tuple[AvatarFrames, dict]:
    meta, a = load_render_pack(pack_path)
    if meta["size"] != size:
        raise DhliveError(f"render pack {pack_path}: made for {meta['size']} px, the renderer is {size} px")
    off = a["jpeg_offsets"]
    windows = np.stack(
        [
            cv2.cvtColor(cv2.imdecode(a["jpeg"][off[i] : off[i + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for i in range(len(off) - 1)
        ]
    )
    n = len(windows)
    n_train = n - int(round(holdout * n))
    if n_train < 2:
        raise DhliveError(f"{meta['avatar']}: {n} frames leave too few for training after a {holdout:.0%} hold-out")
    rest = MouthRest(a["rest_lips"], a["rest_image"], float(meta["rest_contrast"]), tuple(meta["aperture_range"]))
    ref_ids = select_references(a["aperture"][:n_train], a["euler"][:n_train], n_refs)
    refs = inputs.reference_input(windows[ref_ids], a["landmarks"][ref_ids])
    return AvatarFrames(meta["avatar"], windows, a, rest, np.zeros(0), n_train, ref_ids, refs), meta
