"""The `dhlive` command: parses options, calls one library function, prints the outcome."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import DhliveError


class _Group(click.Group):
    """Turns user-facing errors into one line on stderr and exit status 1 (no traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DhliveError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"error: {where}{e.strerror or e}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dhlive")
def cli():
    """dhlive: talking heads from a video or photo and speech, offline, on a CPU."""


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Avatar name: the folder OUT/NAME is created.")
@click.option("--out", "out_dir", default="avatars", show_default=True, type=click.Path(file_okay=False),
              help="Folder that holds avatars.")
@click.option("--fps", type=float, help="Frame rate of the avatar [default: 25].")
@click.option("--size", type=int, help="Face crop side in pixels [default: 512].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of prepare options (see configs/prepare.yaml).")
@click.option("--face-model", type=click.Path(dir_okay=False),
              help="face_landmarker.task to use [default: $DHLIVE_FACE_MODEL or the cache].")
@click.option("--audio", "audio_path", type=click.Path(dir_okay=False),
              help="Take the speech from this file instead of the video's own sound.")
@click.option("--audio-offset", type=float,
              help="Seconds the sound lags the picture in the input (negative: it leads); the avatar's audio is moved to match.")
@click.option("--force", is_flag=True, help="Replace an existing avatar of that name.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def prepare(input_path, name, out_dir, fps, size, config_path, face_model, audio_path, audio_offset, force, quiet):
    """Turn a talking-head video (or one photo) INPUT into an avatar folder."""
    from .config import load_config
    from .data.prepare import PrepareConfig
    from .data.prepare import prepare as run

    cfg = load_config(config_path, PrepareConfig, fps=fps, size=size, face_model=face_model, audio=audio_path,
                      audio_offset=audio_offset)
    if cfg.fps <= 0 or cfg.size < 32:
        raise DhliveError("--fps must be > 0 and --size at least 32")
    res = run(input_path, name, out_dir, cfg, force=force, progress=not quiet)
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{res.path}: {res.n_frames} frames ({res.n_frames / cfg.fps:.1f} s) from {res.n_source_frames} "
               f"in {res.seconds:.1f} s ({res.n_source_frames / max(res.seconds, 1e-9):.1f} frames/s)")


@cli.command()
@click.argument("avatar", type=click.Path(file_okay=False))
def inspect(avatar):
    """Validate an avatar folder and summarise it."""
    from .formats import load_avatar

    a = load_avatar(avatar)
    m = a.meta
    yaw, pitch, roll = a.euler.mean(0)
    click.echo(f"{a.root}: valid dhlive avatar v{m['version']}")
    click.echo(f"  frames {a.n_frames} at {a.fps:g} fps ({a.n_frames / a.fps:.1f} s), crops {a.crop_size}px, "
               f"source {m['source']['kind']} {m['source']['size'][0]}x{m['source']['size'][1]}")
    click.echo(f"  audio {'yes' if a.audio_path else 'no'}; mean pose yaw {yaw:.1f} pitch {pitch:.1f} roll {roll:.1f} deg")
    for r in m.get("rejected", []):
        click.echo(f"  dropped ({r['reason']}): {len(r['frames'])} run(s)")


@cli.command()
@click.option("--face-model", type=click.Path(dir_okay=False), help="Use and verify this file instead.")
def provision(face_model):
    """Fetch and verify the face model (done by scripts/install.sh; runs offline afterwards)."""
    from .data.landmarks import face_model_path

    click.echo(face_model_path(face_model))


@cli.command("distill-audio")
@click.option("--avatars", "avatars", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Training avatars with audio (several may follow one --avatars).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the model, PCA, logs.")
@click.option("--eval-avatars", multiple=True, type=click.Path(file_okay=False),
              help="Held-out avatars evaluated at the end (never trained on; none may share a recording with a training avatar).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of training options (see configs/audio.yaml).")
@click.option("--steps", type=int, help="Training steps [default: 2000].")
@click.option("--seed", type=int, help="Random seed [default: 0].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/train_state.pt.")
@click.option("--stop-at", type=int, help="Stop after this step, resumable (runs in time slices).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def distill_audio(avatars, out, eval_avatars, config_path, steps, seed, device, resume, stop_at, quiet):
    """Train the audio model (speech -> mouth) on prepared avatars that have sound."""
    from .config import load_config
    from .train.audio import DistillConfig, distill

    cfg = load_config(config_path, DistillConfig, steps=steps, seed=seed)
    if cfg.steps < 1 or cfg.batch < 1:
        raise DhliveError("--steps and batch must be at least 1")
    res = distill(list(avatars), out, cfg, eval_avatars=list(eval_avatars), resume=resume, device=device,
                  progress=not quiet, stop_at=stop_at)
    if res.get("stopped"):
        click.echo(f"{res['out']}: stopped at step {res['steps']} of {cfg.steps}; continue with --resume")
        return
    click.echo(f"{res['out']}: audio model trained for {res['steps']} steps in {res['seconds']:.0f} s")
    if "eval" in res:
        e = res["eval"]
        click.echo(f"held-out: aperture r {e['aperture_r']:.3f}, articulation {e['articulation']:.2f}, "
                   f"best lag {e['best_lag']:+.1f} frames (details in {out}/eval.json)")


@cli.command("eval-audio")
@click.argument("avatars", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Folder written by distill-audio (audio_model.pt + pca.pkl).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report here.")
def eval_audio(avatars, model_dir, json_path):
    """Score an audio model on avatars with audio: mouth aperture vs the real video."""
    from .audio.clips import load_clip
    from .audio.evaluate import evaluate_clips
    from .formats import write_json
    from .audio.inference import load_audio_model

    model, basis = load_audio_model(model_dir)
    report = evaluate_clips(model, basis, [load_clip(a) for a in avatars])
    for r in report["clips"]:
        click.echo(f"{r['clip']}: aperture r {r['aperture_r']:.3f}, articulation {r['articulation']:.2f}, "
                   f"best lag {r['best_lag']:+d} (r {r['aperture_r_at_best_lag']:.3f})")
    m = report["mean"]
    click.echo(f"mean over {len(report['clips'])}: aperture r {m['aperture_r']:.3f}, articulation {m['articulation']:.2f}")
    if json_path:
        write_json(json_path, report)


@cli.command("train-render")
@click.option("--avatars", "avatars", multiple=True, required=True, type=click.Path(),
              help="Avatar folders (or render packs, .npz) to train on (several may follow one --avatars).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the model, logs, samples.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of training options (see configs/render_fast.yaml).")
@click.option("--stage", type=click.Choice(["frame", "clip"]), help="frame: per-frame losses; clip: adds the temporal discriminator.")
@click.option("--init", "init", type=click.Path(dir_okay=False), help="Start from this render_model.pt (per-avatar fine-tune).")
@click.option("--mouth", type=click.Path(dir_okay=False),
              help="Mouth PCA (pca.pkl) of the audio model that will drive the renderer [default: with --init, "
                   "checkpoints/audio/pca.pkl; else fit one].")
@click.option("--holdout", type=float, help="Last fraction of each avatar's frames held out and scored [default: 0.2 with --init, else 0].")
@click.option("--steps", type=int, help="Training steps.")
@click.option("--batch", type=int, help="Frames per step.")
@click.option("--seed", type=int, help="Random seed [default: 0].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/train_state.pt.")
@click.option("--stop-at", type=int, help="Stop after this step, resumable (runs in time slices).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_render(avatars, out, config_path, stage, init, mouth, holdout, steps, batch, seed, device, resume, stop_at, quiet):
    """Train the renderer (mouth prompt -> lower face) on prepared avatars, or fine-tune one with --init."""
    from .config import load_config
    from .train.render import TrainRenderConfig, train_render as run

    if holdout is None and init:
        holdout = 0.2
    if mouth is None and init:  # a fine-tune learns the prompts the shipped audio model will send it
        from .formats import MOUTH_PCA_FILE, SHIPPED_AUDIO_MODEL

        shipped = SHIPPED_AUDIO_MODEL / MOUTH_PCA_FILE
        mouth = str(shipped) if shipped.is_file() else None
    cfg = load_config(config_path, TrainRenderConfig, stage=stage, holdout=holdout, steps=steps, batch=batch, seed=seed)
    res = run(list(avatars), out, cfg, init=init, mouth=mouth, resume=resume, device=device, progress=not quiet,
              stop_at=stop_at)
    if res.get("stopped"):
        click.echo(f"{res['out']}: stopped at step {res['steps']} of {cfg.steps}; continue with --resume")
        return
    click.echo(f"{res['out']}: renderer trained for {res['steps']} steps in {res['seconds']:.0f} s")
    if "eval" in res:
        e = res["eval"]
        click.echo(f"held-out frames: mouth PSNR {e['mouth_psnr']:.2f} dB, mouth SSIM {e['mouth_ssim']:.3f}, "
                   f"lower-face SSIM {e['face_ssim']:.3f} (details in {out}/eval.json, eval_strip.png)")


def _infer_options(f):
    f = click.option("--audio-model", type=click.Path(file_okay=False),
                     help="Audio model folder [default: checkpoints/audio; stream: checkpoints/audio_live].")(f)
    f = click.option("--renderer", type=click.Path(dir_okay=False), help="Renderer checkpoint [default: checkpoints/render_fast.pt].")(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)(f)
    f = click.option("--batch", type=int, default=8, show_default=True, help="Frames rendered together (x4 on CUDA).")(f)
    f = click.option("--colour-match", type=click.Choice(["skin", "edge", "off"]),
                     help="Before pasting: skin: the skin outside the mouth takes the frame's colour and smoothness; "
                          "edge: the colour only, where they meet; off: as drawn [default: skin; eval selfreenact: edge].")(f)
    return f


@cli.command()
@click.option("--audio", "audio_path", required=True, type=click.Path(dir_okay=False), help="Speech, any format.")
@click.option("--avatar", required=True, type=click.Path(file_okay=False), help="Avatar folder from `dhlive prepare`.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The mp4 to write.")
@_infer_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def infer(audio_path, avatar, out, audio_model, renderer, device, batch, colour_match, quiet):
    """Make AVATAR say AUDIO: a lip-synced H.264 + AAC mp4 at the avatar's resolution."""
    from .infer import InferConfig, infer as run

    if batch < 1:
        raise DhliveError("--batch must be at least 1")
    res = run(audio_path, avatar, out, audio_model=audio_model, renderer=renderer, progress=not quiet,
              cfg=InferConfig(batch=batch, device=device, colour_match=colour_match or InferConfig.colour_match))
    click.echo(f"{res['out']}: {res['frames']} frames ({res['audio_seconds']:.1f} s of audio) in {res['seconds']:.1f} s, "
               f"{res['fps']:.1f} frames/s on {res['device']} (real-time factor {res['real_time_factor']:.2f})")


@cli.command()
@click.option("--audio", "audio_path", required=True, help="Speech file, or - for raw PCM on stdin (s16le, mono, 16 kHz).")
@click.option("--avatar", required=True, type=click.Path(file_okay=False), help="Avatar folder from `dhlive prepare`.")
@click.option("--out", help="An mp4 to write; without it raw rgb24 frames go to stdout.")
@_infer_options
@click.option("--realtime", is_flag=True, help="Read a file at the pace of speech, as a live source would arrive.")
def stream(audio_path, avatar, out, audio_model, renderer, device, batch, colour_match, realtime):
    """Render AVATAR while the audio arrives in 40 ms chunks; prints the latency at the end."""
    from .infer import InferConfig, stream as run

    def announce(w, h):
        if out is None:
            click.echo(f"raw rgb24 frames, {w}x{h}, 25 fps, on stdout", err=True)

    res = run(audio_path, avatar, out if out else sys.stdout.buffer, audio_model=audio_model, renderer=renderer,
              cfg=InferConfig(batch=batch, device=device, colour_match=colour_match or InferConfig.colour_match), realtime=realtime,
              stdin=sys.stdin.buffer, on_start=announce)
    lat = res["latency_ms"]
    click.echo(f"{res['out']}: {res['frames']} frames; latency from a chunk's arrival to its frame: mean {lat.get('mean', 0):.0f} ms, "
               f"p95 {lat.get('p95', 0):.0f} ms, max {lat.get('max', 0):.0f} ms (look-ahead {res['lookahead_ms']} ms"
               f"{', paced in real time' if res['realtime'] else ''})", err=out is None)


@cli.command()
@click.option("--out", default="demo.mp4", show_default=True, type=click.Path(dir_okay=False), help="The mp4 to write.")
@click.option("--text", help="What the astronaut says (espeak-ng, English).")
@click.option("--work", type=click.Path(file_okay=False), help="Where the demo avatar and speech are kept [default: the dhlive cache].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out, text, work, device, quiet):
    """Make a talking-head video from scikit-image's astronaut photo and synthetic speech, offline."""
    from .demo import DEMO_TEXT, demo as run

    res = run(out, text=text or DEMO_TEXT, work=work, device=device, progress=not quiet)
    click.echo(f"{res['out']}: {res['frames']} frames ({res['audio_seconds']:.1f} s) made in {res['total_seconds']:.1f} s "
               f"({res['fps']:.1f} frames/s on {res['device']}). Play it with any video player.")


@cli.group("eval")
def eval_group():
    """Measure quality without pretrained judges: JSON reports and plots (see docs/eval.md)."""


@eval_group.command("selfreenact")
@click.option("--avatar", "avatars", multiple=True, required=True, type=click.Path(),
              help="Avatar folders with audio, or folders of them (several may follow one --avatar).")
@click.option("--out", default="eval", show_default=True, type=click.Path(file_okay=False), help="Folder for the reports.")
@click.option("--holdout", default=0.2, show_default=True, type=float, help="Last share of each avatar's frames that is scored.")
@click.option("--drive", type=click.Choice(["audio", "real"]), default="audio", show_default=True,
              help="audio: the audio model drives the mouth; real: the real mouth through the PCA (renderer only).")
@_infer_options
@click.option("--save-video", is_flag=True, help="Also write NAME.mp4: real | generated, side by side, with the audio.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_selfreenact(avatars, out, holdout, drive, audio_model, renderer, device, batch, colour_match, save_video, quiet):
    """Drive the held-out tail of real clips with their own audio and compare with the real frames."""
    from .eval.selfreenact import SCORED_COLOUR_MATCH, SUMMARY_KEYS, selfreenact_all
    from .infer import InferConfig

    if batch < 1:
        raise DhliveError("--batch must be at least 1")
    res = selfreenact_all(avatars, out, holdout=holdout, drive=drive, audio_model=audio_model, renderer=renderer,
                          cfg=InferConfig(batch=batch, device=device, colour_match=colour_match or SCORED_COLOUR_MATCH),
                          save_video=save_video, progress=not quiet)
    for r in res["clips"]:
        click.echo(f"{r['name']}: aperture r {r['aperture_r']:.3f}, articulation {r['articulation']:.2f}, lag {r['best_lag']:+d}, "
                   f"lip distance {r['lip_distance']:.3f}, mouth PSNR {r['mouth_psnr']:.2f} dB / SSIM {r['mouth_ssim']:.3f}, "
                   f"face SSIM {r['face_ssim']:.3f}, sharpness x{r['sharpness_ratio']:.2f}")
    m = res["mean"]
    click.echo(f"mean over {len(res['clips'])}: " + ", ".join(f"{k} {m[k]:.3f}" for k in SUMMARY_KEYS if m.get(k) is not None))
    click.echo(f"reports and plots in {out}/ (summary.json)")


@eval_group.command("video")
@click.option("--video", "videos", multiple=True, required=True, type=click.Path(),
              help="Generated videos, or folders of them (several may follow one --video).")
@click.option("--audio", type=click.Path(), help="The speech they say [default: each video's own track]; a folder: NAME.* per video.")
@click.option("--reference", type=click.Path(),
              help="The source video (or avatar folder) they were made from: the anchor row and the seam; a folder: NAME.* per video.")
@click.option("--out", default="eval", show_default=True, type=click.Path(file_okay=False), help="Folder for the reports.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_video(videos, audio, reference, out, quiet):
    """Score any talking-head video: silence leak, audio-video offset, jitter, seam, sharpness."""
    from .eval.metrics import SKIN_TINT_MEANING
    from .eval.video import evaluate_videos

    res = evaluate_videos(videos, out, audio=audio, reference=reference, progress=not quiet)
    for r in res["videos"]:
        for label, row in (("", r["generated"]), (" (reference)", r.get("reference_row"))):
            if not row:
                continue
            leak = row.get("silence_leak")
            parts = [f"face {row['face_found']:.0%}"]
            if "av_offset_ms" in row:  # rows scored against audio
                parts += [f"silence leak {leak:.1%}" if leak is not None and leak == leak else "silence leak n/a (no long pause)",
                          f"offset {row['av_offset_ms']:+.0f} ms (r {row['av_sync_r']:.2f})"]
            if "jitter" in row:
                parts += [f"jitter {row['jitter']:.4f}"]
            click.echo(f"{r['name']}{label}: " + ", ".join(parts))
        seam = r.get("seam") or {}
        if "colour_step_generated" in seam:
            click.echo(f"{r['name']}: seam colour step {seam['colour_step_generated']:.2f} (reference {seam['colour_step_reference']:.2f}), "
                       f"gradient {seam['gradient_generated']:.2f} (reference {seam['gradient_reference']:.2f})")
        if "skin_tint" in seam:
            click.echo(f"{r['name']}: skin tint {seam['skin_tint']:.2f} ({SKIN_TINT_MEANING})")
        if "sharpness_ratio" in r:
            click.echo(f"{r['name']}: mouth sharpness x{r['sharpness_ratio']:.2f} of the reference")
        for note in r.get("notes", []):
            click.echo(f"note: {r['name']}: {note}", err=True)
    click.echo(f"reports and plots in {out}/ (summary.json)")


# options that take several values: `--avatars a b c` is read as `--avatars a --avatars b ...`
_MULTI_VALUE = ("--avatars", "--eval-avatars")
_MULTI_VALUE_EVAL = ("--avatar", "--video")  # several under `dhlive eval`, one everywhere else


def _spread_multi_values(argv: list[str]) -> list[str]:
    out, current = [], None
    multi = _MULTI_VALUE + (_MULTI_VALUE_EVAL if argv[:1] == ["eval"] else ())
    for tok in argv:
        if tok in multi:
            current = tok
            out.append(tok)
        elif current and not tok.startswith("-") and out[-1] != current:
            out += [current, tok]
        else:
            if tok.startswith("-"):
                current = None
            out.append(tok)
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    cli.main(args=_spread_multi_values(argv), prog_name="dhlive")


if __name__ == "__main__":
    sys.exit(main())
