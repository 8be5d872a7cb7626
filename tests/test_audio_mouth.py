import numpy as np
import pytest

from dhlive import mouth as M
from dhlive.errors import DhliveError
from dhlive.formats import load_pickle, save_pickle


def synthetic_speaker(rng, n=300, scale=1.0, widen=0.05):
    """Lips on two rings (mediapipe's order: right corner, lower lip, left corner, upper lip)
    that open and widen along fixed directions, and a mouth image that darkens as the mouth
    opens: a known low-rank mouth."""
    theta = 2 * np.pi * (np.arange(40) % 20) / 20
    size = rng.uniform(0.9, 1.1)
    rest = np.zeros((40, 3), np.float32)
    rest[:20, 0], rest[:20, 1] = -0.35 * size * np.cos(theta[:20]), 0.12 * size * np.sin(theta[:20])
    rest[20:, 0] = -0.3 * size * np.cos(theta[20:])  # inner ring closed: 13 and 14 meet at x = 0
    rest[:, 2] = rng.normal(0, 0.05, 40)
    lower = np.clip(np.sin(theta), 0, None)  # only the lower lip drops
    open_dir = np.zeros((40, 3), np.float32)
    open_dir[:, 1] = 0.15 * lower
    wide_dir = np.zeros((40, 3), np.float32)
    wide_dir[:, 0] = -widen * np.cos(theta)
    a = np.abs(rng.normal(0, 1, n)).astype(np.float32) * scale
    a[: n // 5] = 0
    w = rng.normal(0, 1, n).astype(np.float32)
    lips = rest + a[:, None, None] * open_dir + w[:, None, None] * wide_dir
    image = np.full((n, M.IMAGE_H, M.IMAGE_W, 3), 150.0, np.float32)
    image[:, 5:10, 10:20] -= 40 * a[:, None, None, None]
    return lips, image, a


def test_aperture_definition():
    lips, _, a = synthetic_speaker(np.random.default_rng(0), widen=0.0)
    ap = M.aperture(lips)
    assert ap[:60].max() < 1e-6  # closed frames
    corners = np.linalg.norm(lips[0, M.LIPS.index(78), :2] - lips[0, M.LIPS.index(308), :2])
    assert np.allclose(ap, 0.15 * a / corners, atol=1e-5)  # the lower lip drops 0.15 a
    face = np.zeros((478, 3), np.float32)
    face[13], face[14], face[78], face[308] = (0, 0, 0), (0, 1, 0), (-1, 0.5, 0), (1, 0.5, 0)
    assert M.aperture(face[None])[0] == pytest.approx(0.5)


@pytest.mark.parametrize("kind", M.KINDS)
def test_basis_round_trip_closed_and_file(kind, tmp_path):
    rng = np.random.default_rng(1)
    speakers = [synthetic_speaker(rng, scale=s) for s in (0.8, 1.0, 1.3)]
    deltas = []
    for lips, images, _ in speakers:
        rest = M.speaker_rest(lips, images)
        deltas.append(M.mouth_deltas(lips, images, rest))
    basis = M.fit_basis(np.concatenate([d[0] for d in deltas]), np.concatenate([d[1] for d in deltas]), kind, 4)
    lips, images, a = synthetic_speaker(np.random.default_rng(9), scale=1.1)  # a new speaker
    rest = M.speaker_rest(lips, images)
    coeffs = basis.encode(*M.mouth_deltas(lips, images, rest))
    dec_lips, dec_img = basis.decode(coeffs, rest)
    gap = np.linalg.norm(dec_lips[:, M.LIPS.index(13)] - dec_lips[:, M.LIPS.index(14)], axis=-1)
    assert np.corrcoef(gap, a)[0, 1] > 0.98  # the opening survives every kind (pixels: through the darkening)
    if "lips" in kind:
        assert np.corrcoef(M.aperture(dec_lips), M.aperture(lips))[0, 1] > 0.99
    assert np.corrcoef(dec_img[:, 7, 15, 0], images[:, 7, 15, 0])[0, 1] > 0.98  # so does the darkening
    # the closed coefficients decode to this speaker's resting mouth (in the parts the basis holds)
    closed_lips, closed_img = basis.decode(basis.closed[None], rest)
    assert "lips" not in kind or np.abs(closed_lips[0] - rest.lips).max() < 1e-4
    assert "pixels" not in kind or np.abs(closed_img[0] - rest.image).max() < 0.05
    M.save_basis(tmp_path / "pca.pkl", basis)
    again = M.load_basis(tmp_path / "pca.pkl")
    assert again.kind == kind and np.allclose(again.encode(*M.mouth_deltas(lips, images, rest)), coeffs, atol=1e-5)


def test_bad_mouth_pca_files(tmp_path):
    rng = np.random.default_rng(2)
    lips, images, _ = synthetic_speaker(rng)
    rest = M.speaker_rest(lips, images)
    basis = M.fit_basis(*M.mouth_deltas(lips, images, rest), "lips", 3)
    path = tmp_path / "pca.pkl"
    M.save_basis(path, basis)
    d = load_pickle(path)
    d["decoder"] = d["decoder"][:2]  # shapes that disagree
    save_pickle(path, d)
    with pytest.raises(DhliveError, match="shapes disagree"):
        M.load_basis(path)
    save_pickle(path, {"format": "something else"})
    with pytest.raises(DhliveError, match="not a dhlive mouth PCA"):
        M.load_basis(path)
    with pytest.raises(ValueError, match="frames cannot fit"):
        M.fit_basis(*M.mouth_deltas(lips[:3], images[:3], rest), "lips", 6)
