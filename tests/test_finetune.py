"""Avatar creation ends with the avatar's own renderer, fine-tuned from the shipped base; infer,
stream and eval use it, and eval never scores frames it trained on. Avatars are found by name."""

import os
import shutil
from dataclasses import replace

import pytest
from conftest import run_cli

from dhlive.avatar import fine_tune_pending, make_avatar
from dhlive.data.prepare import PrepareConfig
from dhlive.formats import AVATARS_ENV, MOUTH_PCA_FILE, SHIPPED_AUDIO_MODEL, SHIPPED_RENDERER, load_avatar
from dhlive.render.checkpoint import load_renderer
from dhlive.train.finetune import FINETUNE
from dhlive.train.render import train_render

pytestmark = pytest.mark.skipif(not SHIPPED_RENDERER.exists(), reason="needs the shipped base renderer")


@pytest.fixture(scope="module")
def avatars(talking_avatar, tmp_path_factory):
    """A folder of avatars holding `anna`: the talking astronaut, fine-tuned through the CLI
    within a small time budget, its last 40% of frames kept out of the fine-tune."""
    home = tmp_path_factory.mktemp("avatars")
    clip = next(p for p in talking_avatar.parent.iterdir() if p.suffix == ".mp4")
    r = run_cli(
        "prepare",
        clip,
        "--name",
        "anna",
        "--out",
        home,
        "--size",
        "128",
        "--holdout",
        "0.4",
        "--finetune-minutes",
        "0.1",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert "its own renderer, fine-tuned for" in r.stdout
    return home


def test_prepare_ends_with_the_avatars_own_renderer(avatars):
    avatar = load_avatar(avatars / "anna")
    assert avatar.renderer_path is not None
    _, info = load_renderer(avatar.renderer_path)
    n_train = info["trained_frames"]["anna"][1]
    assert n_train == avatar.n_frames - round(0.4 * avatar.n_frames)
    assert info["init"] == str(SHIPPED_RENDERER)
    left = sorted(p.name for p in (avatars / "anna" / "renderer").iterdir())
    assert "train_state.pt" not in left and "packs" not in left  # only what a resume needed is gone


def test_infer_finds_the_avatar_by_name_and_uses_its_renderer(avatars, speech_wav, tmp_path):
    env = {**os.environ, AVATARS_ENV: str(avatars)}
    r = run_cli_env(env, "infer", "--audio", speech_wav, "--avatar", "anna", "--out", tmp_path / "a.mp4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "renderer: the avatar's own" in r.stdout and (tmp_path / "a.mp4").exists()
    r = run_cli_env(env, "infer", "--audio", speech_wav, "--avatar", "bob", "--out", tmp_path / "b.mp4")
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: no avatar named 'bob'; avatars in {avatars}: anna"


def test_eval_never_scores_frames_the_renderer_trained_on(avatars, tmp_path):
    ok = run_cli(
        "eval",
        "selfreenact",
        "--avatar",
        avatars / "anna",
        "--holdout",
        "0.3",
        "--drive",
        "real",
        "--out",
        tmp_path / "e",
        "--quiet",
    )
    assert ok.returncode == 0, ok.stderr
    seen = run_cli("eval", "selfreenact", "--avatar", avatars / "anna", "--holdout", "0.6", "--out", tmp_path / "f")
    assert seen.returncode == 1 and "Traceback" not in seen.stderr
    assert "its own renderer trained on frames" in seen.stderr and "--holdout 0.6" in seen.stderr


def test_an_interrupted_fine_tune_is_not_used_and_resumes(talking_avatar, tmp_path):
    folder = tmp_path / "tom"
    shutil.copytree(talking_avatar, folder)
    cfg = replace(FINETUNE, steps=6)
    stopped = train_render(
        [folder],
        folder / "renderer",
        cfg,
        init=str(SHIPPED_RENDERER),
        mouth=str(SHIPPED_AUDIO_MODEL / MOUTH_PCA_FILE),
        stop_at=3,
        progress=False,
    )
    assert stopped.get("stopped") and fine_tune_pending(folder)
    assert load_avatar(folder).renderer_path is None  # a half-trained model never passes for a finished one
    res = make_avatar("never-read.mp4", "tom", tmp_path, PrepareConfig(size=128), minutes=None, progress=False)
    assert res.prepared is None and res.notes == ["resumed the avatar's unfinished fine-tune"]
    assert res.finetune["steps"] == 6 and load_avatar(folder).renderer_path is not None


def test_a_photo_avatar_gets_its_renderer_too(tmp_path):
    import cv2
    from conftest import astronaut_frame

    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR))
    res = make_avatar(
        photo, "still", tmp_path, PrepareConfig(size=128, still_seconds=1.0), minutes=0.05, progress=False
    )
    assert res.finetune["steps"] >= 1 and load_avatar(res.path).renderer_path is not None


def run_cli_env(env, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "dhlive.cli", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
