"""`dhlive eval video`: score any talking-head video, from any system, against its audio.

Per video: silence leak (mouth open where a VAD hears nobody), audio-video offset (the lag
of mouth opening against the speech envelope), landmark jitter of the face around the
mouth, mouth sharpness, and, with the source video as `reference`, the seam score along
the edge of the region the system changed. The reference is scored the same way with its
own audio, as the anchor row: what a real video of that person measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import media
from .. import metrics as M
from ..constants import FPS, SAMPLE_RATE
from ..errors import DhliveError
from ..facemesh import LIPS, aperture
from ..formats import META_FILE, load_avatar, write_json
from ..render.frames import pingpong
from .faces import FaceTrack
from .plots import aperture_plot, mouth_strip, save_series, spread

MOUTH_SIZE = 128  # px of the mouth crops (sharpness, PSNR/SSIM, the strip)
STRIP_FRAMES = 8
STRIP_KEEP = 64  # mouth crops kept while reading a video, to pick the strip from
ALIGN_MAE = 4.0  # grey levels: a reference frame is the generated frame's source if they differ less outside the change
MAX_CHANGED = 0.5  # ... and the change covers less than this share of the frame
MIN_SPEECH_FRAMES = 25  # a second of speech at least, or no audio-video offset is measured
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


def motion_row(
    landmarks: np.ndarray,
    speech: np.ndarray,
    envelope: np.ndarray,
    open_at: float | None = None,
    sharpness: np.ndarray | None = None,
    fps: float = FPS,
) -> dict:
    """The metrics of one face track against its audio (per-frame VAD and speech envelope)."""
    ap = aperture(np.asarray(landmarks, np.float64))
    found = np.isfinite(ap)
    if not found.any():
        return {"frames": len(ap), "face_found": 0.0}
    level = float(open_at) if open_at is not None else M.open_level(ap)
    quiet = M.silence_frames(speech) & found
    # an offset needs speech to be measured against: none in a recording of silence or noise
    lag, r = M.av_offset(ap, envelope) if speech.sum() >= MIN_SPEECH_FRAMES else (None, None)
    row = {
        "frames": len(ap),
        "face_found": float(found.mean()),
        "speech_share": float(np.mean(speech)),
        "aperture_mean": float(np.nanmean(ap)),
        "aperture_std": float(np.nanstd(ap)),
        "open_level": level,
        "silent_frames": int(quiet.sum()),
        "silence_aperture": float(np.median(ap[quiet])) if quiet.any() else None,
        "silence_leak": M.silence_leak(ap, speech, level),
        "av_offset_frames": lag,
        "av_offset_ms": round(lag * 1000 / fps, 1) if lag is not None else None,
        "av_sync_r": r,
        "jitter": M.landmark_jitter(landmarks, M.STABLE_POINTS),
    }
    if sharpness is not None and np.isfinite(sharpness).any():
        row["mouth_sharpness"] = float(np.nanmean(sharpness))
    return row


def _audio_of(path: Path) -> np.ndarray | None:
    """A video's own audio track, or None when it has none."""
    return media.load_audio(path) if media.probe(path).has_audio else None


def resolve_reference(reference) -> tuple[Path, np.ndarray | None, tuple[int, int] | None]:
    """A reference video file, or an avatar folder (its source video and audio)."""
    ref = Path(reference)
    if ref.is_dir():
        if not (ref / META_FILE).is_file():
            raise DhliveError(f"{ref}: a folder, but not an avatar (no {META_FILE}); pass a video or an avatar folder")
        avatar = load_avatar(ref, check_images=False)
        audio = media.load_audio(avatar.audio_path) if avatar.audio_path else None
        return avatar.source_video_path, audio, avatar.source_size
    return ref, _audio_of(ref), None


def evaluate_video(
    video, *, audio=None, reference=None, out_dir=None, name: str | None = None, face_model=None, progress: bool = True
) -> dict:
    """Score `video` against `audio` (default: its own track). Writes NAME.json, NAME_aperture.png
    and NAME_mouths.png into out_dir when given. Returns the report."""
    start = time.perf_counter()
    video = Path(video)
    name = name or video.stem
    sound = media.load_audio(audio) if audio else _audio_of(video)
    if sound is None:
        raise DhliveError(f"{video}: has no audio track; pass the speech it was made from with --audio")
    notes = []
    ref_store = ref_audio = None
    if reference is not None:
        ref_path, ref_audio, ref_size = resolve_reference(reference)
        ref_store = media.FrameStore(ref_path, FPS, size=ref_size)
        if len(ref_store) == 0:
            ref_store.close()
            raise DhliveError(f"{ref_path}: no frames")
    try:
        read = _read_video(video, name, ref_store, face_model, progress)
        n = len(read.landmarks)
        if n == 0:
            raise DhliveError(f"{video}: no video frames")
        if not np.isfinite(read.landmarks[:, 0, 0]).any():
            raise DhliveError(f"{video}: no face found in any of its {n} frames")
        audio_seconds, video_seconds = len(sound) / SAMPLE_RATE, n / FPS
        if audio_seconds < video_seconds - 0.5:
            notes.append(
                f"the audio ({audio_seconds:.1f} s) is shorter than the video ({video_seconds:.1f} s): "
                "the frames after its end are scored against silence"
            )
        speech = M.voice_activity(sound, n, FPS)
        envelope = M.speech_envelope(sound, n, FPS)
        ref_row, ref_level = (
            _reference_row(ref_store, ref_audio, face_model, progress, name, notes)
            if ref_store is not None
            else (None, None)
        )
        row = motion_row(read.landmarks, speech, envelope, ref_level, np.asarray(read.sharpness))
        report = {
            "name": name,
            "video": str(video),
            "audio": str(audio or video),
            "reference": str(reference) if reference is not None else None,
            "generated": row,
            "reference_row": ref_row,
        }
        if ref_row and "mouth_sharpness" in ref_row and "mouth_sharpness" in row:
            report["sharpness_ratio"] = row["mouth_sharpness"] / max(ref_row["mouth_sharpness"], 1e-9)
        if ref_store is not None:
            report["seam"] = _seam_summary(read.seams, read.tints, read.aligned, read.changed, n)
            notes += _reference_notes(ref_store, read)
        report["notes"] = notes
        report["seconds"] = round(time.perf_counter() - start, 2)
        if out_dir is not None:
            _write_outputs(Path(out_dir), name, report, read.landmarks, speech, row["open_level"], read.kept)
        return report
    finally:
        if ref_store is not None:
            ref_store.close()


@dataclass
class VideoRead:
    """What one pass over a video gave: landmarks and mouth sharpness per frame, mouth crops
    for the strip, and against a reference, the seam and tint of the changed frames."""

    landmarks: np.ndarray = None
    sharpness: list = field(default_factory=list)
    kept: dict = field(default_factory=dict)  # frame -> (mouth crop, the reference's there or None)
    seams: list = field(default_factory=list)
    tints: list = field(default_factory=list)
    aligned: int = 0  # changed frames matched to their reference frame
    changed: int = 0  # frames in which something changed against the reference
    frame_size: tuple = None


def _read_video(video: Path, name: str, ref_store, face_model, progress: bool) -> VideoRead:
    from tqdm import tqdm

    info = media.probe(video)
    expected = max(1, int(round((info.duration or 0) * FPS)))
    stride = max(1, expected // STRIP_KEEP)
    read = VideoRead()
    with FaceTrack(FPS, face_model) as track:
        bar = tqdm(
            media.iter_frames(video, FPS),
            total=expected,
            desc=f"eval {name}",
            unit="frame",
            disable=not progress,
            leave=False,
        )
        for t, frame in enumerate(bar):
            read.frame_size = frame.shape[:2]
            lm = track.add(frame)
            box = M.mouth_square(lm, LIPS) if lm is not None else None
            crop = M.crop_square(frame, box, MOUTH_SIZE) if box is not None else None
            read.sharpness.append(M.sharpness(crop) if crop is not None else np.nan)
            ref_frame = _matching_frame(ref_store, frame, t) if ref_store is not None else None
            if crop is not None and t % stride == 0:
                read.kept[t] = (crop, M.crop_square(ref_frame[0], box, MOUTH_SIZE) if ref_frame else None)
            if ref_frame is not None:
                rf, mask, ok = ref_frame
                read.changed += bool(mask.any())
                if ok and mask.any():
                    read.aligned += 1
                    read.seams.append((M.seam_score(frame, mask), M.seam_score(rf, mask)))
                    if box is not None:
                        read.tints.append(M.skin_tint(frame, rf, mask, box))
        bar.close()
        read.landmarks = track.array()
    return read


def _reference_row(ref_store, ref_audio, face_model, progress: bool, name: str, notes: list):
    """(the reference's motion row, its open level): the anchor a real video of that person measures."""
    ref_lms, ref_sharp = _track_store(ref_store, face_model, progress, name)
    ref_found = np.isfinite(ref_lms[:, 0, 0])
    if not ref_found.any():
        notes.append("no face found in the reference")
        return None, None
    ref_level = M.open_level(aperture(ref_lms))
    if ref_audio is not None:
        m = len(ref_lms)
        row = motion_row(
            ref_lms, M.voice_activity(ref_audio, m, FPS), M.speech_envelope(ref_audio, m, FPS), None, ref_sharp
        )
        return row, ref_level
    notes.append("the reference has no audio: its audio metrics are left out")
    return {
        "frames": len(ref_lms),
        "face_found": float(ref_found.mean()),
        "jitter": M.landmark_jitter(ref_lms, M.STABLE_POINTS),
        "mouth_sharpness": float(np.nanmean(ref_sharp)),
        "open_level": ref_level,
    }, ref_level


def _reference_notes(ref_store, read: VideoRead) -> list[str]:
    notes = []
    if ref_store.frames.shape[1:3] != read.frame_size:
        notes.append(
            f"the reference is {ref_store.frames.shape[2]}x{ref_store.frames.shape[1]}, the video "
            f"{read.frame_size[1]}x{read.frame_size[0]}: no seam without the same frame size"
        )
    if read.changed and read.aligned < 0.5 * read.changed:
        notes.append(
            f"only {read.aligned} of {read.changed} changed frames match a reference frame "
            "(is the reference the video these frames were made from?)"
        )
    return notes


def _matching_frame(store, frame: np.ndarray, t: int):
    """(reference frame, changed-region mask, aligned?) for generated frame t. A system loops
    its source forward-backward (dhlive) or forward again (Wav2Lip and others); the
    candidate closest to the generated frame outside the changed region is taken."""
    n = len(store)
    best = None
    for j in dict.fromkeys((pingpong(t, n), t % n)):
        rf = np.asarray(store[j])
        if rf.shape != frame.shape:
            return None
        mask = M.changed_region(frame, rf)
        outside = mask == 0
        mae = float(np.abs(frame.astype(np.int16) - rf.astype(np.int16))[outside].mean()) if outside.any() else 255.0
        if best is None or mae < best[0]:
            best = (mae, rf, mask)
    mae, rf, mask = best
    return rf, mask, mae < ALIGN_MAE and mask.mean() < MAX_CHANGED


def _track_store(store, face_model, progress: bool, name: str) -> tuple[np.ndarray, np.ndarray]:
    from tqdm import tqdm

    sharp = []
    with FaceTrack(FPS, face_model) as track:
        for i in tqdm(
            range(len(store)), desc=f"eval {name} reference", unit="frame", disable=not progress, leave=False
        ):
            frame = np.asarray(store[i])
            lm = track.add(frame)
            sharp.append(
                M.sharpness(M.crop_square(frame, M.mouth_square(lm, LIPS), MOUTH_SIZE)) if lm is not None else np.nan
            )
        return track.array(), np.asarray(sharp)


def _seam_summary(seams: list, tints: list, aligned: int, changed: int, n: int) -> dict:
    out = {"changed_frames": changed, "matched_frames": aligned, "frames": n}
    if seams:
        for k in ("colour_step", "gradient"):
            out[f"{k}_generated"] = float(np.mean([g[k] for g, _ in seams]))
            out[f"{k}_reference"] = float(np.mean([r[k] for _, r in seams]))
    if tints and np.isfinite(tints).any():
        out["skin_tint"] = float(np.nanmean(tints))
    return out


def _write_outputs(out: Path, name: str, report: dict, landmarks, speech, level, kept: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", report)
    aperture_plot(
        out / f"{name}_aperture.png",
        {"generated": aperture(landmarks)},
        speech,
        FPS,
        level,
        title=f"{name}: mouth aperture; grey = silence",
    )
    save_series(out / f"{name}_series.npz", aperture_generated=aperture(landmarks), speech=speech)
    picks = spread(sorted(kept), STRIP_FRAMES)
    rows = {"generated": [kept[t][0] for t in picks]}
    if picks and all(kept[t][1] is not None for t in picks):
        rows = {"source": [kept[t][1] for t in picks], **rows}
    mouth_strip(out / f"{name}_mouths.png", rows)


def _match(option, stem: str, what: str):
    """A file given for all videos, or the file of this stem in a given folder."""
    if option is None:
        return None
    p = Path(option)
    if not p.is_dir() or (p / META_FILE).is_file():
        return p
    hits = sorted(q for q in p.iterdir() if q.stem == stem)
    if not hits:
        raise DhliveError(f"{p}: no {what} named {stem}.* for video {stem}")
    return hits[0]


def list_videos(paths) -> list[Path]:
    videos = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise DhliveError(f"{p}: no videos in this folder")
            videos += found
        elif not p.exists():
            raise DhliveError(f"{p}: no such file")
        else:
            videos.append(p)
    return videos


def evaluate_videos(paths, out_dir, *, audio=None, reference=None, face_model=None, progress: bool = True) -> dict:
    """evaluate_video over files and folders of videos (audio/reference: a file for all, or a
    folder holding one per video stem). Writes summary.json into out_dir."""
    from tqdm import tqdm

    videos = list_videos(paths)
    reports = []
    for v in tqdm(videos, desc="videos", unit="video", disable=not progress or len(videos) < 2):
        reports.append(
            evaluate_video(
                v,
                audio=_match(audio, v.stem, "audio"),
                reference=_match(reference, v.stem, "reference"),
                out_dir=out_dir,
                face_model=face_model,
                progress=progress,
            )
        )
    rows = ("generated", "reference_row")
    summary = {
        "mode": "video",
        "videos": reports,
        "mean": mean_rows(reports, rows),
        "median": mean_rows(reports, rows, how=np.median),
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(out_dir) / "summary.json", summary)
    return summary


def mean_rows(reports: list[dict], rows: tuple[str, ...], top: tuple[str, ...] = (), how=np.mean) -> dict:
    """Means (or `how`: np.median...) over reports of the numbers in the named rows and of
    top-level keys, leaving out missing values and NaN."""

    def avg(values):
        vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)]
        return float(how(vals)) if vals else None

    out = {k: avg(r.get(k) for r in reports) for k in top}
    for key in rows:
        present = [r[key] for r in reports if r.get(key)]
        if present:
            names = dict.fromkeys(k for row in present for k in row)
            out[key] = {k: avg(row.get(k) for row in present) for k in names}
    return out
