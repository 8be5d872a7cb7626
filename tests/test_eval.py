"""`dhlive eval` end to end on the generated astronaut avatar, with the shipped models and the
real landmarker: self-reenactment of its held-out tail, and scoring of an infer output
against its source (frame matching, seam, anchor row), plus the clear errors."""

import json

import cv2
import numpy as np
import pytest
from conftest import astronaut_frame, moving_frames, run_cli, write_clip

from dhlive import media
from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.errors import DhliveError
from dhlive.eval.selfreenact import selfreenact
from dhlive.eval.video import evaluate_video, evaluate_videos
from dhlive.formats import load_avatar
from dhlive.infer import InferConfig, infer

TALK_FRAMES = 100  # 4 s: the audio model needs 2 s of a clip's audio at least


@pytest.fixture(scope="module")
def face_avatar(tmp_path_factory, speech):
    """A 4 s astronaut avatar whose audio is speech, a pause, speech."""
    root = tmp_path_factory.mktemp("talk")
    audio = np.concatenate([speech, np.zeros(8000, np.float32), speech])[: TALK_FRAMES * 640]
    clip = write_clip(root / "talk.mp4", moving_frames(astronaut_frame(), TALK_FRAMES), audio=audio)
    return prepare(clip, "talk", root, PrepareConfig(size=256), progress=False).path


@pytest.fixture(scope="module")
def said(face_avatar, speech, tmp_path_factory):
    """The avatar saying speech - 2 s silence - speech, through the shipped models."""
    root = tmp_path_factory.mktemp("said")
    wav = root / "speech.wav"
    media.write_wav(wav, np.concatenate([speech, np.zeros(2 * 16000, np.float32), speech]))
    out = root / "said.mp4"
    infer(wav, face_avatar, out, progress=False, cfg=InferConfig(batch=4))
    return out, wav


def test_selfreenact_scores_the_held_out_tail(face_avatar, tmp_path):
    rep = selfreenact(face_avatar, holdout=0.2, drive="real", out_dir=tmp_path, progress=False, save_video=True)
    k = int(round(0.2 * TALK_FRAMES))
    assert rep["held_out_frames"] == k
    assert rep["generated"]["face_found"] == 1.0 and rep["real"]["face_found"] == 1.0
    # the renderer redraws the real mouth in place: close to the real frame, never identical
    assert 0 < rep["lip_distance"] < 0.06
    assert 20 < rep["mouth_psnr"] < 60 and 0.6 < rep["mouth_ssim"] < 1.0
    assert rep["face_ssim"] > rep["mouth_ssim"] - 0.05  # most of the face is the real frame
    assert 0.2 < rep["sharpness_ratio"] < 2.0
    name = load_avatar(face_avatar).root.name
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["mouth_psnr"] == pytest.approx(rep["mouth_psnr"])
    for suffix in ("_aperture.png", "_mouths.png", "_series.npz"):
        assert (tmp_path / f"{name}{suffix}").stat().st_size > 1000
    strip = cv2.imread(str(tmp_path / f"{name}_mouths.png"))
    assert strip.shape[0] == 2 * 128  # real above generated
    video = media.probe(tmp_path / f"{name}.mp4")
    w, h = load_avatar(face_avatar).source_size
    assert (video.width, video.height) == (2 * w, h) and video.has_audio


def test_selfreenact_clear_errors(face_avatar, tmp_path):
    with pytest.raises(DhliveError, match="at least 10 needed"):
        selfreenact(face_avatar, holdout=0.08, out_dir=tmp_path, progress=False)
    with pytest.raises(DhliveError, match="holdout"):
        selfreenact(face_avatar, holdout=1.5, progress=False)


def test_video_mode_matches_frames_to_the_source_and_scores_the_seam(said, face_avatar, tmp_path):
    out, wav = said
    rep = evaluate_video(out, reference=face_avatar, out_dir=tmp_path, progress=False)
    n = media.probe(out).duration * 25
    gen, ref = rep["generated"], rep["reference_row"]
    assert gen["face_found"] == 1.0 and abs(gen["frames"] - n) <= 1
    assert gen["silent_frames"] >= 30  # the 2 s pause, less the guards
    assert 0.0 <= gen["silence_leak"] <= 1.0 and -8 <= gen["av_offset_frames"] <= 8
    assert ref["frames"] == load_avatar(face_avatar).n_frames and "silence_leak" in ref  # the avatar has audio
    seam = rep["seam"]
    # every changed frame is matched to its source frame through the ping-pong loop
    assert seam["changed_frames"] > 0.9 * gen["frames"] and seam["matched_frames"] == seam["changed_frames"]
    # no visible box: the generated frame's colour step along the changed region's edge is not
    # above the source's under the same edge. (Below it means a softer lower face, not a box:
    # since the paste-back matches the skin to the source, that edge is no longer the paste
    # edge but where the drawn face differs most, along the jaw, which the zero-shot renderer
    # draws softer than the photo: 21.7 vs 27.4 there. The sharpness ratio below bounds softness.)
    assert seam["colour_step_generated"] - seam["colour_step_reference"] < 5
    assert 0 < seam["skin_tint"] < 3  # the repainted skin keeps the source's hue
    assert 0.1 < rep["sharpness_ratio"] < 3
    assert not rep["notes"]
    for suffix in (".json", "_aperture.png", "_mouths.png"):
        assert (tmp_path / f"{out.stem}{suffix}").is_file()


def test_video_mode_notices_a_reference_that_is_not_the_source(said, tmp_path):
    out, _ = said
    frames = [np.ascontiguousarray(f[:, ::-1]) for f in media.iter_frames(out)][:40]  # mirrored: not the source
    other = tmp_path / "mirrored.mp4"
    with media.Mp4Writer(other, 25, frames[0].shape[1], frames[0].shape[0]) as w:
        for f in frames:
            w.write(f)
    rep = evaluate_video(out, reference=other, progress=False)
    assert rep["seam"]["matched_frames"] == 0 and "colour_step_generated" not in rep["seam"]
    assert any("match a reference frame" in n for n in rep["notes"])
    assert rep["reference_row"]["face_found"] == 1.0 and "silence_leak" not in rep["reference_row"]  # no audio


def test_video_mode_on_a_folder_writes_a_summary(said, tmp_path):
    out, wav = said
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(out.read_bytes())
    res = evaluate_videos([folder], tmp_path / "report", audio=wav, progress=False)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [v["name"] for v in res["videos"]] == ["a"] == [v["name"] for v in summary["videos"]]
    assert summary["mean"]["generated"]["face_found"] == 1.0


def test_eval_cli_errors_are_one_line(tmp_path, speech):
    blank = tmp_path / "blank.mp4"
    with media.Mp4Writer(blank, 25, 64, 64, audio=speech) as w:
        for _ in range(20):
            w.write(np.full((64, 64, 3), 90, np.uint8))
    res = run_cli("eval", "video", "--video", blank, "--out", tmp_path / "r", "--quiet")
    assert res.returncode == 1 and "no face found in any of its" in res.stderr and "Traceback" not in res.stderr
    silent = tmp_path / "silent.mp4"
    with media.Mp4Writer(silent, 25, 64, 64) as w:
        w.write(np.full((64, 64, 3), 90, np.uint8))
    res = run_cli("eval", "video", "--video", silent, "--out", tmp_path / "r", "--quiet")
    assert res.returncode == 1 and "no audio track" in res.stderr and str(silent) in res.stderr
    res = run_cli("eval", "selfreenact", "--avatar", tmp_path, "--out", tmp_path / "r", "--quiet")
    assert res.returncode == 1 and "neither an avatar folder nor a folder of avatars" in res.stderr
    assert not (tmp_path / "r" / "summary.json").exists()


def test_video_mode_says_why_a_reference_of_another_size_gives_no_seam(said, tmp_path):
    out, _ = said
    frames = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2)) for f in media.iter_frames(out)][:20]
    small = tmp_path / "small.mp4"
    with media.Mp4Writer(small, 25, frames[0].shape[1], frames[0].shape[0]) as w:
        for f in frames:
            w.write(f)
    rep = evaluate_video(out, reference=small, progress=False)
    assert rep["seam"]["changed_frames"] == 0
    assert any("no seam without the same frame size" in n for n in rep["notes"])
