"""The command line as a user meets it: help everywhere, and bad input as one line, exit 1."""

import numpy as np
import pytest
from conftest import astronaut_frame, run_cli, shared, write_clip

from dhlive import __version__, formats, media


@pytest.mark.parametrize(
    "args", [[], ["prepare"], ["inspect"], ["provision"], ["eval"], ["eval", "video"], ["eval", "selfreenact"]]
)
def test_help(args):
    r = run_cli(*args, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout


def test_the_frame_options_offer_what_the_pipeline_accepts():
    """The CLI lists its choices itself (importing the stages would slow every command's
    start); they must stay the ones InferConfig checks."""
    from dhlive.cli import cli
    from dhlive.device import PRECISIONS
    from dhlive.render.paste import COLOUR_MATCH
    from dhlive.render.runtime import BACKENDS

    for name in ("infer", "stream", "serve"):
        params = {p.name: p for p in cli.commands[name].params}
        assert tuple(params["precision"].type.choices) == PRECISIONS
        assert tuple(params["backend"].type.choices) == BACKENDS
        assert tuple(params["colour_match"].type.choices) == COLOUR_MATCH


def test_every_shipped_config_loads():
    """A typo in a shipped config would only surface minutes into a user's run."""
    from pathlib import Path

    from dhlive.config import load_config
    from dhlive.data.prepare import PrepareConfig
    from dhlive.train.audio import DistillConfig
    from dhlive.train.render import TrainRenderConfig

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 9
    for path in configs:
        if path.name.startswith("render_"):
            load_config(path, TrainRenderConfig)
        elif path.name.startswith("audio"):
            load_config(path, DistillConfig)
        else:
            assert path.name == "prepare.yaml", path
            load_config(path, PrepareConfig)


def one_line_error(r, *needles):
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def bad_inputs(tmp_path, speech):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    full = write_clip(tmp_path / "full.mp4", [astronaut_frame()] * 25)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    noface = write_clip(tmp_path / "wall.mp4", [np.full((96, 96, 3), 128, np.uint8)] * 25)
    wav = tmp_path / "speech.wav"
    media.write_wav(wav, speech)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    return [
        (tmp_path / "missing.mp4", "no such file"),
        (text, "not a readable video"),
        (truncated, "not a readable video"),
        (noface, "no face found in any of the 25 frames"),
        (wav, "has no video stream (audio only)"),
        (empty, "file is empty"),
    ]


def test_prepare_bad_inputs_fail_in_one_line(tmp_path, speech):
    out = tmp_path / "avatars"
    for i, (path, message) in enumerate(bad_inputs(tmp_path, speech)):
        r = run_cli("prepare", path, "--name", f"a{i}", "--out", out, "--quiet")
        one_line_error(r, path.name, message)
    assert not out.exists() or not list(out.iterdir())  # nothing half-written, hidden or not


def test_prepare_and_inspect(face_clip, tmp_path):
    r = run_cli("prepare", face_clip, "--name", "cli", "--out", tmp_path, "--size", "128", "--quiet", "--no-finetune")
    assert r.returncode == 0, r.stderr
    assert "50 frames" in r.stdout
    r = run_cli("inspect", tmp_path / "cli")
    assert r.returncode == 0 and "valid dhlive avatar" in r.stdout
    (tmp_path / "cli" / formats.POSE_FILE).unlink()
    one_line_error(run_cli("inspect", tmp_path / "cli"), "missing face_mat_mask.pkl")


def test_config_file_and_bad_options(face_clip, tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("size: 96\nmax_gap: 3\n")
    r = run_cli("prepare", face_clip, "--name", "c", "--out", tmp_path, "--config", cfg, "--quiet", "--no-finetune")
    assert r.returncode == 0, r.stderr
    assert formats.load_avatar(tmp_path / "c").crop_size == 96
    cfg.write_text("sise: 96\n")
    one_line_error(
        run_cli("prepare", face_clip, "--name", "d", "--out", tmp_path, "--config", cfg), "unknown option(s) sise"
    )


def test_face_model_override_is_verified(face_clip, tmp_path):
    fake = tmp_path / "face_landmarker.task"
    fake.write_bytes(b"not a model")
    r = run_cli("prepare", face_clip, "--name", "m", "--out", tmp_path, "--face-model", fake)
    one_line_error(r, "sha256 mismatch")


def test_prepare_shared_talking_clip(tmp_path):
    clip = shared("talking", "LivePortrait__d12.mp4")
    r = run_cli("prepare", clip, "--name", "d12", "--out", tmp_path, "--quiet", "--no-finetune")
    assert r.returncode == 0, r.stderr
    a = formats.load_avatar(tmp_path / "d12")
    assert abs(a.n_frames - 7.3 * 25) <= 3 and a.audio_path is not None
    assert np.abs(a.euler[:, 0]).mean() < 30


def test_several_values_after_one_option():
    from dhlive.cli import _spread_multi_values

    assert _spread_multi_values(["distill-audio", "--avatars", "a", "b", "--out", "o"]) == [
        "distill-audio",
        "--avatars",
        "a",
        "--avatars",
        "b",
        "--out",
        "o",
    ]
    assert _spread_multi_values(["eval", "video", "--video", "x.mp4", "y.mp4", "--quiet"]) == [
        "eval",
        "video",
        "--video",
        "x.mp4",
        "--video",
        "y.mp4",
        "--quiet",
    ]
    # outside `dhlive eval`, --avatar takes one value: a stray word stays an error for click
    assert _spread_multi_values(["infer", "--avatar", "a", "b"]) == ["infer", "--avatar", "a", "b"]
