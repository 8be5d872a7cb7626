"""The renderer's inputs: window geometry, prompt, sketches, paste-back mask, composite."""

import numpy as np
import pytest

from dhlive import mouth as M
from dhlive.facemesh import LIPS, NOSE_LOWER
from dhlive.formats import load_avatar
from dhlive.media import SourceFrames
from dhlive.render import inputs as I
from dhlive.render.model import REFERENCE_CHANNELS, SOURCE_CHANNELS

SIZE = 128


@pytest.fixture(scope="module")
def astro(face_avatar):
    avatar = load_avatar(face_avatar)
    lips, images, rest = M.avatar_mouth(avatar)
    return avatar, lips, images, rest, I.face_window(avatar.lower_face, rest.lips, SIZE)


def test_window_maps_landmarks_where_the_frame_has_them(astro):
    avatar, _, _, _, window = astro
    for i in (0, 17, 40):
        c2w = window.canonical_to_window(avatar.pose[i])
        in_window = I.project(avatar.canonical[i], c2w)
        back = np.c_[in_window, np.ones(len(in_window))] @ window.to_source(avatar.pose[i]).T
        # the window plane is exact; other depths follow the pose's parallax, so the lips land
        # within a pixel of where the detector put them in the source frame
        err = np.linalg.norm(back[M.LIPS] - avatar.pixels[i][M.LIPS, :2], axis=1)
        assert np.median(err) < 1.0, err
    lips_w = I.project(avatar.canonical[0][M.LIPS], window.canonical_to_window(avatar.pose[0]))
    assert (lips_w > 0).all() and (lips_w < SIZE).all()  # the mouth is inside the window


def test_the_window_is_cut_from_the_source_frame_at_the_face(astro):
    avatar, _, _, _, window = astro
    source = SourceFrames(avatar)
    try:
        win = I.cut_window(source[5], window.to_source(avatar.pose[5]), SIZE)
    finally:
        source.close()
    assert win.shape == (SIZE, SIZE, 3) and win.dtype == np.uint8
    # the astronaut's lower face is skin, not the dark background: the window is on the face
    assert win[SIZE // 3 : 2 * SIZE // 3, SIZE // 3 : 2 * SIZE // 3].mean() > 90


def test_paste_mask_never_reaches_outside_the_repaint_region():
    square = np.array([[30, 30], [100, 30], [100, 110], [30, 110]], np.float32)
    repaint = I.repaint_mask(square, SIZE)
    paste = I.paste_mask(repaint)
    assert paste[repaint == 0].max() == 0
    assert paste[70, 65] == pytest.approx(1.0, abs=1e-3)  # the middle is fully repainted
    assert 0 < paste[70, 32] < 1  # and the edge is feathered, not a box
    rng = np.random.default_rng(0)
    window, generated = rng.random((SIZE, SIZE, 3)), rng.random((SIZE, SIZE, 3))
    out = I.composite(generated, window, paste[..., None])
    outside = repaint == 0
    assert np.array_equal(out[outside], window[outside])
    assert not np.allclose(out[~outside], window[~outside])


def test_paste_back_keeps_the_real_nose(astro):
    avatar, _, _, _, window = astro
    c2w = window.canonical_to_window(avatar.pose[0])
    landmarks = I.project(avatar.canonical[0], c2w)
    repaint = I.repaint_mask(I.project(avatar.lower_face, c2w), SIZE)
    nose = I.nose_row(landmarks, SIZE)
    nostrils, lips = landmarks[NOSE_LOWER, 1].max(), landmarks[LIPS, 1].min()
    assert nose < lips - I.LIP_CLEARANCE * SIZE + 1e-6  # the feather is done before the upper lip
    assert nose < nostrils + I.NOSE_MARGIN * SIZE + 1e-6  # and nothing under the nose is kept real
    assert repaint[: int(nose)].max() > 0  # the repaint polygon itself covers the nostrils
    paste = I.paste_mask(repaint, keep_above=nose)
    assert paste[: int(np.ceil(nose))].max() == 0  # the nose stays real
    assert paste.max() == pytest.approx(1.0, abs=1e-3)  # the mouth is repainted
    assert (paste <= I.paste_mask(repaint) + 1e-6).all()
    # a short upper lip: the line rises so that the feather still ends above the lips
    short = landmarks.copy()
    short[NOSE_LOWER, 1] = landmarks[LIPS, 1].min() - 2
    line = I.nose_row(short, SIZE)
    assert line <= short[LIPS, 1].min() - I.LIP_CLEARANCE * SIZE + 1e-6
    x, y = np.round(short[LIPS]).astype(int).T
    assert I.paste_mask(repaint, keep_above=line)[y, x].min() > 0.9


def synthetic_basis(images, rest):
    """A mouth PCA fitted on made-up motion: the lower lip dropping (opening) and the corners
    spreading, so one coefficient direction is known to open the mouth."""
    rng = np.random.default_rng(0)
    open_dir = np.zeros((40, 3), np.float32)
    open_dir[[*range(1, 10), *range(21, 30)], 1] = 0.1  # lower outer and inner lip move down
    wide_dir = np.zeros((40, 3), np.float32)
    wide_dir[[0, 20], 0], wide_dir[[10, 30], 0] = -0.05, 0.05
    a, w = rng.uniform(0, 1, (200, 1)), rng.normal(0, 1, (200, 1))
    dl = (a * open_dir.reshape(1, -1) + w * wide_dir.reshape(1, -1) + rng.normal(0, 1e-3, (200, 120))).astype(
        np.float32
    )
    di = (a * rng.normal(0, 1, (1, images[0].size)) + rng.normal(0, 0.1, (200, images[0].size))).astype(np.float32)
    return M.fit_basis(dl, di, "lips+pixels", n_coeffs=3), open_dir


def test_prompt_and_sketch_follow_the_coefficients(astro):
    avatar, lips, images, rest, window = astro
    basis, open_dir = synthetic_basis(images, rest)
    c2w = window.canonical_to_window(avatar.pose[0])
    prompt, sketch, lips_closed = I.mouth_prompt(basis.closed, basis, rest, c2w, SIZE)
    assert prompt.shape == (SIZE, SIZE, 3) and sketch.shape == (SIZE, SIZE)
    assert prompt.min() >= 0 and prompt.max() <= 1 and sketch.max() > 0.9
    # the prompt lies around the mouth only
    ys, xs = np.nonzero(prompt.sum(-1) > 0.05)
    centre = lips_closed.mean(0)
    assert abs(xs.mean() - centre[0]) < SIZE * 0.08 and abs(ys.mean() - centre[1]) < SIZE * 0.12
    # the coefficients of an open mouth draw a wider aperture, and a different sketch
    opened = basis.encode(open_dir.reshape(1, -1), np.zeros((1, images[0].size), np.float32))[0]
    _, sketch_open, lips_open = I.mouth_prompt(opened, basis, rest, c2w, SIZE)
    assert M.aperture(lips_open[None])[0] > M.aperture(lips_closed[None])[0] + 0.1
    assert np.abs(sketch_open - sketch).sum() > 50


def test_source_and_reference_layouts(astro):
    avatar, *_, window = astro
    win = np.full((SIZE, SIZE, 3), 200, np.uint8)
    repaint = I.repaint_mask(np.array([[20, 60], [108, 60], [64, 120]], np.float32), SIZE)
    src = I.source_input(win, repaint, np.zeros((SIZE, SIZE, 3), np.float32), np.zeros((SIZE, SIZE), np.float32))
    assert src.shape == (SOURCE_CHANNELS, SIZE, SIZE)
    assert src[:3, 100, 64].max() == 0 and src[:3, 10, 10].min() == pytest.approx(
        200 / 255
    )  # only the region is blacked out
    lm = I.project(avatar.canonical[:2], window.canonical_to_window(avatar.pose[0]))
    refs = I.reference_input(np.stack([win, win]), lm)
    assert refs.shape == (2 * REFERENCE_CHANNELS, SIZE, SIZE)
    assert refs[3].max() > 0.9  # the landmark sketch is drawn
