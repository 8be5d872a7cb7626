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
into: here that frame is the answer. Scored that way, a fine-tuned renderer gained 1 dB of
mouth PSNR on LivePortrait d6, and lost 1.4 dB when the statistics came from a frame 1.6 s
away instead (docs/render.md, "Paste-back"): the gain was the answer showing through.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import media
from ..audio.clips import load_clip
from ..audio.features import FPS, SAMPLE_RATE
from ..audio.inference import predict
from ..audio.mouth import LIPS, aperture, avatar_mouth, mouth_deltas
from ..errors import DhliveError
from ..formats import META_FILE, load_avatar, write_json
from ..infer import AvatarPipeline, InferConfig, load_models
from . import metrics as M
from .faces import FaceTrack
from .plots import aperture_plot, mouth_strip, save_series, spread
from .video import MOUTH_SIZE, STRIP_FRAMES, mean_rows, motion_row

FACE_SIZE = 256  # px of the face crops for PSNR/SSIM
MAX_LAG = 5  # frames searched either way for the best generated-vs-real lag
MIN_HELD_OUT = 10  # frames
DRIVES = ("audio", "real")
SCORED_COLOUR_MATCH = "edge"  # the frame pasted into is the one scored: take its colour at the edge only


def selfreenact(avatar_dir, *, holdout: float = 0.2, drive: str = "audio", audio_model=None, renderer=None,
                cfg: InferConfig | None = None, out_dir=None, save_video: bool = False, face_model=None,
                progress: bool = True) -> dict:
    """Score the pipeline on an avatar's held-out tail. Writes NAME.json, NAME_aperture.png,
    NAME_mouths.png (and NAME.mp4, real | generated, with save_video) into out_dir when given."""
    from tqdm import tqdm

    start = time.perf_counter()
    if drive not in DRIVES:
        raise DhliveError(f"drive must be one of {DRIVES}, not {drive!r}")
    if not 0 < holdout < 1:
        raise DhliveError(f"--holdout must be between 0 and 1, not {holdout}")
    clip = load_clip(avatar_dir, with_images=False)
    cfg = cfg or InferConfig(colour_match=SCORED_COLOUR_MATCH)
    model, basis, renderer_path = load_models(audio_model, renderer)
    avatar = load_avatar(avatar_dir, check_images=False)
    n = avatar.n_frames
    k = int(round(holdout * n))
    if k < MIN_HELD_OUT or n - k < 1:
        raise DhliveError(f"{avatar_dir}: {n} frames; holding out {holdout:.0%} leaves {k} to score "
                          f"(at least {MIN_HELD_OUT} needed) and {n - k} to take references from")
    held = np.arange(n - k, n)
    source_index = np.asarray(avatar.meta.get("source_index", range(n)), np.int64)[held]
    timeline = max(clip.n_timeline, int(source_index.max()) + 1)

    pipe = AvatarPipeline(avatar_dir, renderer_path, basis, cfg, reference_frames=range(n - k))
    try:
        if drive == "audio":
            coeffs = predict(model, clip.audio)
            coeffs = np.concatenate([coeffs, np.repeat(coeffs[-1:], max(0, timeline - len(coeffs)), 0)])[source_index]
        else:
            lips, images, _ = avatar_mouth(pipe.avatar)
            lips, images = lips[held], images[held]
            coeffs = basis.encode(*mouth_deltas(lips, images, pipe.rest))
        prompt_ap = aperture(basis.decode(coeffs, pipe.rest)[0])

        scores = {key: [] for key in ("mouth_psnr", "mouth_ssim", "face_psnr", "face_ssim")}
        sharp_gen, sharp_real, strip = [], [], {}
        picks = set(spread(range(k), STRIP_FRAMES))
        writer = None
        if save_video and out_dir is not None:
            w, h = pipe.avatar.source_size
            a0, a1 = int(source_index[0] * SAMPLE_RATE / FPS), int((source_index[-1] + 1) * SAMPLE_RATE / FPS)
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            writer = media.Mp4Writer(Path(out_dir) / f"{pipe.avatar.root.name}.mp4", FPS, 2 * w, h,
                                     audio=clip.audio[a0:a1])
        try:
            with FaceTrack(FPS, face_model) as gen_track, FaceTrack(FPS, face_model) as real_track:
                bar = tqdm(total=k, desc=f"selfreenact {pipe.avatar.root.name}", unit="frame", disable=not progress, leave=False)
                batch = cfg.batch
                for b0 in range(0, k, batch):
                    ids = range(b0, min(k, b0 + batch))
                    items = [pipe.prepare(int(held[j]), coeffs[j]) for j in ids]
                    for j, item, g in zip(ids, items, pipe.render(items)):
                        gen = pipe.paste(item, g)
                        real = np.asarray(pipe.source[item["i"]])
                        gen_track.add(gen)
                        lm_r = real_track.add(real)
                        if writer is not None:
                            writer.write(np.concatenate([real, gen], 1))
                        if lm_r is not None:
                            _score_frame(gen, real, lm_r, scores, sharp_gen, sharp_real, strip if j in picks else None, j)
                        bar.update(1)
                bar.close()
                gen_lms, real_lms = gen_track.array(), real_track.array()
            if writer is not None:
                writer.close()
                writer = None
        finally:
            if writer is not None:
                writer.abort()
    finally:
        pipe.close()

    gen_ap, real_ap = aperture(gen_lms), aperture(real_lms)
    both = np.isfinite(gen_ap) & np.isfinite(real_ap)
    if both.sum() < MIN_HELD_OUT:
        raise DhliveError(f"{avatar_dir}: a face was found in only {int(both.sum())} of the {k} held-out frame pairs")
    g, r = _fill(gen_ap), _fill(real_ap)
    lag, r_lag = M.best_lag(g, r, MAX_LAG)
    speech_all = M.voice_activity(clip.audio, timeline, FPS)
    envelope_all = M.speech_envelope(clip.audio, timeline, FPS)
    speech, envelope = speech_all[source_index], envelope_all[source_index]
    real_level = M.open_level(real_ap)
    report = {
        "name": pipe.avatar.root.name, "avatar": str(avatar_dir), "drive": drive, "held_out_frames": k,
        "audio_model": str(audio_model or "default"), "renderer": str(renderer_path),
        "aperture_r": M.pearson(gen_ap[both], real_ap[both]),
        "articulation": M.articulation_ratio(gen_ap[both], real_ap[both]),
        "best_lag": lag, "aperture_r_at_best_lag": r_lag,
        "prompt_aperture_r": M.pearson(prompt_ap[both], real_ap[both]),
        "lip_distance": float(np.nanmean(M.lip_distance(gen_lms, real_lms, LIPS))),
        **{key: float(np.mean(v)) if v else None for key, v in scores.items()},
        "sharpness_ratio": float(np.mean(sharp_gen) / max(np.mean(sharp_real), 1e-9)) if sharp_real else None,
        "generated": motion_row(gen_lms, speech, envelope, real_level, np.asarray(sharp_gen)),
        "real": motion_row(real_lms, speech, envelope, real_level, np.asarray(sharp_real)),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / f"{report['name']}.json", report)
        aperture_plot(out / f"{report['name']}_aperture.png", {"real": real_ap, "generated": gen_ap}, speech, FPS,
                      real_level, title=f"{report['name']}: held-out {k} frames driven by {drive}; "
                                        f"r {report['aperture_r']:.2f}; grey = silence")
        save_series(out / f"{report['name']}_series.npz", frame=held, aperture_real=real_ap, aperture_generated=gen_ap,
                    aperture_prompt=prompt_ap, speech=speech)
        order = sorted(strip)
        mouth_strip(out / f"{report['name']}_mouths.png",
                    {"real": [strip[j][0] for j in order], "generated": [strip[j][1] for j in order]})
    return report


def _fill(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    return np.where(ok, x, np.nanmean(x)) if ok.any() else np.zeros_like(x)


def _score_frame(gen, real, lm, scores, sharp_gen, sharp_real, strip, j):
    mouth, face = M.mouth_square(lm, LIPS), M.face_square(lm)
    mg, mr = M.crop_square(gen, mouth, MOUTH_SIZE), M.crop_square(real, mouth, MOUTH_SIZE)
    fg, fr = M.crop_square(gen, face, FACE_SIZE), M.crop_square(real, face, FACE_SIZE)
    scores["mouth_psnr"].append(M.psnr(mg, mr))
    scores["mouth_ssim"].append(M.ssim(mg, mr))
    scores["face_psnr"].append(M.psnr(fg, fr))
    scores["face_ssim"].append(M.ssim(fg, fr))
    sharp_gen.append(M.sharpness(mg))
    sharp_real.append(M.sharpness(mr))
    if strip is not None:
        strip[j] = (mr, mg)


SUMMARY_KEYS = ("aperture_r", "articulation", "best_lag", "aperture_r_at_best_lag", "prompt_aperture_r", "lip_distance",
                "mouth_psnr", "mouth_ssim", "face_psnr", "face_ssim", "sharpness_ratio")


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
    reports = [selfreenact(a, out_dir=out_dir, progress=progress, **kw)
               for a in tqdm(avatars, desc="avatars", unit="avatar", disable=not progress or len(avatars) < 2)]
    rows = ("generated", "real")
    summary = {"mode": "selfreenact", "clips": reports, "mean": mean_rows(reports, rows, SUMMARY_KEYS),
               "median": mean_rows(reports, rows, SUMMARY_KEYS, np.median)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(out_dir) / "summary.json", summary)
    return summary
