import json
import pickle
import shutil

import numpy as np
import pytest

from dhlive import formats
from dhlive.errors import DhliveError


class Exploit:
    """Unpickling this runs a shell command with plain pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "keypoint_rotate.pkl"
    bad.write_bytes(pickle.dumps({"pixels": Exploit(marker)}))
    with pytest.raises(formats.UnsafePickleError, match="refuses to load"):
        formats.load_pickle(bad)
    assert not marker.exists()
    # the same file does run code through plain pickle: the test's payload is real
    pickle.loads(bad.read_bytes())
    assert marker.exists()


def test_restricted_unpickler_refuses_object_arrays(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}))
    with pytest.raises(formats.UnsafePickleError):
        formats.load_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_numpy_dicts(tmp_path, protocol):
    obj = {
        "version": 1,
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": [1, 2.5, "x", (True, None)],
        "s": np.float64(2.5),
    }
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = formats.load_pickle(path)
    assert np.array_equal(back["a"], obj["a"]) and back["b"] == obj["b"] and back["s"] == 2.5


def test_not_a_pickle(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DhliveError, match="not a readable pickle"):
        formats.load_pickle(path)


def test_avatar_round_trip(face_avatar, tmp_path):
    a = formats.load_avatar(face_avatar)
    copy = tmp_path / "copy"
    shutil.copytree(face_avatar, copy)
    meta = {k: v for k, v in a.meta.items() if k not in ("format", "version")}
    formats.save_avatar(
        copy,
        meta,
        pixels=a.pixels,
        canonical=a.canonical,
        blendshapes=a.blendshapes,
        pose=a.pose,
        euler=a.euler,
        mean_face=a.mean_face,
        lower_face=a.lower_face,
        lower_face_pixels=a.lower_face_pixels,
    )
    b = formats.load_avatar(copy)
    for k in ("pixels", "canonical", "blendshapes", "pose", "euler", "mean_face", "lower_face", "lower_face_pixels"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.meta == b.meta
    assert b.read_crop(0).shape == (a.crop_size, a.crop_size, 3)


def _edit_meta(folder, **changes):
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))


def test_source_video_must_stay_inside_the_folder(face_avatar, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(face_avatar, copy)
    meta = json.loads((copy / "meta.json").read_text())
    for name in ("../../etc/passwd", "/etc/passwd", ".."):
        _edit_meta(copy, source_video={**meta["source_video"], "file": name})
        with pytest.raises(DhliveError, match="not a plain file name"):
            formats.load_avatar(copy)
    _edit_meta(copy, source_video=meta["source_video"], source_index=meta["source_index"][::-1])
    with pytest.raises(DhliveError, match="increasing frame numbers"):
        formats.load_avatar(copy)


def test_version_1_avatar_is_still_read(face_avatar, tmp_path):
    """Version 1: no source_video in meta.json; source.mp4 holds the avatar's frames 1:1."""
    copy = tmp_path / "a"
    shutil.copytree(face_avatar, copy)
    a = formats.load_avatar(copy)
    a.source_video_path.rename(copy / "source.mp4")
    meta = {k: v for k, v in a.meta.items() if k != "source_video"}
    (copy / "meta.json").write_text(json.dumps({**meta, "version": 1}))
    b = formats.load_avatar(copy)
    assert b.source_video_path == copy / "source.mp4"
    assert b.source_video_frames.tolist() == list(range(b.n_frames))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "meta.json").unlink(), "incomplete: no meta.json"),
        (lambda d: (d / "face_mat_mask.pkl").unlink(), "missing face_mat_mask.pkl"),
        (lambda d: (d / "image" / "000003.png").unlink(), "crops missing"),
        (lambda d: (d / "meta.json").write_text("{"), "not valid JSON"),
        (
            lambda d: (d / "meta.json").write_text(
                json.dumps({**json.loads((d / "meta.json").read_text()), "version": 99})
            ),
            "version 99 is not supported",
        ),
        (
            lambda d: formats.save_pickle(d / "keypoint_rotate.pkl", {"version": 1, "pixels": np.zeros((2, 478, 3))}),
            "has shape",
        ),
    ],
)
def test_damaged_avatar_is_named(face_avatar, tmp_path, damage, message):
    copy = tmp_path / "a"
    shutil.copytree(face_avatar, copy)
    damage(copy)
    with pytest.raises(DhliveError, match=message) as e:
        formats.load_avatar(copy)
    assert str(copy) in str(e.value)
