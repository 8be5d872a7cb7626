"""`dhlive prepare`: a talking-head clip (or one photo) -> an avatar folder.

Two passes over the frames. Pass 1 finds the face in every frame (the one speaking to
camera when there are several) and is cached, so an interrupted run resumes. Then the
frames are judged (no face, turned too far, too small), short gaps are interpolated,
the head pose is fitted, and crop boxes are smoothed. Pass 2 writes the crops, and keeps
a copy of the input video for paste-back. Everything is built in a hidden `.NAME.partial`
folder that is renamed to NAME only when complete (see formats.py for the layout).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import __version__, formats, media
from ..config import number, numbers
from ..constants import FPS, SAMPLE_RATE
from ..errors import DhliveError
from ..facemesh import FACE_OVAL
from ..geometry import smooth_series
from . import masks, pose
from .landmarks import Face, FaceLandmarker, MainFaceFollower, face_model_path

CACHE_FILE = "detections.npz"
CACHE_EVERY = 250  # frames between saves of the detection cache


@dataclass
class PrepareConfig:
    fps: float = float(FPS)
    size: int = 512  # crop side in pixels
    max_yaw: float = 45.0  # degrees; more turned frames are rejected
    max_pitch: float = 40.0
    min_face_px: float = 64.0  # faces smaller than this (landmark box) are rejected
    max_gap: int = 12  # gaps of at most this many frames are interpolated, longer ones dropped
    min_usable_seconds: float = 1.0  # fail below this much usable video
    crop_scale: float = 3.0  # crop side in eye-corner distances
    crop_smoothing: float = 0.4  # seconds; crop boxes move smoothly, landmarks stay exact
    pose_smoothing: tuple = pose.DEFAULT_SMOOTHING
    still_seconds: float = 4.0  # length of the avatar made from a photo
    max_photo_side: int = 2048  # a larger photo is scaled down to this (the face needs no more)
    max_faces: int = 2  # faces looked for per frame (to follow the right one)
    face_model: str | None = None
    audio: str | None = None  # the speech from this file instead of the video's own track
    audio_offset: float = 0.0  # seconds the sound lags the picture in the input (negative: it leads)

    def __post_init__(self):
        number("fps", self.fps, low=0, high=240, above=True)
        number("size", self.size, low=32, high=4096, integer=True)
        number("max_yaw", self.max_yaw, low=0, high=90, above=True)
        number("max_pitch", self.max_pitch, low=0, high=90, above=True)
        number("min_face_px", self.min_face_px, low=0)
        number("max_gap", self.max_gap, low=0, integer=True)
        number("min_usable_seconds", self.min_usable_seconds, low=0)
        number("crop_scale", self.crop_scale, low=0.5, high=20)
        number("crop_smoothing", self.crop_smoothing, low=0, high=10)
        numbers("pose_smoothing", self.pose_smoothing, 3, low=0)
        number("still_seconds", self.still_seconds, low=0, high=600, above=True)
        number("max_faces", self.max_faces, low=1, high=10, integer=True)
        number("max_photo_side", self.max_photo_side, low=256, integer=True)
        number("audio_offset", self.audio_offset, low=-60, high=60)


@dataclass
class PrepareResult:
    path: Path
    n_frames: int
    n_source_frames: int
    seconds: float
    notes: list = field(default_factory=list)


# --- frames: a video, or a photo given gentle motion -----------------------------------

STILL_MOTION = {"roll_deg": 0.6, "shift": 0.004, "zoom": 1.03, "breath": 0.004}


def still_frames(img: np.ndarray, n: int):
    """A photo as `n` frames of slow camera sway (roll, shift, zoom), one loop that closes.

    The zoom keeps borders out of view; the motion is a few tenths of a degree and a few
    pixels, so the result reads as a person holding still, not as a frozen picture.
    """
    h, w = img.shape[:2]
    m = STILL_MOTION
    for i in range(n):
        ph = 2 * np.pi * i / n
        angle = m["roll_deg"] * np.sin(ph) + 0.4 * m["roll_deg"] * np.sin(2 * ph + 1.0)
        scale = m["zoom"] + m["breath"] * np.sin(ph + 2.0)
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        mat[0, 2] += m["shift"] * w * np.sin(ph + 0.5)
        mat[1, 2] += m["shift"] * h * np.sin(2 * ph)
        yield cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _frames(info: media.MediaInfo, cfg: PrepareConfig, warnings: list | None = None):
    if info.is_image:
        img = media.read_image(info.path)
        if img.shape[:2] != (info.height, info.width):  # a large photo, scaled down (prepare)
            img = cv2.resize(img, (info.width, info.height), interpolation=cv2.INTER_AREA)
        return still_frames(img, int(round(cfg.still_seconds * cfg.fps)))
    return media.iter_frames(info.path, cfg.fps, warnings)


# --- helpers ---------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the True runs of a boolean array."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def _fmt_runs(runs) -> str:
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:6]]
    return ", ".join(parts) + (f" and {len(runs) - 6} more" if len(runs) > 6 else "")


def _packages() -> dict:
    out = {"dhlive": __version__}
    for name in ("mediapipe", "av", "numpy", "opencv-contrib-python"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def crop_face(frame: np.ndarray, box, size: int) -> np.ndarray:
    """Square crop (x0, y0, side) resized to size x size; pixels outside the frame replicate the edge."""
    x0, y0, side = (float(v) for v in box)
    scale = size / side
    if scale < 0.66:  # strong downscale: cut at 1:1, then area-average (no aliasing)
        n = int(round(side))
        mat = np.array([[1, 0, -x0], [0, 1, -y0]], np.float32)
        big = cv2.warpAffine(frame, mat, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    mat = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
    return cv2.warpAffine(frame, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# --- pass 1: detection, cached for resume ----------------------------------------------


def _cache_key(info: media.MediaInfo, cfg: PrepareConfig, model: Path) -> str:
    st = info.path.stat()
    return json.dumps(
        {
            "input": str(info.path.resolve()),
            "bytes": st.st_size,
            "mtime": st.st_mtime_ns,
            "fps": cfg.fps,
            "still_seconds": cfg.still_seconds if info.is_image else None,
            "max_faces": cfg.max_faces,
            "model": str(model),
        }
    )


def _load_cache(path: Path, key: str) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {k: z[k] for k in z.files if k != "key"}
    except (OSError, ValueError, KeyError):
        return None


def _save_cache(path: Path, key: str, det: dict, done: int, finished: bool) -> None:
    arrays = {k: np.asarray(v[:done]) for k, v in det.items()}
    tmp = path.with_name(path.stem + ".part.npz")
    np.savez(tmp, key=np.array(key), finished=np.array(finished), **arrays)
    os.replace(tmp, path)


def detect_faces(info: media.MediaInfo, cfg: PrepareConfig, work: Path, progress: bool, warnings: list) -> dict:
    """Per source frame: the followed face's landmarks, mediapipe matrix, blendshapes and
    the number of faces seen. Frames without a face hold NaN."""
    model = face_model_path(cfg.face_model)
    key = _cache_key(info, cfg, model)
    cache_path = work / CACHE_FILE
    cached = _load_cache(cache_path, key) or {}
    if cached.get("finished", False):
        return {k: v for k, v in cached.items() if k != "finished"}
    names = ("landmarks", "matrix", "blendshapes", "n_faces")
    det = {k: list(cached.get(k, [])) for k in names}
    done = len(det["n_faces"])
    w, h = info.width, info.height
    follower = MainFaceFollower(w, h)
    if done and np.isfinite(det["landmarks"][-1]).all():
        follower.last = Face(det["landmarks"][-1], det["matrix"][-1], det["blendshapes"][-1])
    total = int(round(cfg.still_seconds * cfg.fps)) if info.is_image else int(round(info.duration * cfg.fps)) or None
    bar = tqdm(total=total, desc="finding faces", unit="frame", disable=not progress, initial=done)
    with FaceLandmarker(model, max_faces=cfg.max_faces, video=True) as lm:
        for i, frame in enumerate(_frames(info, cfg, warnings)):
            if i < done:
                continue
            if frame.shape[1] != w or frame.shape[0] != h:
                raise DhliveError(
                    f"{info.path}: frame size changes mid-video ({frame.shape[1]}x{frame.shape[0]} at frame {i})"
                )
            faces = lm.detect(frame, int(round(i * 1000 / cfg.fps)))
            face = follower.choose(faces)
            nan = np.full((478, 3), np.nan, np.float32)
            det["landmarks"].append(face.landmarks if face else nan)
            det["matrix"].append(face.matrix if face else np.full((4, 4), np.nan, np.float32))
            det["blendshapes"].append(face.blendshapes if face else np.full(52, np.nan, np.float32))
            det["n_faces"].append(len(faces))
            bar.update(1)
            if (i + 1) % CACHE_EVERY == 0:
                _save_cache(cache_path, key, det, i + 1, False)
    bar.close()
    if not det["n_faces"]:
        raise DhliveError(f"{info.path}: video has no frames")
    det = {k: np.stack(v) if k != "n_faces" else np.array(v, np.int32) for k, v in det.items()}
    _save_cache(cache_path, key, det, len(det["n_faces"]), True)
    return det


# --- judging frames --------------------------------------------------------------------


def judge_frames(det: dict, cfg: PrepareConfig) -> list:
    """Per frame None (usable) or the reason it is not."""
    reasons = []
    for lms, mat in zip(det["landmarks"], det["matrix"]):
        if not np.isfinite(lms).all():
            reasons.append("no face")
            continue
        yaw, pitch, _ = pose.euler_angles(pose.mediapipe_rotation(mat))
        size = float(np.ptp(lms[:, :2], axis=0).max())
        if abs(yaw) > cfg.max_yaw:
            reasons.append(f"face turned too far (yaw > {cfg.max_yaw:g} deg)")
        elif abs(pitch) > cfg.max_pitch:
            reasons.append(f"face tilted too far (pitch > {cfg.max_pitch:g} deg)")
        elif size < cfg.min_face_px:
            reasons.append(f"face smaller than {cfg.min_face_px:g} px")
        else:
            reasons.append(None)
    return reasons


def fill_gaps(det: dict, reasons: list, max_gap: int):
    """Interpolate short inner gaps; return (usable mask, interpolated runs)."""
    ok = np.array([r is None for r in reasons])
    usable = ok.copy()
    filled = []
    n = len(ok)
    for a, b in _runs(~ok):
        if a == 0 or b == n - 1 or b - a + 1 > max_gap:
            continue
        w = (np.arange(a, b + 1) - (a - 1)) / (b - a + 2)
        for k in ("landmarks", "blendshapes"):
            lo, hi = det[k][a - 1], det[k][b + 1]
            det[k][a : b + 1] = lo + w.reshape((-1,) + (1,) * lo.ndim) * (hi - lo)
        det["matrix"][a : b + 1] = np.where((w < 0.5)[:, None, None], det["matrix"][a - 1], det["matrix"][b + 1])
        usable[a : b + 1] = True
        filled.append((a, b))
    return usable, filled


def align_audio(audio: np.ndarray, lag_seconds: float) -> np.ndarray:
    """Move a recording's sound so it lines up with its picture: a sound that lags by
    `lag_seconds` loses that much from its start; one that leads gets silence in front."""
    n = int(round(lag_seconds * SAMPLE_RATE))
    if n >= 0:
        return audio[n:]
    return np.concatenate([np.zeros(-n, audio.dtype), audio])


# --- the whole job ---------------------------------------------------------------------


def _check_name(name: str) -> None:
    """Letters and digits of any script, '.', '_' and '-', starting with a letter or digit."""
    if not name or not re.fullmatch(r"[^\W_][\w.-]*", name):
        raise DhliveError(f"avatar name {name!r}: use letters, digits, '.', '_' or '-' (no slashes or spaces)")


def prepare(
    input_path,
    name: str,
    out_dir="avatars",
    config: PrepareConfig | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> PrepareResult:
    """Build the avatar folder `out_dir/name` from a video or a photo."""
    cfg = config or PrepareConfig()
    t_start = time.perf_counter()
    _check_name(name)
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists() and not force:
        raise DhliveError(f"{final}: already exists (use --force to replace it)")
    info = media.probe(input_path)
    if not info.has_video:
        if info.has_audio:
            raise DhliveError(f"{info.path}: has no video stream (audio only); prepare needs a video or a photo")
        raise DhliveError(f"{info.path}: contains no video frames (no streams: an empty recording?)")
    notes = []
    if info.is_image and max(info.width, info.height) > cfg.max_photo_side:
        scale = cfg.max_photo_side / max(info.width, info.height)
        size = (max(2, round(info.width * scale)), max(2, round(info.height * scale)))
        notes.append(f"photo scaled down from {info.width}x{info.height} to {size[0]}x{size[1]}")
        info = replace(info, width=size[0], height=size[1])
    if cfg.audio and not media.probe(cfg.audio).has_audio:
        raise DhliveError(f"{cfg.audio}: has no audio stream")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = out_dir / f".{name}.partial"
        lock = _lock_avatar(out_dir / f".{name}.lock", final, force)
        work.mkdir(exist_ok=True)
    except OSError as e:
        raise DhliveError(f"{out_dir}: cannot create the avatar folder here ({e.strerror})") from None

    try:
        return _build(info, name, cfg, work, final, progress, t_start, notes)
    except DhliveError:
        shutil.rmtree(work, ignore_errors=True)  # a verdict on the input: nothing to resume
        raise
    finally:
        Path(lock.name).unlink(missing_ok=True)
        lock.close()


def _lock_avatar(path: Path, final: Path, force: bool):
    """An exclusive lock on building `final`, held while the open file lives: two prepares of
    one avatar at once would write into the same work folder."""
    f = open(path, "a")
    try:
        import fcntl
    except ImportError:  # no advisory locks on this system
        return f
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # a prepare that finished between our open and our lock removed the file: a lock on
        # the removed file would not keep out the next prepare, which opens a new one
        live = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
    except OSError:
        live = False
    done = final.exists() and not force  # built by a prepare that held the lock before us
    if live and not done:
        return f
    if live:
        Path(path).unlink(missing_ok=True)
    f.close()
    if done:
        raise DhliveError(f"{final}: already exists (use --force to replace it)")
    raise DhliveError(f"{final}: another `dhlive prepare` is building this avatar now; wait for it")


def _build(
    info: media.MediaInfo,
    name: str,
    cfg: PrepareConfig,
    work: Path,
    final: Path,
    progress: bool,
    t_start: float,
    notes: list[str],
) -> PrepareResult:
    det = detect_faces(info, cfg, work, progress, notes)
    kept, report = _usable_frames(info, cfg, det, notes)
    # segments: runs of consecutive source frames among the kept ones (pose smoothing stays inside)
    breaks = np.flatnonzero(np.diff(kept) > 1)
    segments = list(zip(np.r_[0, breaks + 1].tolist(), np.r_[breaks + 1, len(kept)].tolist()))
    pixels = det["landmarks"][kept].astype(np.float64)
    fit = pose.fit_poses(pixels, det["matrix"][kept], segments, cfg.pose_smoothing)
    lower = masks.lower_face_polygon(fit.mean_face)
    boxes = crop_boxes(fit, lower, segments, cfg)
    source_video = _write_frames(info, cfg, work, kept, boxes, len(det["n_faces"]), progress)
    audio_meta = _write_audio(info, cfg, work, notes)
    meta = {
        "name": name,
        "fps": cfg.fps,
        "n_frames": int(len(kept)),
        "crop_size": cfg.size,
        "source": {
            "file": info.path.name,
            "kind": "photo" if info.is_image else "video",
            "size": [info.width, info.height],
            "rotation": info.rotation,
            "fps": info.fps,
            "duration": info.duration,
            "frames": len(det["n_faces"]),
        },
        "source_index": kept.tolist(),
        "source_video": source_video,
        "segments": [[int(kept[a]), int(kept[b - 1])] for a, b in segments],
        "crop_boxes": np.round(boxes, 2).tolist(),
        **report,
        "has_audio": audio_meta is not None,
        "audio": audio_meta,
        "still_motion": STILL_MOTION if info.is_image else None,
        "notes": notes,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "packages": _packages(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    formats.save_avatar(
        work,
        meta,
        pixels=pixels,
        canonical=fit.canonical,
        blendshapes=det["blendshapes"][kept],
        pose=fit.matrices,
        euler=fit.euler,
        mean_face=fit.mean_face,
        lower_face=lower,
        lower_face_pixels=pose.to_pixels(lower, fit.matrices)[..., :2],
    )
    (work / CACHE_FILE).unlink(missing_ok=True)
    formats.replace_folder(work, final)
    return PrepareResult(final, int(len(kept)), len(det["n_faces"]), time.perf_counter() - t_start, notes)


def _usable_frames(info: media.MediaInfo, cfg: PrepareConfig, det: dict, notes: list) -> tuple[np.ndarray, dict]:
    """The source frames kept (short gaps interpolated in `det`), and what was dropped and why;
    one clear error when too little usable video remains."""
    n_src = len(det["n_faces"])
    reasons = judge_frames(det, cfg)
    usable, filled = fill_gaps(det, reasons, cfg.max_gap)
    kept = np.flatnonzero(usable)
    need = n_src if info.is_image else max(1, int(round(cfg.min_usable_seconds * cfg.fps)))
    rejected = []
    for reason in sorted({r for r in reasons if r}):
        runs = _runs(np.array([r == reason for r in reasons]) & ~usable)
        if runs:
            rejected.append({"reason": reason, "frames": [list(r) for r in runs]})
    why = "; ".join(f"{r['reason']} in frames {_fmt_runs(r['frames'])}" for r in rejected)
    if not np.isfinite(det["landmarks"].reshape(n_src, -1)).all(1).any():
        what = "the photo" if info.is_image else f"any of the {n_src} frames"
        raise DhliveError(f"{info.path}: no face found in {what}")
    if len(kept) < need:  # the photo's face must be found in all its generated frames
        why = why or f"the video is only {n_src / cfg.fps:.1f} s long"
        raise DhliveError(
            f"{info.path}: too little usable video: {len(kept)} of {n_src} frames have a usable face "
            f"(need {need}): {why}" + "".join(f"; {w}" for w in notes)
        )
    if rejected:
        notes.append(f"dropped {n_src - len(kept)} of {n_src} frames: {why}")
    if filled:
        notes.append(f"interpolated short gaps in frames {_fmt_runs(filled)}")
    multi = _runs(det["n_faces"] > 1)
    if multi:
        notes.append(
            f"{int(det['n_faces'].max())} faces in frames {_fmt_runs(multi)}: following the most prominent one"
        )
    return kept, {
        "rejected": rejected,
        "interpolated": [list(r) for r in filled],
        "multiple_faces": [list(r) for r in multi],
    }


def crop_boxes(fit, lower: np.ndarray, segments: list, cfg: PrepareConfig) -> np.ndarray:
    """(N, 3) x0, y0, side of each crop: a fixed canonical square around the face and the
    repaint region, smoothed over time."""
    region = np.concatenate([fit.mean_face[FACE_OVAL], lower])
    centre = (region.min(0) + region.max(0)) / 2
    centre_px = pose.to_pixels(centre[None], fit.matrices)[:, 0, :2]
    eye_px = np.cbrt(np.abs(np.linalg.det(fit.matrices[:, :3, :3])))
    win = max(1, int(round(cfg.crop_smoothing * cfg.fps)))
    kernel = np.hanning(2 * win + 3)[1:-1]
    centre_px = smooth_series(centre_px, kernel, segments)
    side = np.round(smooth_series(cfg.crop_scale * eye_px, kernel, segments))
    return np.stack([centre_px[:, 0] - side / 2, centre_px[:, 1] - side / 2, side], 1)


def _write_frames(
    info: media.MediaInfo,
    cfg: PrepareConfig,
    work: Path,
    kept: np.ndarray,
    boxes: np.ndarray,
    n_src: int,
    progress: bool,
) -> dict:
    """Pass 2: the crops, and the source video paste-back composites into: the input video
    copied as it was (no re-encoding: as fast as a copy, and no generation loss), or a photo's
    motion encoded frame for frame. Returns meta's "source_video"."""
    image_dir = work / formats.IMAGE_DIR
    shutil.rmtree(image_dir, ignore_errors=True)
    image_dir.mkdir()
    slot = np.full(n_src, -1)
    slot[kept] = np.arange(len(kept))
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]

    def write_crop(j, frame):
        crop = crop_face(frame, boxes[j], cfg.size)
        if not cv2.imwrite(
            str(image_dir / formats.IMAGE_PATTERN.format(j)), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), png
        ):
            raise DhliveError(f"{image_dir}: cannot write crops (disk full?)")

    if info.is_image:
        source = {"file": formats.SOURCE_VIDEO_FILE, "kept_only": True}
        video = media.Mp4Writer(work / source["file"], cfg.fps, info.width, info.height, crf=16)
    else:
        suffix = info.path.suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", info.path.suffix) else ".video"
        source = {"file": formats.ORIGINAL_VIDEO_STEM + suffix, "kept_only": False}
        video = contextlib.nullcontext()
    bar = tqdm(total=len(kept), desc="writing crops", unit="frame", disable=not progress)
    pending = []
    written = 0
    with ThreadPoolExecutor(max_workers=2) as pool, video:
        copy = None if info.is_image else pool.submit(_copy_file, info.path, work / source["file"])
        for i, frame in enumerate(_frames(info, cfg)):
            if i >= n_src:
                break
            j = slot[i]
            if j < 0:
                continue
            if info.is_image:
                video.write(frame)
            written += 1
            pending.append(pool.submit(write_crop, j, frame))
            if len(pending) >= 8:
                pending.pop(0).result()
                bar.update(1)
        for f in pending:
            f.result()
            bar.update(1)
        if copy is not None:
            copy.result()
    bar.close()
    if written != len(kept):
        raise DhliveError(f"{info.path}: the second read gave {written} usable frames, the first {len(kept)}")
    return source


def _copy_file(src: Path, dst: Path) -> None:
    try:
        shutil.copyfile(src, dst)
    except OSError as e:
        raise DhliveError(f"{dst.parent}: cannot copy the input video here ({e.strerror})") from None


def _write_audio(info: media.MediaInfo, cfg: PrepareConfig, work: Path, notes: list) -> dict | None:
    """audio.wav (16 kHz mono, moved by cfg.audio_offset) from cfg.audio or the input's own
    track; its meta, or None without sound."""
    if not (cfg.audio or info.has_audio):
        return None
    try:
        audio = align_audio(media.load_audio(cfg.audio or info.path), cfg.audio_offset)
        media.write_wav(work / formats.AUDIO_FILE, audio)
    except DhliveError as e:
        if cfg.audio:
            raise
        notes.append(f"audio track skipped: {e}")
        return None
    return {
        "sample_rate": SAMPLE_RATE,
        "samples": int(audio.size),
        "offset": cfg.audio_offset,
        "file": Path(cfg.audio).name if cfg.audio else None,
    }
