"""Renderer checkpoints: weights, the network's config and the input layout they were trained on."""

from __future__ import annotations

from dataclasses import asdict, fields

from ..errors import DhliveError
from ..formats import RENDER_MODEL_FORMAT, load_checkpoint, save_checkpoint
from . import inputs
from .model import REFERENCE_CHANNELS, SOURCE_CHANNELS, RenderConfig, Renderer


def input_layout() -> dict:
    """What a trained renderer assumes about its inputs; a checkpoint must match it."""
    return {
        "source_channels": SOURCE_CHANNELS,
        "reference_channels": REFERENCE_CHANNELS,
        "window_margin": inputs.WINDOW_MARGIN,
        "feather": inputs.FEATHER,
    }


def save_renderer(path, model: Renderer, info: dict | None = None) -> None:
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(
        path,
        RENDER_MODEL_FORMAT,
        {"config": asdict(model.cfg), "inputs": input_layout(), "model": state, "info": info or {}},
    )


def config_from_dict(d, where) -> RenderConfig:
    known = {f.name for f in fields(RenderConfig)}
    if not isinstance(d, dict) or set(d) - known:
        raise DhliveError(
            f"{where}: renderer config has unknown fields {sorted(set(d) - known) if isinstance(d, dict) else d}"
        )
    return RenderConfig(**d)


def load_renderer(path) -> tuple[Renderer, dict]:
    """A renderer from a checkpoint (weights_only load), in eval mode; (model, info)."""
    d = load_checkpoint(path, RENDER_MODEL_FORMAT)
    if d.get("inputs") != input_layout():
        raise DhliveError(
            f"{path}: trained on another input layout {d.get('inputs')} than this dhlive builds {input_layout()}"
        )
    model = Renderer(config_from_dict(d.get("config"), path))
    try:
        model.load_state_dict(d["model"])
    except (RuntimeError, KeyError) as e:
        raise DhliveError(f"{path}: weights do not fit its config ({str(e).splitlines()[0][:120]})") from None
    return model.eval(), d.get("info", {})
