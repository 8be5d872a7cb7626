"""Which models a command uses: the ones given, or the shipped base models in checkpoints/."""

from __future__ import annotations

import os
from pathlib import Path

from .audio.inference import load_audio_model
from .errors import DhliveError
from .formats import SHIPPED_AUDIO_MODEL, SHIPPED_RENDERER, SHIPPED_STREAM_AUDIO_MODEL, load_avatar

DEFAULT_AUDIO_MODEL = SHIPPED_AUDIO_MODEL  # 160 ms look-ahead
DEFAULT_STREAM_AUDIO_MODEL = SHIPPED_STREAM_AUDIO_MODEL  # 120 ms: a frame within 200 ms of its audio
DEFAULT_RENDERER = SHIPPED_RENDERER


def load_models(
    audio_model: str | os.PathLike | None,
    renderer: str | os.PathLike | None,
    default_audio_model: Path = DEFAULT_AUDIO_MODEL,
    avatar=None,
):
    """(audio model, its mouth PCA, the renderer checkpoint's path). None picks the default:
    for the renderer, the avatar's own fine-tuned one when `avatar` (a folder) has one, else
    the shipped base."""
    audio_model = Path(audio_model) if audio_model else default_audio_model
    renderer = Path(renderer) if renderer else own_renderer(avatar) or DEFAULT_RENDERER
    for path, what, flag in ((audio_model, "audio model", "--audio-model"), (renderer, "renderer", "--renderer")):
        if not path.exists():
            raise DhliveError(f"{path}: no {what} here (pass {flag}, or train one: see README)")
    model, basis = load_audio_model(audio_model)
    return model, basis, renderer


def own_renderer(avatar) -> Path | None:
    """The avatar's fine-tuned renderer, if it has one."""
    return None if avatar is None else load_avatar(avatar, check_images=False).renderer_path


def renderer_source(renderer: Path, avatar) -> str:
    """How a result names the renderer it used: the avatar's own, the shipped base, or the file given."""
    own = own_renderer(avatar)
    if own is not None and Path(renderer).resolve() == own.resolve():
        return f"the avatar's own ({own})"
    if Path(renderer).resolve() == DEFAULT_RENDERER.resolve():
        return f"the base ({DEFAULT_RENDERER.name})"
    return str(renderer)
