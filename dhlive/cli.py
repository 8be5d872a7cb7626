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
@click.option("--force", is_flag=True, help="Replace an existing avatar of that name.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def prepare(input_path, name, out_dir, fps, size, config_path, face_model, force, quiet):
    """Turn a talking-head video (or one photo) INPUT into an avatar folder."""
    from .config import load_config
    from .data.prepare import PrepareConfig
    from .data.prepare import prepare as run

    cfg = load_config(config_path, PrepareConfig, fps=fps, size=size, face_model=face_model)
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


def main(argv=None):
    cli.main(args=argv, prog_name="dhlive")


if __name__ == "__main__":
    sys.exit(main())
