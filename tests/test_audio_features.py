import numpy as np
import pytest

from dhlive.audio import features as F


def test_streaming_in_40ms_pieces_equals_whole_file(speech):
    whole = F.fbank_features(speech)
    stream = F.FbankStream()
    rows = [stream.push(speech[i : i + F.SAMPLES_PER_FRAME]) for i in range(0, speech.size, F.SAMPLES_PER_FRAME)]
    rows.append(stream.finish())
    assert np.array_equal(np.concatenate(rows), whole)
    # every 40 ms chunk after the first completes exactly one video frame: bounded latency
    assert all(len(r) == 1 for r in rows[1:-1])


def test_uneven_pieces_equal_too(speech):
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(speech.size, 40, replace=False))
    stream = F.FbankStream()
    rows = [stream.push(p) for p in np.split(speech, cuts)] + [stream.finish()]
    assert np.array_equal(np.concatenate(rows), F.fbank_features(speech))


@pytest.mark.parametrize("n", [1, 639, 640, 641, 16000, 16001])
def test_one_row_per_video_frame(n):
    feats = F.fbank_features(np.zeros(n, np.float32))
    assert feats.shape == (F.n_video_frames(n), F.FEATURE_DIM) == (-(-n // 640), 160)


def test_features_see_speech_and_silence(speech):
    feats = F.fbank_features(np.r_[np.zeros(8000, np.float32), speech])
    energy = feats[:, : F.N_MELS].mean(1)
    assert energy[:10].std() < 1e-3  # silence is constant
    assert energy[15:].max() - energy[:10].max() > 5  # speech is far louder (log scale)
    # the two halves of a row are the two 20 ms steps of that frame: they differ in speech
    assert not np.allclose(feats[20, :80], feats[20, 80:])


def test_onset_lands_on_its_video_frame():
    audio = np.zeros(16000, np.float32)
    audio[8000:] = 0.3 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000)  # starts at 0.5 s = frame 12.5
    energy = F.fbank_features(audio)[:, : F.N_MELS].mean(1)
    first_loud = int(np.argmax(energy > energy[0] + 3))
    assert first_loud in (12, 13)
