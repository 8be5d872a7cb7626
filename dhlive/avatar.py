"""Making an avatar, as `dhlive prepare` does: the avatar folder from a video or a photo
(data/prepare.py), then its own renderer, fine-tuned from the base (train/finetune.py).

Run again on an avatar whose fine-tune was interrupted, it resumes the fine-tune instead
of preparing the video anew.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .data.prepare import PrepareConfig, PrepareResult, prepare
from .formats import AVATAR_RENDERER_DIR, META_FILE, RENDER_MODEL_FILE
from .train.finetune import DEFAULT_MINUTES, finetune_avatar
from .train.loop import STATE_FILE


@dataclass
class AvatarResult:
    path: Path
    prepared: PrepareResult | None  # None: the avatar was there, only its fine-tune resumed
    finetune: dict | None  # train_render's summary, None with finetune=False
    notes: list = field(default_factory=list)


def fine_tune_pending(folder: Path) -> bool:
    """An avatar whose fine-tune started and did not finish."""
    own = Path(folder) / AVATAR_RENDERER_DIR
    return (
        (Path(folder) / META_FILE).is_file()
        and (own / STATE_FILE).is_file()
        and not (own / RENDER_MODEL_FILE).is_file()
    )


def make_avatar(
    input_path,
    name: str,
    out_dir,
    cfg: PrepareConfig | None = None,
    *,
    finetune: bool = True,
    minutes: float | None = DEFAULT_MINUTES,
    holdout: float = 0.0,
    force: bool = False,
    progress: bool = True,
) -> AvatarResult:
    """Prepare `input_path` into out_dir/name and, unless finetune=False, give it its own
    renderer within `minutes` (its last `holdout` share of frames kept out of the fine-tune)."""
    folder = Path(out_dir) / name
    if finetune and not force and fine_tune_pending(folder):
        tuned = finetune_avatar(folder, minutes=minutes, holdout=holdout, progress=progress)
        return AvatarResult(folder, None, tuned, ["resumed the avatar's unfinished fine-tune"])
    prepared = prepare(input_path, name, out_dir, cfg, force=force, progress=progress)
    tuned = finetune_avatar(prepared.path, minutes=minutes, holdout=holdout, progress=progress) if finetune else None
    return AvatarResult(prepared.path, prepared, tuned, list(prepared.notes))
