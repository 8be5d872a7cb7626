"""Every config checks its own values: a bad one is one DhliveError naming the option, from
Python, from a YAML file and from the command line alike."""

import math

import pytest

from dhlive.audio.model import AudioModelConfig
from dhlive.config import load_config
from dhlive.data.prepare import PrepareConfig
from dhlive.errors import DhliveError
from dhlive.mouth import MouthFitConfig
from dhlive.render.frames import InferConfig
from dhlive.train.audio import DistillConfig
from dhlive.train.render import TrainRenderConfig

BAD = [
    (PrepareConfig, {"fps": math.nan}, "fps must be a finite number"),
    (PrepareConfig, {"fps": math.inf}, "fps must be a finite number"),
    (PrepareConfig, {"size": 8}, "size must be a whole number at least 32"),
    (PrepareConfig, {"pose_smoothing": [0.1, 0.8]}, "pose_smoothing must be a list of 3 numbers"),
    (DistillConfig, {"mouth_kind": "lipz"}, "mouth_kind must be one of lips, pixels, lips\\+pixels"),
    (DistillConfig, {"lr": 0}, "lr must be a finite number above 0"),
    (DistillConfig, {"steps": "many"}, "steps must be a whole number"),
    (DistillConfig, {"model": {"lookahead": -1}}, "model lookahead must be"),
    (DistillConfig, {"model": {"widht": 3}}, "model: .*widht"),
    (TrainRenderConfig, {"stage": "video"}, "stage must be one of frame, clip"),
    (TrainRenderConfig, {"holdout": 0.95}, "holdout must be a finite number at least 0 and at most 0.9"),
    (TrainRenderConfig, {"detail_weight": -1}, "detail_weight must be a finite number at least 0"),
    (TrainRenderConfig, {"renderer": "huge"}, "renderer config"),
    (InferConfig, {"batch": 0}, "batch must be a whole number at least 1"),
    (InferConfig, {"colour_match": "auto"}, "colour match must be one of skin, edge, off"),
    (AudioModelConfig, {"dropout": 1.5}, "model dropout must be"),
    (MouthFitConfig, {"n_coeffs": 0}, "n_coeffs must be a whole number at least 1"),
]


@pytest.mark.parametrize("cls, values, message", BAD, ids=[f"{c.__name__}-{next(iter(v))}" for c, v, _ in BAD])
def test_a_bad_value_is_one_clear_error(cls, values, message, tmp_path):
    with pytest.raises(DhliveError, match=message) as err:
        cls(**values)
    assert "\n" not in str(err.value)
    if cls is not AudioModelConfig and cls is not MouthFitConfig:  # the others are read from YAML files
        path = tmp_path / "bad.yaml"
        path.write_text(
            "".join(f"{k}: {v!r}\n".replace("nan", ".nan").replace("inf", ".inf") for k, v in values.items())
        )
        with pytest.raises(DhliveError, match=f"{path}: {message}"):
            load_config(path, cls)


def test_the_defaults_are_valid():
    for cls in (PrepareConfig, DistillConfig, TrainRenderConfig, InferConfig, AudioModelConfig, MouthFitConfig):
        cls()


def test_the_quick_config_file_is_the_fine_tune_that_prepare_runs():
    """configs/render_quick.yaml is FINETUNE for `dhlive train-render` (it only holds out
    frames and checkpoints less often)."""
    from dataclasses import asdict
    from pathlib import Path

    from dhlive.train.finetune import FINETUNE

    quick = asdict(load_config(Path(__file__).parents[1] / "configs" / "render_quick.yaml", TrainRenderConfig))
    ours = asdict(FINETUNE)
    differ = {k for k in ours if quick[k] != ours[k]}
    assert differ == {"holdout", "checkpoint_every"}
