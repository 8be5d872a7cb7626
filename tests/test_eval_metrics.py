import numpy as np
import pytest

from dhlive.metrics import articulation_ratio, best_lag, closed_fraction, jitter, pearson, shifted


def test_pearson_known_values():
    x = np.arange(50, dtype=float)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, np.ones(50)) == 0.0
    rng = np.random.default_rng(0)
    a, noise = rng.standard_normal(20000), rng.standard_normal(20000)
    assert pearson(a, a + noise) == pytest.approx(1 / np.sqrt(2), abs=0.02)  # known correlation


@pytest.mark.parametrize("lag", [-3, 0, 2, 5])
def test_best_lag_finds_a_known_delay(lag):
    real = np.random.default_rng(1).standard_normal(300)
    gen = np.roll(real, lag)  # gen[t + lag] = real[t]: generated comes `lag` frames late
    found, r = best_lag(gen, real, max_lag=6)
    assert found == lag and r > 0.99
    g, rr = shifted(gen, real, lag)
    assert len(g) == len(rr) == 300 - abs(lag)


def test_articulation_closed_and_jitter():
    real = np.sin(np.linspace(0, 20, 500))
    assert articulation_ratio(0.5 * real + 3, real) == pytest.approx(0.5)
    ap = np.r_[np.zeros(90), np.ones(10)]
    assert closed_fraction(ap, rest=0.0, low=0.0, high=1.0) == pytest.approx(0.9)
    line = np.stack([np.arange(10.0), np.zeros(10)], 1)  # constant velocity: no jitter
    assert jitter(line) == 0.0
    zigzag = line.copy()
    zigzag[::2, 1] = 1.0  # +-1 alternation: second difference of norm 2
    assert jitter(zigzag) == pytest.approx(2.0)


# --- audio ------------------------------------------------------------------------------------


def test_voice_activity_hears_speech_not_silence_or_a_tone(speech):
    from dhlive.metrics import voice_activity

    sr, fps = 16000, 25
    rng = np.random.default_rng(0)
    t = np.arange(sr) / sr
    parts = [rng.normal(0, 1e-4, sr), speech, rng.normal(0, 1e-4, sr), 0.3 * np.sin(2 * np.pi * 440 * t)]
    audio = np.concatenate(parts).astype(np.float32)
    edges = np.cumsum([0] + [len(p) for p in parts]) * fps // sr
    vad = voice_activity(audio, int(edges[-1]), fps, sr)
    assert not vad[edges[0] : edges[1] - 2].any()  # leading silence
    assert vad[edges[1] + 3 : edges[2] - 3].mean() > 0.7  # espeak speech (short pauses between words allowed)
    assert not vad[edges[2] + 3 : edges[3] - 2].any()  # silence again
    assert not vad[edges[3] + 1 : edges[4] - 1].any()  # a loud steady tone is not speech


def test_silence_frames_and_leak_count_only_real_pauses():
    from dhlive.metrics import silence_frames, silence_leak

    speech = np.r_[np.ones(20), np.zeros(5), np.ones(20), np.zeros(30), np.ones(5)].astype(bool)
    quiet = silence_frames(speech, guard=2, min_pause=10)
    assert not quiet[20:25].any()  # a 5-frame pause is part of speaking
    assert quiet[47:73].all() and quiet.sum() == 26  # the 30-frame pause less 2 frames each side
    ap = np.full(80, 0.05)
    ap[47:60] = 0.5  # open for 13 of the 26 judged frames
    assert silence_leak(ap, speech, threshold=0.1, guard=2, min_pause=10) == pytest.approx(0.5)
    assert np.isnan(silence_leak(ap, np.ones(80, bool), threshold=0.1))  # no silence: nothing to judge


def test_open_level_from_rest_and_range():
    from dhlive.metrics import MIN_OPEN_MARGIN, open_level

    ap = np.r_[np.zeros(10), np.linspace(0, 1, 90)]
    assert open_level(ap) == pytest.approx(0.0 + 0.1 * (np.percentile(ap, 95) - np.percentile(ap, 5)))
    assert open_level(np.full(50, 0.3)) == pytest.approx(0.3 + MIN_OPEN_MARGIN)  # a photo: no range


@pytest.mark.parametrize("lag", [-2, 0, 3])
def test_av_offset_finds_a_known_video_delay(lag):
    from dhlive.metrics import av_offset

    rng = np.random.default_rng(3)
    envelope = np.convolve(rng.standard_normal(400), np.ones(4) / 4, "same")
    aperture = np.roll(envelope, lag) + rng.normal(0, 0.05, 400)  # the mouth `lag` frames after the sound
    aperture[10:14] = np.nan  # a few frames without a face
    found, r = av_offset(aperture, envelope)
    assert found == lag and r > 0.8


# --- landmarks and images ------------------------------------------------------------------------


def _face(rng):
    lm = rng.uniform(100, 300, (478, 3))
    lm[33, :2], lm[263, :2] = (150, 150), (250, 150)  # eye corners 100 px apart
    return lm


def test_lip_distance_ignores_pose_and_measures_lip_offsets():
    from dhlive.facemesh import LIPS
    from dhlive.metrics import STABLE_POINTS, lip_distance

    rng = np.random.default_rng(4)
    real = _face(rng)
    a = np.deg2rad(12)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    gen = real.copy()
    gen[:, :2] = 1.3 * real[:, :2] @ rot.T + (40, -25)  # same face, moved, turned and scaled
    assert lip_distance(gen[None], real[None], LIPS)[0] == pytest.approx(0.0, abs=1e-9)
    moved = real.copy()
    moved[LIPS, 1] += 10.0  # every lip point 10 px lower: 0.1 eye-corner distances
    assert not set(LIPS) & set(STABLE_POINTS)
    gen2 = moved.copy()
    gen2[:, :2] = 1.3 * moved[:, :2] @ rot.T + (40, -25)
    assert lip_distance(gen2[None], real[None], LIPS)[0] == pytest.approx(0.1, abs=1e-6)
    nan_face = np.full_like(real, np.nan)
    assert np.isnan(lip_distance(nan_face[None], real[None], LIPS)[0])


def test_landmark_jitter_in_eye_distances():
    from dhlive.metrics import landmark_jitter

    rng = np.random.default_rng(5)
    base = _face(rng)
    steady = np.stack([base + (2.0 * t, 0, 0) for t in range(12)])  # constant velocity: no jitter
    assert landmark_jitter(steady, [1, 4, 6]) == pytest.approx(0.0, abs=1e-9)
    shaky = steady.copy()
    shaky[::2, :, 1] += 5.0  # +-5 px alternation: second difference 10 px = 0.1 eye distances
    assert landmark_jitter(shaky, [1, 4, 6]) == pytest.approx(0.1)
    shaky[5] = np.nan  # a lost face splits the track; the jitter of the pieces is unchanged
    assert landmark_jitter(shaky, [1, 4, 6]) == pytest.approx(0.1)


def test_changed_region_finds_a_pasted_patch():
    from dhlive.metrics import changed_region, seam_score

    rng = np.random.default_rng(6)
    ref = np.clip(rng.normal(120, 3, (200, 240, 3)), 0, 255).astype(np.uint8)
    assert not changed_region(ref, ref).any()
    gen = ref.copy()
    gen[80:160, 60:180] = np.clip(gen[80:160, 60:180].astype(int) + 30, 0, 255)  # a box pasted 30 levels brighter
    mask = changed_region(gen, ref)
    truth = np.zeros(mask.shape, bool)
    truth[80:160, 60:180] = True
    iou = (mask.astype(bool) & truth).sum() / (mask.astype(bool) | truth).sum()
    assert iou > 0.9
    assert seam_score(gen, mask)["colour_step"] > 10 > seam_score(ref, mask)["colour_step"]  # a visible box


def test_skin_tint_sees_a_hue_drift_but_not_shading_or_the_mouth():
    from dhlive.metrics import skin_tint

    rng = np.random.default_rng(7)
    skin = np.clip(rng.normal((200, 150, 130), 4, (200, 240, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((200, 240), np.float32)
    mask[60:180, 40:200] = 1.0
    mouth = (90.0, 100.0, 60.0)  # x0, y0, side
    assert skin_tint(skin, skin, mask, mouth) == pytest.approx(0.0, abs=1e-6)
    darker = (skin * 0.85).astype(np.uint8)  # a jaw in shadow: same hue
    orange = np.clip(skin.astype(int) + (12, 0, -15), 0, 255).astype(np.uint8)  # a reddish blotch
    assert skin_tint(darker, skin, mask, mouth) < 0.2 < 2.0 < skin_tint(orange, skin, mask, mouth)
    lips = skin.copy()
    lips[100:160, 90:150] = (150, 40, 60)  # a redrawn mouth is not the skin
    assert skin_tint(lips, skin, mask, mouth) < 0.5 < skin_tint(lips, skin, mask, None)


def test_mouth_crop_is_centred_on_the_lips():
    from dhlive.facemesh import LIPS
    from dhlive.metrics import crop_square, mouth_square

    lm = np.zeros((478, 3))
    lm[33, :2], lm[263, :2] = (100, 100), (200, 100)
    lm[LIPS, :2] = (150, 170)
    x0, y0, side = mouth_square(lm, LIPS)
    assert (x0 + side / 2, y0 + side / 2, side) == pytest.approx((150, 170, 90))
    img = np.zeros((300, 300, 3), np.uint8)
    img[165:175, 145:155] = 255  # a white dot on the lips
    crop = crop_square(img, (x0, y0, side), 90)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - 45) < 1.5 and abs(ys.mean() - 45) < 1.5


def test_checkerboard_sees_a_pixel_grid_and_not_detail_or_noise():
    import cv2
    from skimage import data

    from dhlive.metrics import checkerboard

    crop = cv2.resize(data.astronaut()[150:300, 150:300], (128, 128), interpolation=cv2.INTER_AREA)
    real = checkerboard(crop)
    yy, xx = np.mgrid[:128, :128]
    rng = np.random.default_rng(0)
    for pattern in ((xx + yy) % 2, (xx // 2 + yy // 2) % 2, xx % 2):  # period 2, period 4, stripes
        grid = np.clip(crop + 3.0 * (2 * pattern - 1)[..., None], 0, 255).astype(np.uint8)
        assert checkerboard(grid) > 10 * real
    noise = np.clip(crop + rng.normal(0, 4, crop.shape), 0, 255).astype(np.uint8)
    assert checkerboard(noise) < 2 * real  # random fine detail is not a grid
    assert checkerboard(cv2.GaussianBlur(crop, (0, 0), 1.5)) < real


def test_lip_colour_difference_sees_pale_lips_not_noise():
    import cv2
    from conftest import astronaut_frame

    from dhlive.data.landmarks import FaceLandmarker, face_model_path
    from dhlive.facemesh import LIPS_OUTER
    from dhlive.metrics import lip_colour_difference

    img = astronaut_frame()
    with FaceLandmarker(face_model_path(), max_faces=1, video=False) as lm:
        pts = lm.detect(img, 0)[0].landmarks
    lips = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(pts[LIPS_OUTER, :2]).astype(np.int32)], 1)
    pale = img.copy()
    pale[lips > 0] = (0.5 * pale[lips > 0] + 0.5 * np.array([200, 170, 180])).astype(np.uint8)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    assert lip_colour_difference(img, img, pts) == 0.0
    assert lip_colour_difference(noisy, img, pts) < 1.0
    assert lip_colour_difference(pale, img, pts) > 4.0
