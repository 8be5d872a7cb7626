"""The `dhlive` command: parses options, calls one library function, prints the outcome."""

from __future__ import annotations

import signal
import sys
import threading

import click

from . import __version__
from .errors import DhliveError, Terminated

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # as a shell reports SIGINT and SIGTERM


class _Group(click.Group):
    """Turns user-facing errors into one line on stderr and exit status 1 (no traceback);
    Ctrl-C and SIGTERM into one line and 130 or 143."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Terminated:
            click.echo("terminated", err=True)
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
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


def _file(flag: str, text: str, dest: str | None = None):
    """An option that names one file."""
    return click.option(flag, *([dest] if dest else []), type=click.Path(dir_okay=False), help=text)


def _paths(flag: str, dest: str, text: str):
    """An option that takes one or more paths."""
    return click.option(flag, dest, multiple=True, required=True, type=click.Path(), help=text)


_EVAL_OUT = click.option(
    "--out", default="eval", show_default=True, type=click.Path(file_okay=False), help="Folder for the reports."
)


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Avatar name: the folder OUT/NAME is created.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder that holds avatars [default: $DHLIVE_AVATARS or avatars].",
)
@click.option("--fps", type=float, help="Frame rate of the avatar [default: 25].")
@click.option("--size", type=int, help="Face crop side in pixels [default: 512].")
@_file("--config", "YAML file of prepare options (see configs/prepare.yaml).", "config_path")
@_file("--face-model", "face_landmarker.task to use [default: $DHLIVE_FACE_MODEL or the cache].")
@_file("--audio", "Take the speech from this file instead of the video's own sound.", "audio_path")
@click.option(
    "--audio-offset",
    type=float,
    help="Seconds the sound lags the picture in the input (negative: it leads); the avatar's audio is moved to match.",
)
@click.option(
    "--finetune/--no-finetune",
    default=True,
    show_default=True,
    help="End with the avatar's own renderer, fine-tuned from the base (--no-finetune: the base alone).",
)
@click.option(
    "--finetune-minutes", "minutes", type=float, default=3.0, show_default=True, help="Time budget of the fine-tune."
)
@click.option(
    "--holdout",
    type=float,
    default=0.0,
    show_default=True,
    help="Last share of the frames kept out of the fine-tune (for eval selfreenact to score).",
)
@click.option("--force", is_flag=True, help="Replace an existing avatar of that name.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def prepare(
    input_path,
    name,
    out_dir,
    fps,
    size,
    config_path,
    face_model,
    audio_path,
    audio_offset,
    finetune,
    minutes,
    holdout,
    force,
    quiet,
):
    """Turn a talking-head video (or one photo) INPUT into an avatar, with its own renderer."""
    from .avatar import make_avatar
    from .config import load_config
    from .data.prepare import PrepareConfig
    from .formats import avatars_dir

    cfg = load_config(
        config_path,
        PrepareConfig,
        fps=fps,
        size=size,
        face_model=face_model,
        audio=audio_path,
        audio_offset=audio_offset,
    )
    res = make_avatar(
        input_path,
        name,
        out_dir or avatars_dir(),
        cfg,
        finetune=finetune,
        minutes=minutes,
        holdout=holdout,
        force=force,
        progress=not quiet,
    )
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    p = res.prepared
    if p is not None:
        click.echo(
            f"{p.path}: {p.n_frames} frames ({p.n_frames / cfg.fps:.1f} s) from {p.n_source_frames} "
            f"in {p.seconds:.1f} s ({p.n_source_frames / max(p.seconds, 1e-9):.1f} frames/s)"
        )
    if res.finetune is not None:
        _echo_finetune(res.path, res.finetune)


def _echo_finetune(avatar, res: dict) -> None:
    ev = res.get("eval")
    scored = f"; held-out mouth PSNR {ev['mouth_psnr']:.2f} dB, SSIM {ev['mouth_ssim']:.3f}" if ev else ""
    click.echo(f"{avatar}: its own renderer, fine-tuned for {res['steps']} steps in {res['seconds']:.0f} s{scored}")


@cli.command()
@click.argument("avatar")
@click.option("--minutes", type=float, default=3.0, show_default=True, help="Time budget of the fine-tune.")
@click.option(
    "--holdout",
    type=float,
    default=0.0,
    show_default=True,
    help="Last share of the frames kept out of the fine-tune (for eval selfreenact to score).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def finetune(avatar, minutes, holdout, quiet):
    """Give AVATAR its own renderer (fine-tuned from the base), or finish an interrupted fine-tune."""
    from .train.finetune import finetune_avatar

    res = finetune_avatar(avatar, minutes=minutes, holdout=holdout, progress=not quiet)
    _echo_finetune(avatar, res)


@cli.command()
@click.argument("avatar")
def inspect(avatar):
    """Validate an avatar folder (every file infer and training read) and summarise it."""
    from .data.verify import verify_avatar

    a = verify_avatar(avatar, progress=sys.stderr.isatty())
    m = a.meta
    yaw, pitch, roll = a.euler.mean(0)
    click.echo(f"{a.root}: valid dhlive avatar v{m['version']}")
    click.echo(
        f"  frames {a.n_frames} at {a.fps:g} fps ({a.n_frames / a.fps:.1f} s), crops {a.crop_size}px, "
        f"source {m['source']['kind']} {m['source']['size'][0]}x{m['source']['size'][1]}"
    )
    click.echo(
        f"  audio {'yes' if a.audio_path else 'no'}; mean pose yaw {yaw:.1f} pitch {pitch:.1f} roll {roll:.1f} deg"
    )
    for r in m.get("rejected", []):
        click.echo(f"  dropped ({r['reason']}): {len(r['frames'])} run(s)")


@cli.command()
@click.option("--face-model", type=click.Path(dir_okay=False), help="Use and verify this file instead.")
def provision(face_model):
    """Fetch and verify the face model (done by scripts/install.sh; runs offline afterwards)."""
    from .data.landmarks import face_model_path

    click.echo(face_model_path(face_model))


def _training_options(f):
    """The options both trainers take: how long, from which seed, where, and in slices."""
    f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
    f = click.option("--stop-at", type=int, help="Stop after this step, resumable (runs in time slices).")(f)
    f = click.option(
        "--resume",
        is_flag=True,
        help="Continue from OUT/train_state.pt; refused when the config or the training avatars differ from the "
        "run it continues (only --steps may grow).",
    )(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)(f)
    f = click.option("--seed", type=int, help="Random seed [default: 0].")(f)
    return click.option("--steps", type=int, help="Training steps [default: from the config].")(f)


def _run(device: str, resume: bool, stop_at: int | None, quiet: bool) -> dict:
    """The trainers' keyword arguments for where and how far a run goes."""
    return {"device": device, "resume": resume, "stop_at": stop_at, "progress": not quiet}


def _trained(res: dict, total_steps: int, what: str) -> bool:
    """Print how a training run ended; True when it finished (False: stopped, resumable)."""
    for note in res.get("notes", []):
        click.echo(f"note: {note}", err=True)
    if res.get("stopped"):
        click.echo(f"{res['out']}: stopped at step {res['steps']} of {total_steps}; continue with --resume")
        return False
    click.echo(f"{res['out']}: {what} trained for {res['steps']} steps in {res['seconds']:.0f} s")
    return True


@cli.command("distill-audio")
@_paths("--avatars", "avatars", "Training avatars with audio (several may follow one --avatars).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the model, PCA, logs.")
@click.option(
    "--eval-avatars",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Held-out avatars evaluated at the end (never trained on; none may share a recording with a training avatar).",
)
@_file("--config", "YAML file of training options (see configs/audio.yaml).", "config_path")
@_file(
    "--mouth",
    "Mouth PCA (pca.pkl) whose coefficients the model learns to predict, e.g. the one the "
    "renderer was trained on [default: fit one on the training avatars].",
)
@_training_options
def distill_audio(avatars, out, eval_avatars, config_path, mouth, steps, seed, device, resume, stop_at, quiet):
    """Train the audio model (speech -> mouth) on prepared avatars that have sound."""
    from .config import load_config
    from .train.audio import DistillConfig, distill

    cfg = load_config(config_path, DistillConfig, steps=steps, seed=seed)
    res = distill(
        list(avatars), out, cfg, eval_avatars=list(eval_avatars), mouth=mouth, **_run(device, resume, stop_at, quiet)
    )
    if _trained(res, cfg.steps, "audio model") and "eval" in res:
        e = res["eval"]
        click.echo(
            f"held-out: aperture r {e['aperture_r']:.3f}, articulation {e['articulation']:.2f}, "
            f"best lag {e['best_lag']:+.1f} frames (details in {out}/eval.json)"
        )


@cli.command("eval-audio")
@click.argument("avatars", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder written by distill-audio (audio_model.pt + pca.pkl).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report here.")
def eval_audio(avatars, model_dir, json_path):
    """Score an audio model on avatars with audio: mouth aperture vs the real video."""
    from .audio.clips import load_clip
    from .audio.evaluate import evaluate_clips
    from .audio.inference import load_audio_model
    from .formats import write_json

    model, basis = load_audio_model(model_dir)
    report = evaluate_clips(model, basis, [load_clip(a) for a in avatars])
    for r in report["clips"]:
        click.echo(
            f"{r['clip']}: aperture r {r['aperture_r']:.3f}, articulation {r['articulation']:.2f}, "
            f"best lag {r['best_lag']:+d} (r {r['aperture_r_at_best_lag']:.3f})"
        )
    m = report["mean"]
    click.echo(
        f"mean over {len(report['clips'])}: aperture r {m['aperture_r']:.3f}, articulation {m['articulation']:.2f}"
    )
    if json_path:
        write_json(json_path, report)


@cli.command("train-render")
@_paths(
    "--avatars", "avatars", "Avatar folders (or render packs, .npz) to train on (several may follow one --avatars)."
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the model, logs, samples.")
@_file("--config", "YAML file of training options (see configs/render_fast.yaml).", "config_path")
@click.option(
    "--stage",
    type=click.Choice(["frame", "clip"]),
    help="frame: per-frame losses; clip: adds the temporal discriminator.",
)
@click.option(
    "--init", "init", type=click.Path(dir_okay=False), help="Start from this render_model.pt (per-avatar fine-tune)."
)
@_file(
    "--mouth",
    "Mouth PCA (pca.pkl) of the audio model that will drive the renderer "
    "[default: with --init, checkpoints/audio/pca.pkl; else fit one].",
)
@click.option(
    "--holdout",
    type=float,
    help="Last fraction of each avatar's frames held out and scored [default: 0.2 with --init, else 0].",
)
@click.option("--batch", type=int, help="Frames per step.")
@_training_options
def train_render(
    avatars, out, config_path, stage, init, mouth, holdout, steps, batch, seed, device, resume, stop_at, quiet
):
    """Train the renderer (mouth prompt -> lower face) on prepared avatars, or fine-tune one with --init."""
    from .config import load_config
    from .train.render import TrainRenderConfig
    from .train.render import train_render as run

    if holdout is None and init:
        holdout = 0.2
    if mouth is None and init:  # a fine-tune learns the prompts the shipped audio model will send it
        from .formats import MOUTH_PCA_FILE, SHIPPED_AUDIO_MODEL

        shipped = SHIPPED_AUDIO_MODEL / MOUTH_PCA_FILE
        mouth = str(shipped) if shipped.is_file() else None
    cfg = load_config(config_path, TrainRenderConfig, stage=stage, holdout=holdout, steps=steps, batch=batch, seed=seed)
    res = run(list(avatars), out, cfg, init=init, mouth=mouth, **_run(device, resume, stop_at, quiet))
    if _trained(res, cfg.steps, "renderer") and "eval" in res:
        e = res["eval"]
        click.echo(
            f"held-out frames: mouth PSNR {e['mouth_psnr']:.2f} dB, mouth SSIM {e['mouth_ssim']:.3f}, "
            f"lower-face SSIM {e['face_ssim']:.3f} (details in {out}/eval.json, eval_strip.png)"
        )


def _infer_config(batch, device, precision, backend, colour_match):
    """The frame pipeline's settings from the options _infer_options adds."""
    from .infer import InferConfig

    colour_match = colour_match or InferConfig.colour_match
    return InferConfig(batch=batch, device=device, precision=precision, backend=backend, colour_match=colour_match)


def _infer_options(f):
    f = click.option(
        "--audio-model",
        type=click.Path(file_okay=False),
        help="Audio model folder [default: checkpoints/audio; stream: checkpoints/audio_live].",
    )(f)
    f = click.option(
        "--renderer", type=click.Path(dir_okay=False), help="Renderer checkpoint [default: checkpoints/render_fast.pt]."
    )(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)(f)
    f = click.option("--batch", type=int, default=8, show_default=True, help="Frames rendered together (x4 on CUDA).")(
        f
    )
    f = click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "bf16"]),
        default="auto",
        show_default=True,
        help="The renderer's arithmetic; auto: bf16 on a GPU or a CPU with native bf16 (AVX-512 BF16, AMX), else fp32.",
    )(f)
    f = click.option(
        "--backend",
        type=click.Choice(["auto", "torch", "openvino"]),
        default="auto",
        show_default=True,
        help="What runs the renderer; auto: OpenVINO on a CPU when it is installed, else PyTorch.",
    )(f)
    f = click.option(
        "--colour-match",
        type=click.Choice(["skin", "edge", "off"]),
        help="Before pasting: skin: the skin outside the mouth takes the frame's colour and smoothness; "
        "edge: the colour only, where they meet; off: as drawn [default: skin; eval selfreenact: edge].",
    )(f)
    return f


@cli.command()
@click.option("--audio", "audio_path", required=True, type=click.Path(dir_okay=False), help="Speech, any format.")
@click.option("--avatar", required=True, help="Avatar: a name in ./avatars ($DHLIVE_AVATARS), or a folder's path.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The mp4 to write.")
@_infer_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def infer(audio_path, avatar, out, audio_model, renderer, device, batch, precision, backend, colour_match, quiet):
    """Make AVATAR say AUDIO: a lip-synced H.264 + AAC mp4 at the avatar's resolution."""
    from .infer import infer as run

    res = run(
        audio_path,
        avatar,
        out,
        audio_model=audio_model,
        renderer=renderer,
        progress=not quiet,
        cfg=_infer_config(batch, device, precision, backend, colour_match),
    )
    click.echo(
        f"{res['out']}: {res['frames']} frames ({res['audio_seconds']:.1f} s of audio) in {res['seconds']:.1f} s, "
        f"{res['fps']:.1f} frames/s on {res['device']} ({res['backend']}, {res['precision']}; "
        f"real-time factor {res['real_time_factor']:.2f}), "
        f"renderer: {res['renderer']}"
    )


@cli.command()
@click.option(
    "--audio", "audio_path", required=True, help="Speech file, or - for raw PCM on stdin (s16le, mono, 16 kHz)."
)
@click.option("--avatar", required=True, help="Avatar: a name in ./avatars ($DHLIVE_AVATARS), or a folder's path.")
@click.option("--out", help="An mp4 to write; without it raw rgb24 frames go to stdout.")
@_infer_options
@click.option("--realtime", is_flag=True, help="Read a file at the pace of speech, as a live source would arrive.")
def stream(audio_path, avatar, out, audio_model, renderer, device, batch, precision, backend, colour_match, realtime):
    """Render AVATAR while the audio arrives in 40 ms chunks; prints the latency at the end."""
    from .infer import stream as run

    def announce(w, h):
        if out is None:
            click.echo(f"raw rgb24 frames, {w}x{h}, 25 fps, on stdout", err=True)

    res = run(
        audio_path,
        avatar,
        out if out else sys.stdout.buffer,
        audio_model=audio_model,
        renderer=renderer,
        cfg=_infer_config(batch, device, precision, backend, colour_match),
        realtime=realtime,
        stdin=sys.stdin.buffer,
        on_start=announce,
    )
    lat = res["latency_ms"]
    click.echo(
        f"{res['out']}: {res['frames']} frames; latency from a frame's sound to the frame: "
        f"mean {lat.get('mean', 0):.0f} ms, p95 {lat.get('p95', 0):.0f} ms, max {lat.get('max', 0):.0f} ms "
        f"(look-ahead {res['lookahead_ms']} ms{', paced in real time' if res['realtime'] else ''}; "
        f"{res['repeated_frames']} frames repeated to keep up; renderer: {res['renderer']})",
        err=out is None,
    )
    if res["interrupted"]:
        click.echo(f"interrupted: {res['out']} holds the {res['frames']} frames rendered until then", err=True)
        sys.exit(EXIT_INTERRUPTED)


@cli.command()
@click.option(
    "--avatars",
    "avatars",
    type=click.Path(file_okay=False),
    help="Folder of prepared avatars offered on the page [default: ./avatars, or $DHLIVE_AVATARS].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every network).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--work", type=click.Path(file_okay=False), help="Where video jobs are kept [default: the dhlive cache].")
@click.option("--max-upload-mb", default=50.0, show_default=True, type=float, help="Largest recording accepted.")
@click.option(
    "--max-viewers", default=1, show_default=True, type=int, help="Live viewers served at once (each takes ~2 cores)."
)
@_infer_options
def serve(
    avatars,
    host,
    port,
    work,
    max_upload_mb,
    max_viewers,
    audio_model,
    renderer,
    device,
    batch,
    precision,
    backend,
    colour_match,
):
    """A local web page: talk to an avatar live (microphone or text), or upload a recording for a video."""
    from .serve import ServeConfig
    from .serve import serve as run

    run(
        ServeConfig(host=host, port=port, max_upload_mb=max_upload_mb, max_viewers=max_viewers),
        avatars=avatars,
        work=work,
        audio_model=audio_model,
        renderer=renderer,
        infer_cfg=_infer_config(batch, device, precision, backend, colour_match),
    )


@cli.command()
@click.option("--out", default="demo.mp4", show_default=True, type=click.Path(dir_okay=False), help="The mp4 to write.")
@click.option("--text", help="What the astronaut says (espeak-ng, English).")
@click.option(
    "--work",
    type=click.Path(file_okay=False),
    help="Where the demo avatar and speech are kept [default: the dhlive cache].",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out, text, work, device, quiet):
    """Make a talking-head video from scikit-image's astronaut photo and synthetic speech, offline."""
    from .demo import DEMO_TEXT
    from .demo import demo as run

    res = run(out, text=text or DEMO_TEXT, work=work, device=device, progress=not quiet)
    click.echo(
        f"{res['out']}: {res['frames']} frames ({res['audio_seconds']:.1f} s) made in {res['total_seconds']:.1f} s "
        f"({res['fps']:.1f} frames/s on {res['device']}). Play it with any video player."
    )


@cli.group("eval")
def eval_group():
    """Measure quality without pretrained judges: JSON reports and plots (see docs/eval.md)."""


@eval_group.command("selfreenact")
@_paths("--avatar", "avatars", "Avatar folders with audio, or folders of them (several may follow one --avatar).")
@_EVAL_OUT
@click.option(
    "--holdout", default=0.2, show_default=True, type=float, help="Last share of each avatar's frames that is scored."
)
@click.option(
    "--drive",
    type=click.Choice(["audio", "real"]),
    default="audio",
    show_default=True,
    help="audio: the audio model drives the mouth; real: the real mouth through the PCA (renderer only).",
)
@_infer_options
@click.option("--save-video", is_flag=True, help="Also write NAME.mp4: real | generated, side by side, with the audio.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_selfreenact(
    avatars,
    out,
    holdout,
    drive,
    audio_model,
    renderer,
    device,
    batch,
    precision,
    backend,
    colour_match,
    save_video,
    quiet,
):
    """Drive the held-out tail of real clips with their own audio and compare with the real frames."""
    from .eval.selfreenact import SCORED_COLOUR_MATCH, SUMMARY_KEYS, selfreenact_all

    res = selfreenact_all(
        avatars,
        out,
        holdout=holdout,
        drive=drive,
        audio_model=audio_model,
        renderer=renderer,
        cfg=_infer_config(batch, device, precision, backend, colour_match or SCORED_COLOUR_MATCH),
        save_video=save_video,
        progress=not quiet,
    )
    for r in res["clips"]:
        click.echo(
            f"{r['name']}: aperture r {r['aperture_r']:.3f}, articulation {r['articulation']:.2f}, "
            f"lag {r['best_lag']:+d}, "
            f"lip distance {r['lip_distance']:.3f}, mouth PSNR {r['mouth_psnr']:.2f} dB / SSIM {r['mouth_ssim']:.3f}, "
            f"face SSIM {r['face_ssim']:.3f}, sharpness x{r['sharpness_ratio']:.2f}, "
            f"checkerboard {r['checkerboard']:.4f} (real {r['checkerboard_real']:.4f})"
        )
    m = res["mean"]
    click.echo(
        f"mean over {len(res['clips'])}: " + ", ".join(f"{k} {m[k]:.3f}" for k in SUMMARY_KEYS if m.get(k) is not None)
    )
    click.echo(f"reports and plots in {out}/ (summary.json)")


@eval_group.command("video")
@_paths("--video", "videos", "Generated videos, or folders of them (several may follow one --video).")
@click.option(
    "--audio",
    type=click.Path(),
    help="The speech they say [default: each video's own track]; a folder: NAME.* per video.",
)
@click.option(
    "--reference",
    type=click.Path(),
    help="The source video (or avatar folder) they were made from: the anchor row and the seam; "
    "a folder: NAME.* per video.",
)
@_EVAL_OUT
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_video(videos, audio, reference, out, quiet):
    """Score any talking-head video: silence leak, audio-video offset, jitter, seam, sharpness."""
    from .eval.video import evaluate_videos
    from .metrics import SKIN_TINT_MEANING

    res = evaluate_videos(videos, out, audio=audio, reference=reference, progress=not quiet)
    for r in res["videos"]:
        for label, row in (("", r["generated"]), (" (reference)", r.get("reference_row"))):
            if row:
                click.echo(f"{r['name']}{label}: {_motion_line(row)}")
        seam = r.get("seam") or {}
        if "colour_step_generated" in seam:
            click.echo(
                f"{r['name']}: seam colour step {seam['colour_step_generated']:.2f} "
                f"(reference {seam['colour_step_reference']:.2f}), "
                f"gradient {seam['gradient_generated']:.2f} (reference {seam['gradient_reference']:.2f})"
            )
        if "skin_tint" in seam:
            click.echo(f"{r['name']}: skin tint {seam['skin_tint']:.2f} ({SKIN_TINT_MEANING})")
        if "sharpness_ratio" in r:
            click.echo(f"{r['name']}: mouth sharpness x{r['sharpness_ratio']:.2f} of the reference")
        for note in r.get("notes", []):
            click.echo(f"note: {r['name']}: {note}", err=True)
    click.echo(f"reports and plots in {out}/ (summary.json)")


def _motion_line(row: dict) -> str:
    """One line of an `eval video` row: face found, silence leak, offset, jitter."""
    parts = [f"face {row['face_found']:.0%}"]
    if "av_offset_ms" in row:  # rows scored against audio
        leak = row.get("silence_leak")
        parts.append(
            f"silence leak {leak:.1%}" if leak is not None and leak == leak else "silence leak n/a (no long pause)"
        )
        lag = row["av_offset_ms"]
        parts.append(
            f"offset {lag:+.0f} ms (r {row['av_sync_r']:.2f})" if lag is not None else "offset n/a (no speech)"
        )
    if "jitter" in row:
        parts.append(f"jitter {row['jitter']:.4f}")
    return ", ".join(parts)


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


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    cli.main(args=_spread_multi_values(argv), prog_name="dhlive")


if __name__ == "__main__":
    sys.exit(main())
