"""The bad-input table, walked end to end through the command line: broken, odd and hostile
input, interruptions and resumes. Each case must end in one clear line (no traceback), the
right exit status, and nothing half-written under a final name."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from conftest import SMALL_DISTILL, astronaut_frame, run_cli, talking, write_clip

from dhlive import formats, media

TINY_RENDER = {
    "model": {"resolution": 128, "width": 8, "max_width": 32, "blocks": 1},
    "batch": 2,
    "perceptual_layers": 1,
    "perceptual_window": 2,
    "warmup": 2,
    "gan_start": 2,
    "log_every": 2,
    "sample_every": 2,
    "checkpoint_every": 2,
}


def one_line(r, status=1, *needles):
    assert r.returncode == status, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def no_leftovers(folder):
    """Nothing half-written: no temporary names, hidden or not."""
    left = [p.name for p in folder.rglob("*") if ".part" in p.name]
    assert not left, left


def yaml(path, values):
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    return path


# --- prepare ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_prepare_non_finite_or_negative_frame_rate(face_clip, tmp_path, value):
    line = one_line(run_cli("prepare", face_clip, "--name", "x", "--out", tmp_path, "--fps", value))
    assert line == f"error: fps must be a finite number above 0 and at most 240, not {float(value)!r}"
    assert list(tmp_path.iterdir()) == []


def test_prepare_frame_rate_in_a_config_file(face_clip, tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("fps: .nan\n")
    one_line(run_cli("prepare", face_clip, "--name", "x", "--out", tmp_path / "a", "--config", cfg), 1, "fps must be")
    assert not (tmp_path / "a").exists()


def test_prepare_takes_a_name_in_any_script_but_no_path(face_clip, tmp_path):
    r = run_cli("prepare", face_clip, "--name", "Zoë_张", "--out", tmp_path, "--size", "96", "--quiet", "--no-finetune")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "Zoë_张" / "meta.json").exists()
    for bad in ("../x", "a/b", "a b", ".hidden"):
        one_line(run_cli("prepare", face_clip, "--name", bad, "--out", tmp_path), 1, "avatar name")


def test_prepare_scales_a_huge_photo_down(tmp_path):
    photo = tmp_path / "big.jpg"
    cv2.imwrite(str(photo), cv2.resize(astronaut_frame(), (3000, 3000))[:, :, ::-1])
    r = run_cli("prepare", photo, "--name", "big", "--out", tmp_path, "--size", "96", "--quiet", "--no-finetune")
    assert r.returncode == 0, r.stderr
    assert "photo scaled down from 3000x3000 to 2048x2048" in r.stderr
    assert json.loads((tmp_path / "big" / "meta.json").read_text())["source"]["size"] == [2048, 2048]


def test_prepare_separate_audio_that_is_not_audio(face_clip, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    one_line(run_cli("prepare", face_clip, "--name", "x", "--out", tmp_path / "a", "--audio", text), 1, "notes.wav")
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").iterdir())


# --- inspect ---------------------------------------------------------------------------------


@pytest.fixture
def avatar_copy(face_avatar, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(face_avatar, copy)
    return copy


def test_inspect_finds_a_cut_short_crop(avatar_copy):
    crop = avatar_copy / "image" / "000007.png"
    crop.write_bytes(crop.read_bytes()[:200])
    one_line(run_cli("inspect", avatar_copy), 1, "000007.png", "does not decode")


def test_inspect_finds_a_source_video_of_other_frames(avatar_copy):
    source = formats.load_avatar(avatar_copy).source_video_path
    write_clip(source, [astronaut_frame()] * 3)
    one_line(run_cli("inspect", avatar_copy), 1, source.name, "has 3 frames")


def test_inspect_passes_a_whole_avatar(face_avatar):
    r = run_cli("inspect", face_avatar)
    assert r.returncode == 0 and "valid dhlive avatar" in r.stdout, r.stderr


# --- infer and stream ------------------------------------------------------------------------


def infer_args(models, audio, avatar, out):
    return [
        "infer",
        "--audio",
        audio,
        "--avatar",
        avatar,
        "--out",
        out,
        "--audio-model",
        models[0],
        "--renderer",
        models[1],
        "--quiet",
    ]


@pytest.mark.parametrize("kind", ["pickle", "code", "text", "other_model", "empty"])
def test_infer_bad_renderer_file_is_named_without_torch_noise(kind, models, speech_wav, face_avatar, tmp_path):
    bad = tmp_path / "render.pt"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    if kind == "pickle":
        bad.write_bytes(pickle.dumps({"model": {}}))
    elif kind == "code":
        torch.save({"format": "dhlive-render-model", "model": RunsCode()}, bad)
    elif kind == "text":
        bad.write_text("these are not weights\n")
    elif kind == "other_model":
        torch.save(torch.nn.Linear(3, 3).state_dict(), bad)
    else:
        bad.write_bytes(b"")
    args = infer_args((models[0], bad), speech_wav, face_avatar, tmp_path / "o.mp4")
    line = one_line(run_cli(*args), 1, "render.pt")
    expect = {
        "pickle": "a Python pickle",
        "code": "could run code",
        "text": "a text file",
        "other_model": "not a dhlive checkpoint",
        "empty": "empty",
    }[kind]
    assert expect in line and "None" not in line
    assert not (tmp_path / "ran").exists() and not (tmp_path / "o.mp4").exists()


def test_infer_never_overwrites_its_input(models, speech_wav, face_avatar, tmp_path):
    audio = tmp_path / "speech.wav"
    shutil.copy(speech_wav, audio)
    before = audio.read_bytes()
    one_line(run_cli(*infer_args(models, audio, face_avatar, audio)), 1, "is the input audio")
    assert audio.read_bytes() == before
    source = formats.load_avatar(face_avatar).source_video_path
    before = source.stat().st_mtime_ns
    one_line(run_cli(*infer_args(models, speech_wav, face_avatar, source)), 1, "inside the avatar folder")
    assert source.stat().st_mtime_ns == before


def test_stream_refuses_a_batch_infer_refuses(models, speech_wav, face_avatar, tmp_path):
    for batch in ("0", "-3"):
        args = [
            "stream",
            "--audio",
            speech_wav,
            "--avatar",
            face_avatar,
            "--out",
            tmp_path / "s.mp4",
            "--audio-model",
            models[0],
            "--renderer",
            models[1],
            "--batch",
            batch,
        ]
        one_line(run_cli(*args), 1, "batch must be a whole number at least 1")


@pytest.fixture(scope="module")
def long_speech(speech, tmp_path_factory):
    """A minute of speech: long enough to be interrupted mid-way."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    media.write_wav(path, np.tile(np.concatenate([speech, np.zeros(8000, np.float32)]), 25)[: 60 * 16000])
    return path


def start_and_signal(args, cwd, sig, started):
    """Run the CLI, send `sig` once `started()` holds; (result, seconds from signal to exit)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dhlive.cli", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as a terminal would start it: a shell's background job (CI scripts) ignores SIGINT,
        # and a child that inherits that never sees Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not started() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.3)
    t0 = time.time()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out, err), time.time() - t0


@pytest.mark.parametrize(
    "sig, status, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_infer_stops_at_once_on_ctrl_c_or_sigterm(sig, status, word, models, long_speech, face_avatar, tmp_path):
    out = tmp_path / "o.mp4"
    r, seconds = start_and_signal(
        infer_args(models, long_speech, face_avatar, out), tmp_path, sig, lambda: (tmp_path / ".o.part.mp4").exists()
    )
    assert one_line(r, status) == word
    assert seconds < 2, seconds
    assert list(tmp_path.iterdir()) == []  # neither the mp4 nor its temporary file


def test_stream_keeps_what_it_rendered_on_ctrl_c(models, long_speech, face_avatar, tmp_path):
    out = tmp_path / "live.mp4"
    args = [
        "stream",
        "--audio",
        long_speech,
        "--avatar",
        face_avatar,
        "--out",
        out,
        "--audio-model",
        models[0],
        "--renderer",
        models[1],
        "--realtime",
    ]
    part, seen = tmp_path / ".live.part.mp4", []

    def rendering():  # a second after the output opened: the look-ahead and a few frames are through
        seen.extend([time.time()] if part.exists() and not seen else [])
        return bool(seen) and time.time() - seen[0] > 1.0

    r, seconds = start_and_signal(args, tmp_path, signal.SIGINT, rendering)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert seconds < 2, seconds
    frames = sum(1 for _ in media.iter_frames(out))
    assert 0 < frames < 60 * 25 and f"holds the {frames} frames" in r.stderr
    assert len(media.load_audio(out)) > 0
    no_leftovers(tmp_path)


# --- eval video ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def talking_video(face_clip):
    return face_clip  # the moving astronaut with its own speech


@pytest.mark.parametrize("kind", ["zeros", "faint_noise"])
def test_eval_video_on_a_recording_without_speech(kind, talking_video, tmp_path):
    n = 3 * 16000
    audio = np.zeros(n, np.float32) if kind == "zeros" else (np.random.default_rng(0).standard_normal(n) * 1e-3)
    wav = tmp_path / "quiet.wav"
    media.write_wav(wav, audio.astype(np.float32))
    r = run_cli("eval", "video", "--video", talking_video, "--audio", wav, "--out", tmp_path / "e", "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "e" / f"{talking_video.stem}.json").read_text())["generated"]
    assert report["speech_share"] == 0.0 and report["av_offset_ms"] is None
    assert "offset n/a (no speech)" in r.stdout


def test_eval_video_notes_audio_much_shorter_than_the_video(talking_video, speech, tmp_path):
    wav = tmp_path / "short.wav"
    media.write_wav(wav, speech[:1600])
    r = run_cli("eval", "video", "--video", talking_video, "--audio", wav, "--out", tmp_path / "e", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "the audio (0.1 s) is shorter than the video (2.0 s)" in r.stderr


# --- training: resumes and rejected avatars ------------------------------------------------


def train(command, avatar, out, cfg, *extra):
    return run_cli(command, "--avatars", avatar, "--out", out, "--config", cfg, "--quiet", *extra)


def test_distill_resume_refuses_another_config_or_avatar(talking_avatar, tmp_path):
    cfg = yaml(tmp_path / "small.yaml", {**SMALL_DISTILL, "steps": 8})
    out = tmp_path / "m"
    r = train("distill-audio", talking_avatar, out, cfg, "--stop-at", "4")
    assert r.returncode == 0 and "stopped at step 4" in r.stdout, r.stderr
    other = yaml(tmp_path / "other.yaml", {**SMALL_DISTILL, "steps": 8, "lr": 0.01, "batch": 4})
    line = one_line(train("distill-audio", talking_avatar, out, other, "--resume"), 1, "cannot resume")
    assert "batch: 8 -> 4" in line and "lr: 0.001 -> 0.01" in line
    second = talking(tmp_path, "second", "Another sentence, spoken by the same face.")
    one_line(train("distill-audio", second, out, cfg, "--resume"), 1, "cannot resume", "training avatars")
    r = train("distill-audio", talking_avatar, out, cfg, "--resume", "--steps", "10")
    assert r.returncode == 0, r.stderr
    assert "note: the run was planned for 8 steps and now goes to 10" in r.stderr
    assert "trained for 10 steps" in r.stdout


def test_train_render_resume_refuses_another_config(face_avatar, tmp_path):
    cfg = yaml(tmp_path / "tiny.yaml", {**TINY_RENDER, "steps": 4})
    out = tmp_path / "r"
    r = train("train-render", face_avatar, out, cfg, "--stop-at", "2")
    assert r.returncode == 0 and "stopped at step 2" in r.stdout, r.stderr
    other = yaml(tmp_path / "other.yaml", {**TINY_RENDER, "steps": 4, "lr": 0.001, "warmup": 1})
    line = one_line(train("train-render", face_avatar, out, other, "--resume"), 1, "cannot resume")
    assert "lr: 0.0002 -> 0.001" in line and "warmup: 2 -> 1" in line


def test_train_render_rejected_avatar_leaves_no_folders(tmp_path):
    empty = tmp_path / "not_an_avatar"
    empty.mkdir()
    out = tmp_path / "r"
    one_line(run_cli("train-render", "--avatars", empty, "--out", out, "--quiet"), 1, "not_an_avatar")
    assert not (out / "packs").exists()
