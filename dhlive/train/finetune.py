"""The personal fine-tune that ends avatar creation: the base renderer trained a little more
on the avatar's own frames, kept in the avatar folder (renderer/), so that infer, stream and
eval draw this person's lips, teeth and skin instead of an average of the base's faces.

It fits a time budget: the first steps are timed, and the run is cut to the steps the rest of
the budget allows. Like every training run it resumes after an interruption and writes its
model only when it is done (render_model.pt appears last), so a stopped fine-tune never
passes for a finished one; the avatar then uses the base renderer.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from ..errors import DhliveError
from ..formats import (
    AVATAR_RENDERER_DIR,
    MOUTH_PCA_FILE,
    RENDER_MODEL_FILE,
    SHIPPED_AUDIO_MODEL,
    SHIPPED_RENDERER,
    load_avatar,
)
from .loop import STATE_FILE
from .packs import PACK_DIR
from .render import TrainRenderConfig, train_render

# the quick per-avatar fine-tune (configs/render_quick.yaml): exact prompts of one face,
# reconstruction, perceptual and detail losses (the discriminators would start after the end)
FINETUNE = TrainRenderConfig(
    steps=300,
    batch=4,
    lr=2e-4,
    warmup=50,
    perceptual_layers=3,
    perceptual_window=4,
    detail_weight=2.0,
    gan_start=600,
    coeff_noise=0.0,
    log_every=25,
    sample_every=100,
    checkpoint_every=25,
)
TIMED_STEPS = 5  # steps run first to measure how many the budget allows
CHECKPOINT_SHARE = 0.08  # of a step's time: the checkpoints written along the way, and some headroom
DEFAULT_MINUTES = 3.0


def finetune_avatar(
    avatar,
    *,
    minutes: float | None = DEFAULT_MINUTES,
    holdout: float = 0.0,
    base=SHIPPED_RENDERER,
    mouth=SHIPPED_AUDIO_MODEL / MOUTH_PCA_FILE,
    device: str = "auto",
    progress: bool = True,
    cfg: TrainRenderConfig = FINETUNE,
) -> dict:
    """Fine-tune `base` on the avatar's frames (its last `holdout` share kept out, for eval
    selfreenact to score) into AVATAR/renderer/, within `minutes` (None: all cfg.steps);
    resumes a stopped fine-tune of the same settings. Returns train_render's summary."""
    folder = load_avatar(avatar, check_images=False).root
    out = folder / AVATAR_RENDERER_DIR
    if not Path(base).is_file():
        raise DhliveError(f"{base}: no base renderer to fine-tune from")
    cfg = replace(cfg, holdout=holdout)
    state = out / STATE_FILE
    if (out / RENDER_MODEL_FILE).exists() and not state.exists():
        raise DhliveError(f"{out}: the avatar already has its renderer (remove the folder to tune it again)")
    start = time.perf_counter()
    run = dict(init=str(base), mouth=str(mouth), device=device, progress=progress)
    resume = state.exists()
    if resume:  # an interrupted fine-tune: the steps it chose when it started
        from ..formats import RENDER_TRAIN_STATE_FORMAT, load_checkpoint

        cfg = replace(cfg, steps=int(load_checkpoint(state, RENDER_TRAIN_STATE_FORMAT)["config"]["steps"]))
    elif minutes is not None:
        timed_from = time.perf_counter()
        timed = train_render([folder], out, cfg, stop_at=TIMED_STEPS, **run)
        if timed.get("stopped"):
            per_step = timed["step_seconds"] * (1 + CHECKPOINT_SHARE)
            # the rest of the run starts up once more (state, references, first step) as the timed one did
            setup = max(0.0, time.perf_counter() - timed_from - TIMED_STEPS * timed["step_seconds"])
            left = minutes * 60 - (time.perf_counter() - start) - setup
            cfg = replace(cfg, steps=max(TIMED_STEPS + 1, min(cfg.steps, TIMED_STEPS + int(left / per_step))))
        resume = True
    res = train_render([folder], out, cfg, resume=resume, **run)
    if not res.get("stopped"):  # done: what only a resume needed goes
        (out / STATE_FILE).unlink(missing_ok=True)
        shutil.rmtree(out / PACK_DIR, ignore_errors=True)
    res["notes"] = [n for n in res.get("notes", []) if "planned for" not in n]  # the budget chose the steps
    res["seconds"] = round(time.perf_counter() - start, 1)
    return res
