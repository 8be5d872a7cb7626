"""`dhlive eval selfreenact`: drive the held-out tail of a real clip with its own audio and
compare with what the person really did.

The avatar's last `holdout` share of frames is rendered from its audio (through the audio
model and the renderer, exactly as `dhlive infer` does, with reference frames taken only
from the frames before the tail) and pasted into those frames. Generated and real frames are
then both read by the landmarker, so the mouth is measured as a viewer sees it:
aperture r, articulation ratio and best lag against the real mouth, the 40-lip-point
distance after pose alignment, PSNR/SSIM of the mouth crop and of the face, and the mouth
sharpness ratio. `drive="real"` feeds the real mouth through the mouth PCA instead of the
audio model, isolating the renderer.

The frames are pasted with the colour matched at the edge only (SCORED_COLOUR_MATCH), not
with `infer`'s default, which gives the skin the colour and smoothness of the frame it goes
into: here that frame is the answer, and taking its statistics would score the answer
showing through (docs/render.md, "Paste-back").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import media
from .. import metrics as M
from ..audio.clips import load_clip
from ..audio.inference import predict
from ..constants import FPS, SAMPLE_RATE
from ..errors import DhliveError
from ..facemesh import LIPS, aperture
from ..formats import META_FILE, load_avatar, write_json
from ..models import load_models
from ..mouth import avatar_mouth, mouth_deltas
from ..render.checkpoint import load_renderer
from ..render.frames import FramePipeline, InferConfig
from .faces import FaceTrack
from .plots import aperture_plot, mouth_strip, save_series, spread
from .video import MOUTH_SIZE, STRIP_FRAMES, mean_rows, motion_row

FACE_SIZE = 256  # px of the face crops for PSNR/SSIM
MAX_LAG = 5  # frames searched either way for the best generated-vs-real lag
MIN_HELD_OUT = 10  # frames
DRIVES = ("audio", "real")
SCORED_COLOUR_MATCH = "edge"  # the frame pasted into is the one scored: take its colour at the edge only


def selfreenact(
    avatar_dir,
    *,
    holdout: float = 0.2,
    drive: str = "audio",
    audio_model=None,
    renderer=None,
    cfg: InferConfig | None = None,
    out_dir=None,
    save_video: bool = False,
    face_model=None,
    progress: bool = True,
) -> dict:
    """Score the pipeline on an avatar's held-out tail. Writes NAME.json, NAME_aperture.png,
    NAME_mouths.png (and NAME.mp4, real | generated, with save_video) into out_dir when given."""
    start = time.perf_counter()
    if drive not in DRIVES:
        raise DhliveError(f"drive must be one of {DRIVES}, not {drive!r}")
    if not 0 < holdout < 1:
        raise DhliveError(f"--holdout must be between 0 and 1, not {holdout}")
    clip = load_clip(avatar_dir, with_images=False)
    cfg = cfg or InferConfig(colour_match=SCORED_COLOUR_MATCH)
    avatar = load_avatar(avatar_dir, check_images=False)
    model, basis, renderer_path = load_models(audio_model, renderer, avatar=avatar.root)
    n = avatar.n_frames
    k = _held_out_count(avatar_dir, n, holdout)
    _check_unseen(avatar, renderer_path, n - k, holdout)
    held = np.arange(n - k, n)
    source_index = np.asarray(avatar.meta.get("source_index", range(n)), np.int64)[held]
    timeline = max(clip.n_timeline, int(source_index.max()) + 1)
    pipe = FramePipeline(avatar_dir, renderer_path, basis, cfg, reference_frames=range(n - k))
    try:
        coeffs = _driving_coeffs(drive, model, basis, clip, pipe, held, source_index, timeline)
        prompt_ap = aperture(basis.decode(coeffs, pipe.rest)[0])
        video = Path(out_dir) / f"{avatar.root.name}.mp4" if save_video and out_dir is not None else None
        a0, a1 = int(source_index[0] * SAMPLE_RATE / FPS), int((source_index[-1] + 1) * SAMPLE_RATE / FPS)
        tail = _render_held_out(pipe, coeffs, held, cfg.batch, face_model, video, clip.audio[a0:a1], progress)
    finally:
        pipe.close()

    gen_ap, real_ap = aperture(tail.generated), aperture(tail.real)
    both = np.isfinite(gen_ap) & np.isfinite(real_ap)
    if both.sum() < MIN_HELD_OUT:
        raise DhliveError(f"{avatar_dir}: a face was found in only {int(both.sum())} of the {k} held-out frame pairs")
    lag, r_lag = M.best_lag(_fill(gen_ap), _fill(real_ap), MAX_LAG)
    speech = M.voice_activity(clip.audio, timeline, FPS)[source_index]
    envelope = M.speech_envelope(clip.audio, timeline, FPS)[source_index]
    real_level = M.open_level(real_ap)
    report = {
        "name": avatar.root.name,
        "avatar": str(avatar_dir),
        "drive": drive,
        "held_out_frames": k,
        "audio_model": str(audio_model or "default"),
        "renderer": str(renderer_path),
        "aperture_r": M.pearson(gen_ap[both], real_ap[both]),
        "articulation": M.articulation_ratio(gen_ap[both], real_ap[both]),
        "best_lag": lag,
        "aperture_r_at_best_lag": r_lag,
        "prompt_aperture_r": M.pearson(prompt_ap[both], real_ap[both]),
        "lip_distance": float(np.nanmean(M.lip_distance(tail.generated, tail.real, LIPS))),
        **{key: float(np.mean(v)) if v else None for key, v in tail.scores.items()},
        "sharpness_ratio": (
            float(np.mean(tail.sharp_generated) / max(np.mean(tail.sharp_real), 1e-9)) if tail.sharp_real else None
        ),
        "checkerboard": float(np.mean(tail.grid_generated)) if tail.grid_generated else None,
        "checkerboard_real": float(np.mean(tail.grid_real)) if tail.grid_real else None,
        "lip_colour_difference": float(np.mean(tail.lip_colour)) if tail.lip_colour else None,
        "generated": motion_row(tail.generated, speech, envelope, real_level, np.asarray(tail.sharp_generated)),
        "real": motion_row(tail.real, speech, envelope, real_level, np.asarray(tail.sharp_real)),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if out_dir is not None:
        _write_outputs(Path(out_dir), report, held, gen_ap, real_ap, prompt_ap, speech, real_level, tail.strip)
    return report


def _held_out_count(avatar_dir, n: int, holdout: float) -> int:
    """How many of the avatar's n frames are scored; refused when too few remain on either side."""
    k = int(round(holdout * n))
    if k < MIN_HELD_OUT or n - k < 1:
        raise DhliveError(
            f"{avatar_dir}: {n} frames; holding out {holdout:.0%} leaves {k} to score "
            f"(at least {MIN_HELD_OUT} needed) and {n - k} to take references from"
        )
    return k


def _driving_coeffs(drive: str, model, basis, clip, pipe, held, source_index, timeline: int) -> np.ndarray:
    """The mouth coefficients of the held-out frames: from the clip's audio through the audio
    model, or the real mouths through the PCA (the renderer alone)."""
    if drive == "audio":
        coeffs = predict(model, clip.audio)
        return np.concatenate([coeffs, np.repeat(coeffs[-1:], max(0, timeline - len(coeffs)), 0)])[source_index]
    lips, images, _ = avatar_mouth(pipe.avatar)
    return basis.encode(*mouth_deltas(lips[held], images[held], pipe.rest))


def _check_unseen(avatar, renderer_path, first_scored: int, holdout: float) -> None:
    """The avatar's own renderer must not have trained on the frames scored."""
    if avatar.renderer_path is None or Path(renderer_path).resolve() != avatar.renderer_path.resolve():
        return
    trained = (load_renderer(renderer_path)[1].get("trained_frames") or {}).get(avatar.root.name, [0, avatar.n_frames])
    if trained[1] > first_scored:
        raise DhliveError(
            f"{avatar.root}: its own renderer trained on frames {trained[0]}-{trained[1] - 1}, and holding out "
            f"{holdout:.0%} scores frames {first_scored}-{avatar.n_frames - 1}: make the avatar with --holdout "
            f"{holdout:g} to keep them out of its fine-tune, or pass --renderer"
        )


@dataclass
class HeldOutTail:
    """The held-out frames as rendered and as they were: landmarks read off both, per-frame
    image scores, and mouth crops for the strip."""

    generated: np.ndarray  # (k, 478, 3) landmarks of the generated frames (NaN where no face)
    real: np.ndarray  # (k, 478, 3) of the real ones
    scores: dict  # mouth_psnr, mouth_ssim, face_psnr, face_ssim: lists over frames
    sharp_generated: list
    sharp_real: list
    strip: dict  # frame -> (real mouth crop, generated mouth crop)
    grid_generated: list = field(default_factory=list)  # checkerboard share of the mouth crops
    grid_real: list = field(default_factory=list)
    lip_colour: list = field(default_factory=list)  # CIEDE2000 of the lips' mean colour


def _render_held_out(
    pipe: FramePipeline, coeffs, held, batch: int, face_model, video: Path | None, audio, progress: bool
) -> HeldOutTail:
    """Render the held-out frames from `coeffs`, paste them back, read both with the landmarker."""
    from tqdm import tqdm

    k = len(held)
    tail = HeldOutTail(
        None, None, {key: [] for key in ("mouth_psnr", "mouth_ssim", "face_psnr", "face_ssim")}, [], [], {}
    )
    picks = set(spread(range(k), STRIP_FRAMES))
    writer = None
    if video is not None:
        w, h = pipe.avatar.source_size
        video.parent.mkdir(parents=True, exist_ok=True)
        writer = media.Mp4Writer(video, FPS, 2 * w, h, audio=audio)
    try:
        with FaceTrack(FPS, face_model) as gen_track, FaceTrack(FPS, face_model) as real_track:
            bar = tqdm(
                total=k, desc=f"selfreenact {pipe.avatar.root.name}", unit="frame", disable=not progress, leave=False
            )
            for b0 in range(0, k, batch):
                ids = range(b0, min(k, b0 + batch))
                frames = [pipe.prepare(j, coeffs[j], index=int(held[j])) for j in ids]
                for j, frame, g in zip(ids, frames, pipe.render(frames)):
                    gen = pipe.paste(frame, g)
                    real = np.asarray(pipe.source[frame.index])
                    gen_track.add(gen)
                    lm_r = real_track.add(real)
                    if writer is not None:
                        writer.write(np.concatenate([real, gen], 1))
                    if lm_r is not None:
                        _score_frame(gen, real, lm_r, tail, j if j in picks else None)
                    bar.update(1)
            bar.close()
            tail.generated, tail.real = gen_track.array(), real_track.array()
        if writer is not None:
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    return tail


def _write_outputs(out: Path, report: dict, held, gen_ap, real_ap, prompt_ap, speech, real_level, strip: dict) -> None:
    name = report["name"]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", report)
    aperture_plot(
        out / f"{name}_aperture.png",
        {"real": real_ap, "generated": gen_ap},
        speech,
        FPS,
        real_level,
        title=f"{name}: held-out {len(held)} frames driven by {report['drive']}; "
        f"r {report['aperture_r']:.2f}; grey = silence",
    )
    save_series(
        out / f"{name}_series.npz",
        frame=held,
        aperture_real=real_ap,
        aperture_generated=gen_ap,
        aperture_prompt=prompt_ap,
        speech=speech,
    )
    order = sorted(strip)
    mouth_strip(
        out / f"{name}_mouths.png", {"real": [strip[j][0] for j in order], "generated": [strip[j][1] for j in order]}
    )


def _fill(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    return np.where(ok, x, np.nanmean(x)) if ok.any() else np.zeros_like(x)


def _score_frame(gen, real, lm, tail: HeldOutTail, strip_at: int | None) -> None:
    mouth, face = M.mouth_square(lm, LIPS), M.face_square(lm)
    mg, mr = M.crop_square(gen, mouth, MOUTH_SIZE), M.crop_square(real, mouth, MOUTH_SIZE)
    fg, fr = M.crop_square(gen, face, FACE_SIZE), M.crop_square(real, face, FACE_SIZE)
    tail.scores["mouth_psnr"].append(M.psnr(mg, mr))
    tail.scores["mouth_ssim"].append(M.ssim(mg, mr))
    tail.scores["face_psnr"].append(M.psnr(fg, fr))
    tail.scores["face_ssim"].append(M.ssim(fg, fr))
    tail.sharp_generated.append(M.sharpness(mg))
    tail.sharp_real.append(M.sharpness(mr))
    tail.grid_generated.append(M.checkerboard(mg))
    tail.grid_real.append(M.checkerboard(mr))
    lip = M.lip_colour_difference(gen, real, lm)
    if lip is not None:
        tail.lip_colour.append(lip)
    if strip_at is not None:
        tail.strip[strip_at] = (mr, mg)


SUMMARY_KEYS = (
    "aperture_r",
    "articulation",
    "best_lag",
    "aperture_r_at_best_lag",
    "prompt_aperture_r",
    "lip_distance",
    "mouth_psnr",
    "mouth_ssim",
    "face_psnr",
    "face_ssim",
    "sharpness_ratio",
    "checkerboard",
    "checkerboard_real",
    "lip_colour_difference",
)


def list_avatars(paths) -> list[Path]:
    """Avatar folders, or folders of avatar folders."""
    out = []
    for p in map(Path, paths):
        if (p / META_FILE).is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if (q / META_FILE).is_file())
            if not found:
                raise DhliveError(f"{p}: neither an avatar folder nor a folder of avatars (no {META_FILE})")
            out += found
        else:
            raise DhliveError(f"{p}: no such avatar folder")
    return out


def selfreenact_all(paths, out_dir, *, progress: bool = True, **kw) -> dict:
    """selfreenact over avatars (or folders of avatars); writes summary.json into out_dir."""
    from tqdm import tqdm

    avatars = list_avatars(paths)
    reports = [
        selfreenact(a, out_dir=out_dir, progress=progress, **kw)
        for a in tqdm(avatars, desc="avatars", unit="avatar", disable=not progress or len(avatars) < 2)
    ]
    rows = ("generated", "real")
    summary = {
        "mode": "selfreenact",
        "clips": reports,
        "mean": mean_rows(reports, rows, SUMMARY_KEYS),
        "median": mean_rows(reports, rows, SUMMARY_KEYS, np.median),
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(out_dir) / "summary.json", summary)
    return summary
