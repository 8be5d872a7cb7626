import numpy as np

from dhlive.data import masks, pose
from dhlive.formats import load_avatar
from dhlive.geometry import polygon_mask


def rot(yaw=0.0, pitch=0.0, roll=0.0):
    y, p, r = np.radians([yaw, pitch, roll])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rz @ ry @ rx


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    r = rot(20, -10, 5)
    dst = 3.5 * src @ r.T + [10, -4, 2]
    s, r2, t = pose.umeyama(src, dst)
    assert np.isclose(s, 3.5) and np.allclose(r2, r) and np.allclose(t, [10, -4, 2])


def test_euler_angles_round_trip():
    for angles in [(0, 0, 0), (30, 0, 0), (0, -20, 0), (0, 0, 15), (25, 10, -8)]:
        assert np.allclose(pose.euler_angles(rot(*angles)), angles, atol=1e-6)


def synthetic_sequence(face, n=40, mouth_open=True):
    """A known head motion applied to a real mean face, with the jaw/lips moving."""
    yaw = 15 * np.sin(np.arange(n) / 6)
    roll = 8 * np.cos(np.arange(n) / 9)
    pixels, mp = [], []
    lower = face[:, 1] > face[masks.NOSE_TIP, 1]  # everything below the nose tip talks
    for i in range(n):
        f = face.copy()
        if mouth_open:
            f[lower, 1] += 0.25 * abs(np.sin(i / 2)) * (f[lower, 1] - face[masks.NOSE_TIP, 1])
        r = rot(yaw[i], 0, roll[i])
        pixels.append(120 * f @ r.T + [200 + i, 220, 0])
        m = np.eye(4)
        m[:3, :3] = pose._FLIP @ r @ pose._FLIP  # what mediapipe would report (OpenGL axes)
        mp.append(m)
    return np.array(pixels), np.array(mp), yaw, roll


def test_pose_follows_head_and_ignores_talking(face_avatar):
    face = load_avatar(face_avatar).mean_face.astype(np.float64)
    pixels, mp, yaw, roll = synthetic_sequence(face)
    fit = pose.fit_poses(pixels, mp, smoothing=(1.0,))
    assert np.abs(fit.euler[:, 0] - yaw).max() < 0.5
    assert np.abs(fit.euler[:, 2] - roll).max() < 0.5
    assert np.abs(fit.euler[:, 1]).max() < 0.5
    # the forehead stays put in the canonical frame while the jaw moves
    top = fit.canonical[:, pose.RIGID_POINTS]
    assert np.abs(top - top.mean(0)).max() < 0.01
    chin = fit.canonical[:, masks.CHIN, 1]
    assert chin.max() - chin.min() > 0.1
    # canonical unit: one outer eye-corner distance
    eye = np.linalg.norm(fit.mean_face[33] - fit.mean_face[263])
    assert abs(eye - 1) < 0.05


def test_smoothing_respects_segments():
    x = np.r_[np.zeros(5), np.ones(5)][:, None]
    out = pose.smooth_series(x, (1, 1, 1), [(0, 5), (5, 10)])
    assert np.array_equal(out, x)  # each segment is constant: no blur across the border
    out = pose.smooth_series(x, (1, 1, 1), [(0, 10)])
    assert 0 < out[4, 0] < 1


def test_lower_face_polygon_covers_mouth_not_eyes(face_avatar):
    face = load_avatar(face_avatar).mean_face
    poly = masks.lower_face_polygon(face)
    mask = polygon_mask((poly[:, :2] + 2) * 50, 200, 200)
    inside = lambda i: mask[int((face[i, 1] + 2) * 50), int((face[i, 0] + 2) * 50)] > 0.5  # noqa: E731
    assert all(inside(i) for i in (13, 14, 61, 291, 17, 152))  # lips, mouth corners, chin
    assert not any(inside(i) for i in (33, 263, 168, 10))  # eyes, nose bridge, forehead
