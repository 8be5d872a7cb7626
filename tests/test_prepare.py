import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    ASTRONAUT_FACE_BOX,
    ASTRONAUT_NOSE_BOX,
    CLIP_FRAMES,
    CLIP_SIZE,
    applied_roll,
    astronaut_frame,
    moving_frames,
    to_clip_coords,
    write_clip,
)

import dhlive.data.prepare as prepare_module
from dhlive import formats, media
from dhlive.data.prepare import PrepareConfig, crop_face, prepare
from dhlive.errors import DhliveError

FAST = PrepareConfig(size=128)


def blank_like(frame):
    return np.full_like(frame, 120)


def test_landmarks_land_on_the_face(face_avatar):
    a = formats.load_avatar(face_avatar)
    xs, ys = to_clip_coords(ASTRONAUT_FACE_BOX[::2], ASTRONAUT_FACE_BOX[1::2])
    lm = a.pixels[0]  # frame 0 carries no rotation and a shift under 2 px
    assert (lm[:, 0] > xs[0] - 3).all() and (lm[:, 0] < xs[1] + 3).all()
    assert (lm[:, 1] > ys[0] - 3).all() and (lm[:, 1] < ys[1] + 3).all()
    nx, ny = to_clip_coords(ASTRONAUT_NOSE_BOX[::2], ASTRONAUT_NOSE_BOX[1::2])
    assert nx[0] < lm[1, 0] < nx[1] and ny[0] < lm[1, 1] < ny[1]


def test_pose_is_near_frontal_and_follows_the_applied_rotation(face_avatar):
    a = formats.load_avatar(face_avatar)
    assert a.n_frames == CLIP_FRAMES
    assert np.abs(a.euler[:, 0]).max() < 15 and np.abs(a.euler[:, 1]).max() < 25
    applied = np.array([applied_roll(i) for i in range(CLIP_FRAMES)])
    # cv2 turns counter-clockwise for positive angles; our roll is clockwise-positive
    est = a.euler[:, 2] - a.euler[0, 2]
    assert np.abs(est + (applied - applied[0])).max() < 1.0
    assert np.corrcoef(est, -applied)[0, 1] > 0.99


def test_avatar_contents(face_avatar, speech):
    a = formats.load_avatar(face_avatar)
    assert a.crop_size == 256 and a.read_crop(10).shape == (256, 256, 3)
    assert a.meta["source"]["kind"] == "video" and a.meta["source"]["size"] == [CLIP_SIZE, CLIP_SIZE]
    assert a.meta["rejected"] == [] and a.meta["source_index"] == list(range(CLIP_FRAMES))
    assert len(list(media.iter_frames(a.source_video_path))) == a.n_frames
    audio = media.load_audio(a.audio_path)
    assert abs(audio.size - speech.size) < 0.05 * 16000
    # the face sits in the middle of its crop
    for i in (0, 25, 49):
        nose = a.crop_landmarks(i)[1]
        assert np.all(np.abs(nose[:2] / a.crop_size - 0.5) < 0.2)
    # the repaint polygon holds the lips in every frame and not the eyes
    for i in range(0, CLIP_FRAMES, 7):
        poly = a.lower_face_pixels[i].astype(np.float32)
        for k, want in ((13, True), (14, True), (61, True), (291, True), (33, False), (263, False)):
            p = tuple(float(v) for v in a.pixels[i, k, :2])
            assert (cv2.pointPolygonTest(poly, p, False) > 0) == want, (i, k)
    json.loads((face_avatar / "meta.json").read_text())  # plain JSON


def test_photo_becomes_a_still_avatar(tmp_path):
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR))
    res = prepare(photo, "still", tmp_path, PrepareConfig(size=128, still_seconds=1.0), progress=False)
    a = formats.load_avatar(res.path)
    assert a.n_frames == 25 and a.meta["source"]["kind"] == "photo" and a.audio_path is None
    # subtle motion: the head moves a little, not at all would be a frozen picture
    travel = np.ptp(a.pixels[:, 1, :2], axis=0).max()
    assert 0.5 < travel < 15


def test_separate_sound_moved_by_its_offset(tmp_path, speech):
    """--audio takes the speech from another file; --audio-offset moves it so that a sound
    recorded 0.2 s late lines up with the picture (and one 0.2 s early gets silence first)."""
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR))
    wav = tmp_path / "speech.wav"
    media.write_wav(wav, speech)
    late = prepare(
        photo,
        "late",
        tmp_path,
        PrepareConfig(size=128, still_seconds=1.0, audio=str(wav), audio_offset=0.2),
        progress=False,
    )
    early = prepare(
        photo,
        "early",
        tmp_path,
        PrepareConfig(size=128, still_seconds=1.0, audio=str(wav), audio_offset=-0.2),
        progress=False,
    )
    a_late = media.load_audio(formats.load_avatar(late.path).audio_path)
    a_early = media.load_audio(formats.load_avatar(early.path).audio_path)
    assert np.allclose(a_late, speech[3200:], atol=1e-3)
    assert np.abs(a_early[:3200]).max() == 0 and np.allclose(a_early[3200:], speech, atol=1e-3)
    with pytest.raises(DhliveError, match="no audio stream"):
        prepare(photo, "bad", tmp_path, PrepareConfig(size=128, still_seconds=1.0, audio=str(photo)), progress=False)


def test_two_faces_follows_the_main_one(tmp_path):
    big = astronaut_frame()
    small = cv2.resize(big, (240, 240))  # its face is ~100 px, the main one ~160 px
    canvas = np.full((CLIP_SIZE, CLIP_SIZE + 280, 3), 90, np.uint8)
    canvas[:, :CLIP_SIZE] = big
    canvas[40:280, CLIP_SIZE + 20 : CLIP_SIZE + 260] = small
    clip = write_clip(tmp_path / "two.mp4", [canvas] * 30)
    res = prepare(clip, "two", tmp_path, FAST, progress=False)
    a = formats.load_avatar(res.path)
    assert (a.pixels[:, :, 0] < CLIP_SIZE).all()  # the big face on the left, every frame
    assert any("2 faces" in n for n in res.notes) and a.meta["multiple_faces"]


def test_short_gap_is_interpolated_long_gap_dropped(tmp_path):
    frames = list(moving_frames(astronaut_frame()))
    short = [blank_like(f) if 20 <= i < 24 else f for i, f in enumerate(frames)]
    res = prepare(write_clip(tmp_path / "short.mp4", short), "short", tmp_path, FAST, progress=False)
    a = formats.load_avatar(res.path)
    assert a.n_frames == CLIP_FRAMES and a.meta["interpolated"] == [[20, 23]]
    assert np.abs(np.diff(a.pixels[18:26, 1, 0])).max() < 10  # no jump through the gap

    long = [blank_like(f) if 10 <= i < 40 else f for i, f in enumerate(frames)]
    res = prepare(
        write_clip(tmp_path / "long.mp4", long),
        "long",
        tmp_path,
        PrepareConfig(size=128, min_usable_seconds=0.5),
        progress=False,
    )
    a = formats.load_avatar(res.path)
    assert a.n_frames == 20
    assert a.meta["rejected"] == [{"reason": "no face", "frames": [[10, 39]]}]
    assert a.meta["segments"] == [[0, 9], [40, 49]]
    # the source video is the input kept as it was; the avatar's frames are picked from it
    assert a.source_video_path.read_bytes() == (tmp_path / "long.mp4").read_bytes()
    assert a.source_video_frames.tolist() == list(range(10)) + list(range(40, 50))
    source = media.SourceFrames(a)
    try:
        assert len(source) == 20
        for i in (0, 9, 10, 19):  # each source frame is the one its crop was cut from
            crop = crop_face(np.asarray(source[i]), a.crop_boxes[i], a.crop_size)
            assert np.abs(crop.astype(int) - a.read_crop(i)).mean() < 1.0, i
    finally:
        source.close()


def test_portrait_video_with_rotation_metadata(tmp_path):
    face = astronaut_frame()
    tall = cv2.copyMakeBorder(face, 64, 64, 0, 0, cv2.BORDER_REFLECT)  # 384 wide, 512 tall
    clip = write_clip(tmp_path / "phone.mp4", [tall] * 30, rotation=90)
    res = prepare(clip, "phone", tmp_path, FAST, progress=False)
    a = formats.load_avatar(res.path)
    assert a.meta["source"]["size"] == [CLIP_SIZE, CLIP_SIZE + 128] and a.meta["source"]["rotation"] == 90
    assert np.abs(a.euler[:, 2]).max() < 15  # upright, not turned by 90 degrees


def test_no_face_and_too_little_face(tmp_path):
    noise = [np.random.default_rng(i).integers(0, 255, (128, 128, 3), np.uint8) for i in range(20)]
    with pytest.raises(DhliveError, match="no face found in any of the 20 frames"):
        prepare(write_clip(tmp_path / "noface.mp4", noise), "x", tmp_path, FAST, progress=False)
    frames = list(moving_frames(astronaut_frame()))
    few = [f if i < 10 else blank_like(f) for i, f in enumerate(frames)]
    with pytest.raises(DhliveError, match=r"too little usable video: 10 of 50 frames .*no face in frames 10-49"):
        prepare(write_clip(tmp_path / "few.mp4", few), "x", tmp_path, FAST, progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()


def test_existing_avatar_needs_force(face_clip, tmp_path):
    prepare(face_clip, "a", tmp_path, FAST, progress=False)
    with pytest.raises(DhliveError, match="already exists"):
        prepare(face_clip, "a", tmp_path, FAST, progress=False)
    prepare(face_clip, "a", tmp_path, FAST, force=True, progress=False)
    assert formats.load_avatar(tmp_path / "a").n_frames == CLIP_FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_interrupted_prepare_leaves_no_avatar_and_resumes(face_clip, tmp_path, monkeypatch):
    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "save_avatar", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(face_clip, "r", tmp_path, FAST, progress=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(DhliveError, match="incomplete"):
        formats.load_avatar(tmp_path / ".r.partial")
    monkeypatch.undo()

    # the detection pass is cached: a second run does not need the face landmarker at all
    def no_landmarker(*a, **k):
        raise AssertionError("detection should come from the cache")

    monkeypatch.setattr(prepare_module, "FaceLandmarker", no_landmarker)
    res = prepare(face_clip, "r", tmp_path, FAST, progress=False)
    assert formats.load_avatar(res.path).n_frames == CLIP_FRAMES
    assert not (tmp_path / ".r.partial").exists()
    assert not (res.path / prepare_module.CACHE_FILE).exists()


def test_bad_name(face_clip, tmp_path):
    with pytest.raises(DhliveError, match="avatar name"):
        prepare(face_clip, "../evil", tmp_path, FAST, progress=False)


def test_a_second_prepare_of_the_same_avatar_at_once_is_refused(face_clip, tmp_path):
    """Two prepares of one avatar would write into one work folder; the second is told to wait,
    and the first one's work is left alone."""
    fcntl = pytest.importorskip("fcntl")
    (tmp_path / ".busy.partial").mkdir()
    with open(tmp_path / ".busy.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the first prepare holds it
        with pytest.raises(DhliveError, match="another `dhlive prepare` is building this avatar now"):
            prepare(face_clip, "busy", tmp_path, FAST, progress=False)
        assert (tmp_path / ".busy.partial").is_dir()
    res = prepare(face_clip, "busy", tmp_path, FAST, progress=False)  # once it is free
    assert res.path.is_dir() and not (tmp_path / ".busy.lock").exists()


@pytest.mark.parametrize("first_finished", [False, True])
def test_a_lock_on_a_lock_file_the_first_prepare_just_removed_is_refused(
    face_clip, tmp_path, monkeypatch, first_finished
):
    """Between the second prepare's open of the lock file and its lock, the first one ends and
    removes the file: the second's lock then holds nothing, and a third would build alongside.
    The second is refused (told the avatar exists when the first one built it)."""
    pytest.importorskip("fcntl")
    real_open = open

    def open_as_the_first_prepare_ends(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(".late.lock"):
            Path(path).unlink()
            if first_finished:
                (tmp_path / "late").mkdir()
        return f

    monkeypatch.setattr(prepare_module, "open", open_as_the_first_prepare_ends, raising=False)
    message = "already exists" if first_finished else "another `dhlive prepare` is building this avatar now"
    with pytest.raises(DhliveError, match=message):
        prepare(face_clip, "late", tmp_path, FAST, progress=False)
    assert not (tmp_path / ".late.lock").exists()
