"""Every on-disk format of dhlive, defined and validated in one place.

Avatar folder (written by `dhlive prepare`, read by every later stage), version 2:

    NAME/
      meta.json             format + version, fps, frame count, source, crop boxes,
                            rejected/interpolated frames and why, package versions
      image/%06d.png        face crops, crop_size x crop_size, RGB
      original.EXT          the input video, copied as it was: avatar frame i is frame
                            meta["source_index"][i] of it decoded upright at the avatar
                            fps (what paste-back composites into); or, for a photo,
      source.mp4            the photo's generated motion, frames 1:1 with image/
                            (meta["source_video"] names the file and says which)
      keypoint_rotate.pkl   {"version", "pixels" (N,478,3), "canonical" (N,478,3),
                             "blendshapes" (N,52)}
      face_mat_mask.pkl     {"version", "pose" (N,4,4), "euler" (N,3), "mean_face" (478,3),
                             "lower_face" (K,3), "lower_face_pixels" (N,K,2)}
      audio.wav             16 kHz mono, only when the input had audio
      renderer/             the avatar's own renderer, fine-tuned from the base (optional):
        render_model.pt     written last, when the fine-tune is done; its info says which
                            frames it trained on. train_state.pt, log.csv while it runs

Version 1 folders (source.mp4 re-encoded with only the avatar's frames, 1:1) are still
read: their meta.json has no "source_video".

Coordinates: pixels are (x right, y down, z depth away from the camera, in x's pixel
scale) in the upright source frame. Canonical is the person's frontal face: origin at
the centroid of the rigid points, unit = outer eye-corner distance (33-263), same
axes. `pose[i]` maps canonical to pixels (pixel = s R canonical + t); `euler` is
(yaw, pitch, roll) in degrees. `lower_face` is the repaint polygon in canonical
coordinates; `lower_face_pixels` is it projected into each frame.

Pickles are plain dicts of numpy arrays and are read with a restricted unpickler
that rebuilds only numpy arrays and builtin containers, so a crafted file from a
stranger raises instead of running code.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import DhliveError
from .facemesh import N_BLENDSHAPES, N_LANDMARKS

AVATAR_FORMAT = "dhlive-avatar"
AVATAR_VERSION = 2
READ_AVATAR_VERSIONS = (1, 2)  # 1: source.mp4 always held the avatar's frames 1:1

META_FILE = "meta.json"
IMAGE_DIR = "image"
IMAGE_PATTERN = "{:06d}.png"
SOURCE_VIDEO_FILE = "source.mp4"  # a photo's generated motion (and every version-1 source)
ORIGINAL_VIDEO_STEM = "original"  # original.EXT: the input video, kept as it was
KEYPOINTS_FILE = "keypoint_rotate.pkl"
POSE_FILE = "face_mat_mask.pkl"
AUDIO_FILE = "audio.wav"
AVATAR_RENDERER_DIR = "renderer"


# --- safe pickles --------------------------------------------------------------------

# The only globals a dict-of-arrays pickle needs (numpy 1.x and 2.x module names).
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles store array bytes through it
}


class UnsafePickleError(DhliveError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refuses to load {module}.{name}: only numpy arrays and plain containers are allowed")


def _reject_objects(obj, where: str) -> None:
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise UnsafePickleError(f"object array at {where}: only numeric arrays are allowed")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _reject_objects(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _reject_objects(v, f"{where}[{i}]")


def load_pickle(path: str | os.PathLike):
    """Load a pickle that may come from a stranger: numpy arrays and containers only."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DhliveError(f"{path}: no such file") from None
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise DhliveError(f"{path}: not a readable pickle ({type(e).__name__})") from None
    _reject_objects(obj, path.name)
    return obj


def save_pickle(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=4))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary name beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json_safe(obj):
    """NaN and infinities become null: strict JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(_json_safe(obj), indent=1, allow_nan=False) + "\n").encode())


# --- the avatar folder -----------------------------------------------------------------


@dataclass
class Avatar:
    """A validated avatar folder. Arrays are loaded eagerly (they are small); images lazily."""

    root: Path
    meta: dict
    pixels: np.ndarray  # (N,478,3) landmarks in source pixels
    canonical: np.ndarray  # (N,478,3) landmarks in the canonical frontal frame
    blendshapes: np.ndarray  # (N,52) mediapipe blendshape scores
    pose: np.ndarray  # (N,4,4) canonical -> pixels
    euler: np.ndarray  # (N,3) yaw, pitch, roll in degrees
    mean_face: np.ndarray  # (478,3) the person's frontal mean face, canonical
    lower_face: np.ndarray  # (K,3) repaint polygon, canonical
    lower_face_pixels: np.ndarray  # (N,K,2) repaint polygon per frame, source pixels

    @property
    def n_frames(self) -> int:
        return int(self.meta["n_frames"])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def crop_size(self) -> int:
        return int(self.meta["crop_size"])

    @property
    def crop_boxes(self) -> np.ndarray:
        """(N,3) x0, y0, side of each square crop in source pixels."""
        return np.asarray(self.meta["crop_boxes"], np.float32)

    @property
    def source_size(self) -> tuple[int, int]:
        return tuple(self.meta["source"]["size"])

    @property
    def audio_path(self) -> Path | None:
        return self.root / AUDIO_FILE if self.meta.get("has_audio") else None

    @property
    def renderer_path(self) -> Path | None:
        """The avatar's own fine-tuned renderer, when it has a finished one."""
        path = self.root / AVATAR_RENDERER_DIR / RENDER_MODEL_FILE
        return path if path.is_file() else None

    @property
    def source_video_path(self) -> Path:
        """The video paste-back composites into (see source_video_frames)."""
        return self.root / self.meta.get("source_video", {}).get("file", SOURCE_VIDEO_FILE)

    @property
    def source_video_frames(self) -> np.ndarray:
        """(N,) avatar frame i is frame [i] of source_video_path decoded upright at the avatar fps."""
        if self.meta.get("source_video", {}).get("kept_only", True):
            return np.arange(self.n_frames)
        return np.asarray(self.meta["source_index"], np.int64)

    def image_path(self, i: int) -> Path:
        return self.root / IMAGE_DIR / IMAGE_PATTERN.format(i)

    def read_crop(self, i: int) -> np.ndarray:
        img = cv2.imread(str(self.image_path(i)), cv2.IMREAD_COLOR)
        if img is None:
            raise DhliveError(f"{self.image_path(i)}: missing or unreadable crop")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def crop_landmarks(self, i: int) -> np.ndarray:
        """Landmarks of frame i in its crop's pixels (x, y scaled; z scaled alike)."""
        x0, y0, side = self.crop_boxes[i]
        scale = self.crop_size / side
        out = self.pixels[i].copy()
        out[:, 0] = (out[:, 0] - x0) * scale
        out[:, 1] = (out[:, 1] - y0) * scale
        out[:, 2] *= scale
        return out


def save_avatar(
    root: str | os.PathLike,
    meta: dict,
    *,
    pixels,
    canonical,
    blendshapes,
    pose,
    euler,
    mean_face,
    lower_face,
    lower_face_pixels,
) -> None:
    """Write the pickles and meta.json of an avatar whose image/ and media are in place.

    meta.json is written last: its presence marks the folder complete.
    """
    root = Path(root)
    f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    save_pickle(
        root / KEYPOINTS_FILE,
        {
            "version": AVATAR_VERSION,
            "pixels": f32(pixels),
            "canonical": f32(canonical),
            "blendshapes": f32(blendshapes),
        },
    )
    save_pickle(
        root / POSE_FILE,
        {
            "version": AVATAR_VERSION,
            "pose": f32(pose),
            "euler": f32(euler),
            "mean_face": f32(mean_face),
            "lower_face": f32(lower_face),
            "lower_face_pixels": f32(lower_face_pixels),
        },
    )
    meta = {"format": AVATAR_FORMAT, "version": AVATAR_VERSION, **meta}
    write_json(root / META_FILE, meta)


def _require(cond: bool, root: Path, problem: str) -> None:
    if not cond:
        raise DhliveError(f"avatar folder {root}: {problem}")


def _array(d: dict, key: str, shape: tuple, root: Path, fname: str) -> np.ndarray:
    _require(isinstance(d, dict) and key in d, root, f"{fname} has no '{key}'")
    a = np.asarray(d[key])
    ok = a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape))
    _require(
        ok, root, f"{fname}['{key}'] has shape {a.shape}, expected {tuple('N' if s is None else s for s in shape)}"
    )
    _require(
        np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all(), root, f"{fname}['{key}'] is not finite float data"
    )
    return a.astype(np.float32, copy=False)


def load_avatar(root: str | os.PathLike, check_images: bool = True) -> Avatar:
    """Load and validate an avatar folder (a path, or a name in the avatars folder: find_avatar);
    any problem is one DhliveError naming it."""
    root = find_avatar(root)
    _require(root.is_dir(), root, "no such folder")
    meta_path = root / META_FILE
    _require(meta_path.exists(), root, f"incomplete: no {META_FILE} (was prepare interrupted?)")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise DhliveError(f"avatar folder {root}: {META_FILE} is not valid JSON") from None
    _require(
        isinstance(meta, dict) and meta.get("format") == AVATAR_FORMAT, root, f"{META_FILE} is not a dhlive avatar"
    )
    _require(
        meta.get("version") in READ_AVATAR_VERSIONS,
        root,
        f"format version {meta.get('version')} is not supported (this dhlive reads versions "
        f"{', '.join(map(str, READ_AVATAR_VERSIONS))})",
    )
    for key in ("n_frames", "fps", "crop_size", "crop_boxes", "source") + (
        ("source_video",) if meta["version"] > 1 else ()
    ):
        _require(key in meta, root, f"{META_FILE} has no '{key}'")
    n = int(meta["n_frames"])
    _require(n > 0, root, "has no frames")
    _require(len(meta["crop_boxes"]) == n, root, f"{META_FILE} has {len(meta['crop_boxes'])} crop boxes for {n} frames")
    _check_source_video(meta, n, root)

    missing = [f for f in (KEYPOINTS_FILE, POSE_FILE, meta.get("source_video", {}).get("file", SOURCE_VIDEO_FILE))]
    missing = [f for f in missing if not (root / f).exists()]
    if meta.get("has_audio"):
        missing += [AUDIO_FILE] if not (root / AUDIO_FILE).exists() else []
    _require(not missing, root, f"incomplete: missing {', '.join(missing)}")

    kp = load_pickle(root / KEYPOINTS_FILE)
    pz = load_pickle(root / POSE_FILE)
    for fname, d in ((KEYPOINTS_FILE, kp), (POSE_FILE, pz)):
        _require(
            isinstance(d, dict) and d.get("version") in READ_AVATAR_VERSIONS,
            root,
            f"{fname} has an unsupported version",
        )
    lower = _array(pz, "lower_face", (None, 3), root, POSE_FILE)
    avatar = Avatar(
        root=root,
        meta=meta,
        pixels=_array(kp, "pixels", (n, N_LANDMARKS, 3), root, KEYPOINTS_FILE),
        canonical=_array(kp, "canonical", (n, N_LANDMARKS, 3), root, KEYPOINTS_FILE),
        blendshapes=_array(kp, "blendshapes", (n, N_BLENDSHAPES), root, KEYPOINTS_FILE),
        pose=_array(pz, "pose", (n, 4, 4), root, POSE_FILE),
        euler=_array(pz, "euler", (n, 3), root, POSE_FILE),
        mean_face=_array(pz, "mean_face", (N_LANDMARKS, 3), root, POSE_FILE),
        lower_face=lower,
        lower_face_pixels=_array(pz, "lower_face_pixels", (n, len(lower), 2), root, POSE_FILE),
    )
    if check_images:
        image_dir = root / IMAGE_DIR
        names = set(os.listdir(image_dir)) if image_dir.is_dir() else set()
        absent = [i for i in range(n) if IMAGE_PATTERN.format(i) not in names]
        _require(
            not absent,
            root,
            f"incomplete: {len(absent)} of {n} crops missing from {IMAGE_DIR}/ "
            f"(first: {IMAGE_PATTERN.format(absent[0]) if absent else ''})",
        )
    return avatar


def _check_source_video(meta: dict, n: int, root: Path) -> None:
    """meta["source_video"] (version 2) names a file inside the folder, and the frames it maps
    avatar frames to increase: a stranger's avatar cannot point paste-back at another file."""
    sv = meta.get("source_video")
    if sv is None:
        return
    _require(
        isinstance(sv, dict) and isinstance(sv.get("file"), str) and isinstance(sv.get("kept_only"), bool),
        root,
        f"{META_FILE}: source_video must give 'file' and 'kept_only'",
    )
    name = sv["file"]
    _require(
        name == Path(name).name and name not in ("", ".", ".."),
        root,
        f"{META_FILE}: source_video file {name!r} is not a plain file name",
    )
    if not sv["kept_only"]:
        idx = meta.get("source_index")
        ok = isinstance(idx, list) and len(idx) == n and all(isinstance(i, int) and i >= 0 for i in idx)
        _require(
            ok and all(a < b for a, b in zip(idx, idx[1:])),
            root,
            f"{META_FILE}: source_index must be {n} increasing frame numbers",
        )


AVATARS_ENV = "DHLIVE_AVATARS"  # where avatars named by a bare name live [default: ./avatars]


def avatars_dir() -> Path:
    return Path(os.environ.get(AVATARS_ENV) or "avatars")


def find_avatar(ref: str | os.PathLike) -> Path:
    """The avatar folder `ref` names: a path to one, or a bare name looked up in the avatars
    folder. An unknown name is one error listing the avatars that exist."""
    path = Path(ref)
    if path.is_dir() or len(path.parts) > 1 or str(ref) in (".", ".."):
        return path
    home = avatars_dir()
    if (home / path).is_dir():
        return home / path
    known = sorted(p.name for p in home.iterdir() if (p / META_FILE).is_file()) if home.is_dir() else []
    there = f"avatars in {home}: {', '.join(known)}" if known else f"no avatars in {home} (set {AVATARS_ENV})"
    raise DhliveError(f"no avatar named {str(ref)!r}; {there}")


def replace_folder(tmp: Path, final: Path) -> None:
    """Move a finished folder into place, replacing an older one only after it is complete."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


# --- the mouth PCA (written by `dhlive distill-audio`, read by the audio model's users) ----

MOUTH_FORMAT = "dhlive-mouth-pca"
MOUTH_VERSION = 1
MOUTH_PCA_FILE = "pca.pkl"
_MOUTH_FIELDS = {  # name -> shape (k = number of coefficients, D = PCA input size)
    "mean": ("D",),
    "components": ("k", "D"),
    "explained": ("k",),
    "decoder": ("k+1", "L"),
}


def save_mouth_pca(path: str | os.PathLike, fields: dict) -> None:
    """fields: kind (str), lip_indices, image_size (w, h), the arrays above and the scales."""
    out = {"format": MOUTH_FORMAT, "version": MOUTH_VERSION}
    for k, v in fields.items():
        out[k] = np.ascontiguousarray(v, np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
    save_pickle(path, out)


def load_mouth_pca(path: str | os.PathLike) -> dict:
    """Load and validate a mouth PCA: a dict of its fields, arrays float32."""
    path = Path(path)
    d = load_pickle(path)

    def need(cond, problem):
        if not cond:
            raise DhliveError(f"mouth PCA {path}: {problem}")

    need(isinstance(d, dict) and d.get("format") == MOUTH_FORMAT, "not a dhlive mouth PCA file")
    need(
        d.get("version") == MOUTH_VERSION,
        f"version {d.get('version')} is not supported (this dhlive reads {MOUTH_VERSION})",
    )
    for key in ("kind", "lip_indices", "image_size", "lip_scale", "pixel_scale", "coeff_scale", *_MOUTH_FIELDS):
        need(key in d, f"has no '{key}'")
    arrays = {k: np.asarray(d[k]) for k in _MOUTH_FIELDS}
    for k, a in arrays.items():
        need(
            a.dtype.kind == "f" and np.isfinite(a).all() and a.ndim == len(_MOUTH_FIELDS[k]),
            f"'{k}' is not a finite float array of the right rank",
        )
    k, dim = arrays["components"].shape
    need(
        arrays["mean"].shape == (dim,) and arrays["explained"].shape == (k,) and arrays["decoder"].shape[0] == k + 1,
        "array shapes disagree with each other",
    )
    return {**d, **{n: a.astype(np.float32) for n, a in arrays.items()}}


# --- torch checkpoints (audio model, training state) ---------------------------------------

AUDIO_MODEL_FORMAT = "dhlive-audio-model"
AUDIO_MODEL_FILE = "audio_model.pt"  # beside MOUTH_PCA_FILE in an audio model folder
AUDIO_TRAIN_STATE_FORMAT = "dhlive-audio-train-state"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict) -> None:
    """torch.save of plain data (tensors, numbers, strings, dicts, lists) tagged with kind and version,
    so it loads with weights_only=True: a checkpoint from a stranger cannot run code."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": kind, "version": CHECKPOINT_VERSION, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, kind: str) -> dict:
    """A checkpoint written by save_checkpoint, checked to be of `kind`. Anything else, a file
    that holds Python objects a stranger could make run code, a text file, another program's
    model, is refused with one line saying which."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DhliveError(f"{path}: no such checkpoint")
    with path.open("rb") as f:
        head = f.read(512)
    if not head.startswith(b"PK"):  # torch writes a zip archive
        what = (
            "empty"
            if not head
            else "a Python pickle, not opened: it could run code"
            if head[:1] == b"\x80"
            else "a text file"
            if _is_text(head)
            else "not a torch file"
        )
        raise DhliveError(f"{path}: not a dhlive checkpoint ({what})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DhliveError(
            f"{path}: refused: it holds Python objects besides tensors and numbers, and loading those could run code"
        ) from None
    except Exception as e:
        raise DhliveError(f"{path}: not a readable checkpoint ({type(e).__name__}; truncated or damaged?)") from None
    if not isinstance(d, dict) or not isinstance(d.get("format"), str):
        raise DhliveError(f"{path}: not a dhlive checkpoint (another program's model or data?); expected {kind!r}")
    if d["format"] != kind:
        raise DhliveError(f"{path}: is a {d['format']!r} checkpoint, expected {kind!r}")
    if d.get("version") != CHECKPOINT_VERSION:
        raise DhliveError(
            f"{path}: checkpoint version {d.get('version')} is not supported (this dhlive reads {CHECKPOINT_VERSION})"
        )
    return d


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


ENV_CACHE_DIR = "DHLIVE_CACHE_DIR"


def cache_dir() -> Path:
    """Where dhlive keeps what it can make again (the face model, the demo, training caches)."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dhlive"


def file_sha256(path: str | os.PathLike) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- the renderer (written by `dhlive train-render`) -----------------------------------------

# The shipped base models (checkpoints/, docs/models.md), found here so that any stage can
# name them without importing another stage (training needs no video library).
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED_AUDIO_MODEL = SHIPPED / "audio"  # 160 ms look-ahead
SHIPPED_STREAM_AUDIO_MODEL = SHIPPED / "audio_live"  # 120 ms: a frame within 200 ms of its audio
SHIPPED_RENDERER = SHIPPED / "render_fast.pt"

RENDER_MODEL_FORMAT = "dhlive-render-model"
RENDER_MODEL_FILE = "render_model.pt"
RENDER_TRAIN_STATE_FORMAT = "dhlive-render-train-state"

# A render pack: one avatar's training material in one portable file (what a machine that
# receives little data gets instead of thousands of PNGs): the render windows as JPEG, and per frame
# the geometry and mouth the renderer's inputs are built from. np.load(allow_pickle=False).
RENDER_PACK_FORMAT = "dhlive-render-pack"
RENDER_PACK_VERSION = 2  # 2: windows cut from source.mp4, bicubic (1: from the crops)
_PACK_ARRAYS = {  # name -> shape; N frames, K polygon points, B JPEG bytes
    "jpeg": ("B",),
    "jpeg_offsets": ("N+1",),
    "canonical_to_window": ("N", 2, 4),
    "repaint": ("N", "K", 2),
    "landmarks": ("N", N_LANDMARKS, 2),
    "lips": ("N", 40, 3),
    "mouth_images": ("N", 15, 30, 3),
    "aperture": ("N",),
    "euler": ("N", 3),
    "rest_lips": (40, 3),
    "rest_image": (15, 30, 3),
}


def save_render_pack(path: str | os.PathLike, meta: dict, arrays: dict, compressed: bool = False) -> None:
    """meta: JSON-able facts (avatar, size, window, rest contrast...); arrays: the fields above.
    compressed: deflate the arrays (a quarter smaller; slower to write), for packs that travel."""
    missing = set(_PACK_ARRAYS) - set(arrays)
    if missing:
        raise ValueError(f"render pack lacks {sorted(missing)}")
    buf = io.BytesIO()
    header = json.dumps({"format": RENDER_PACK_FORMAT, "version": RENDER_PACK_VERSION, **meta})
    (np.savez_compressed if compressed else np.savez)(
        buf, meta=np.frombuffer(header.encode(), np.uint8), **{k: np.ascontiguousarray(arrays[k]) for k in _PACK_ARRAYS}
    )
    atomic_write_bytes(path, buf.getvalue())


def load_render_pack(path: str | os.PathLike) -> tuple[dict, dict]:
    """Load and validate a render pack: (meta, arrays)."""
    path = Path(path)

    def need(cond, problem):
        if not cond:
            raise DhliveError(f"render pack {path}: {problem}")

    need(path.is_file(), "no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(bytes(data.pop("meta")).decode())
    except (ValueError, OSError, KeyError, UnicodeDecodeError, EOFError, zipfile.BadZipFile) as e:
        raise DhliveError(f"render pack {path}: not readable ({type(e).__name__})") from None
    need(isinstance(meta, dict) and meta.get("format") == RENDER_PACK_FORMAT, "not a dhlive render pack")
    need(
        meta.get("version") == RENDER_PACK_VERSION,
        f"version {meta.get('version')} is not supported (this dhlive reads {RENDER_PACK_VERSION})",
    )
    for k in _PACK_ARRAYS:
        need(k in data, f"has no '{k}'")
    n = len(data["aperture"])
    need(
        n > 0 and data["jpeg_offsets"].shape == (n + 1,) and int(data["jpeg_offsets"][-1]) == len(data["jpeg"]),
        "frame index does not match its images",
    )
    for k, shape in _PACK_ARRAYS.items():
        a = data[k]
        ok = a.ndim == len(shape) and all(not isinstance(s, int) or s == m for s, m in zip(shape, a.shape))
        ok = ok and (shape[0] != "N" or len(a) == n)
        need(ok, f"'{k}' has shape {a.shape}, expected {shape}")
    return meta, data


# --- synthetic speech corpus (distill-audio's cache of espeak-ng speech and its articulation) ---

PHONETIC_CORPUS_FILE = "phonetic_corpus.npz"
PHONETIC_CORPUS_FORMAT = "dhlive-phonetic-corpus"
PHONETIC_CORPUS_VERSION = 1


def save_phonetic_corpus(path: str | os.PathLike, meta: dict, items: list) -> None:
    """items: (features (T,F), articulation (T,A)) per utterance, stored end to end as float16.
    Kept beside a training run: espeak-ng's voices jitter from call to call, so a resumed run
    must read the speech the first part trained on rather than synthesise it anew."""
    buf = io.BytesIO()
    header = json.dumps({"format": PHONETIC_CORPUS_FORMAT, "version": PHONETIC_CORPUS_VERSION, **meta})
    np.savez(
        buf,
        meta=np.frombuffer(header.encode(), np.uint8),
        features=np.concatenate([f for f, _ in items]).astype(np.float16),
        articulation=np.concatenate([a for _, a in items]).astype(np.float16),
        lengths=np.array([len(f) for f, _ in items], np.int64),
    )
    atomic_write_bytes(path, buf.getvalue())


def load_phonetic_corpus(path: str | os.PathLike) -> tuple[dict, list]:
    """(meta, items) of a corpus written by save_phonetic_corpus, validated, as float32."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            feats, art, lengths = z["features"], z["articulation"], z["lengths"]
    except (ValueError, OSError, KeyError, UnicodeDecodeError, EOFError, zipfile.BadZipFile) as e:
        raise DhliveError(f"phonetic corpus {path}: not readable ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != PHONETIC_CORPUS_FORMAT:
        raise DhliveError(f"phonetic corpus {path}: not a dhlive phonetic corpus")
    if meta.get("version") != PHONETIC_CORPUS_VERSION:
        raise DhliveError(f"phonetic corpus {path}: version {meta.get('version')} is not supported")
    if (
        lengths.ndim != 1
        or (lengths <= 0).any()
        or int(lengths.sum()) != len(feats)
        or len(art) != len(feats)
        or feats.ndim != 2
        or art.ndim != 2
    ):
        raise DhliveError(f"phonetic corpus {path}: utterance lengths do not match its arrays")
    cuts = np.cumsum(lengths)[:-1]
    return meta, list(zip(np.split(feats.astype(np.float32), cuts), np.split(art.astype(np.float32), cuts)))
