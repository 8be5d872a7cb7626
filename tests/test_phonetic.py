"""Phoneme timings from espeak-ng and the visible articulation they give each video frame."""

import numpy as np
import pytest

from dhlive.audio.features import fbank_features
from dhlive.audio.phonetic import FEATURES, frame_targets, phoneme_span
from dhlive.speech import synthesize_phonemes

OPEN, CLOSURE, SPEAKING = (FEATURES.index(k) for k in ("open", "closure", "speaking"))


def test_symbols_map_to_mouth_shapes():
    assert phoneme_span("ˈa")[0][OPEN] == 1.0  # stress marks are skipped
    assert phoneme_span("ä")[0][OPEN] == 1.0  # so are diacritics (Japanese 'ä')
    assert phoneme_span("m")[0][CLOSURE] == 1.0 and phoneme_span("m")[0][OPEN] == 0.0
    start, end = phoneme_span("aʊ")  # a diphthong glides from open to rounded
    assert start[OPEN] > end[OPEN] and end[FEATURES.index("round")] > start[FEATURES.index("round")]
    assert phoneme_span("") is None and phoneme_span("h") is None and phoneme_span("ˈ") is None


def test_frame_targets_follow_the_timings():
    events = [(0.0, ""), (0.2, "m"), (0.4, "a"), (0.6, "h"), (0.8, "i"), (1.0, ""), (1.2, "")]
    a = frame_targets(events, 30)
    assert a[:3, SPEAKING].max() < 0.05 and a[-3:, SPEAKING].max() < 0.05  # pauses (past the blend)
    assert a[7, CLOSURE] > 0.9 and a[12, OPEN] > 0.9  # frames 5-9 are /m/, 10-14 /a/
    assert np.allclose(a[17], a[22], atol=0.1)  # /h/ already shows the /i/ after it


@pytest.mark.parametrize(
    "voice, text", [("en", "Mama, please pass the apple."), ("de", "Bitte ein Apfel, Mama."), ("cmn", "妈妈，你好。")]
)
def test_espeak_timings_match_its_audio(voice, text):
    """Frames labelled as speech are louder than those labelled as pauses: timings and
    audio share one clock, in every language."""
    audio, phonemes = synthesize_phonemes(text, voice, 150)
    assert phonemes and all(0 <= t <= len(audio) / 16000 + 0.05 for t, _ in phonemes)
    assert [t for t, _ in phonemes] == sorted(t for t, _ in phonemes)
    padded = np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(8000, np.float32)])
    feats = fbank_features(padded)
    a = frame_targets([(t + 0.5, p) for t, p in phonemes], len(feats))
    loud = feats[:, :80].max(1)
    speaking, pause = a[:, SPEAKING] > 0.9, a[:, SPEAKING] < 0.1
    assert speaking.sum() > 10 and pause.sum() > 10
    assert np.median(loud[speaking]) > np.median(loud[pause]) + 3


def test_corpus_file_round_trip_and_errors(tmp_path):
    from dhlive.errors import DhliveError
    from dhlive.formats import load_phonetic_corpus, save_phonetic_corpus

    items = [
        (np.full((30, 160), 1.5, np.float32), np.full((30, 6), 0.25, np.float32)),
        (np.zeros((12, 160), np.float32), np.ones((12, 6), np.float32)),
    ]
    save_phonetic_corpus(tmp_path / "c.npz", {"seconds": 2.0, "seed": 1}, items)
    meta, back = load_phonetic_corpus(tmp_path / "c.npz")
    assert meta["seed"] == 1 and [len(f) for f, _ in back] == [30, 12]
    assert all(np.array_equal(f, g) and np.array_equal(a, b) for (f, a), (g, b) in zip(items, back))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DhliveError, match="bad.npz: not readable"):
        load_phonetic_corpus(tmp_path / "bad.npz")
    np.savez(
        tmp_path / "other.npz",
        meta=np.frombuffer(b'{"format": "x"}', np.uint8),
        features=np.zeros((1, 1)),
        articulation=np.zeros((1, 1)),
        lengths=np.ones(1, np.int64),
    )
    with pytest.raises(DhliveError, match="not a dhlive phonetic corpus"):
        load_phonetic_corpus(tmp_path / "other.npz")


@pytest.mark.parametrize(
    "voice, text",
    [
        ("en", "Mama, papa, bob and mom. Papa, mama!"),
        ("en+m3", "Mama, papa, bob and mom."),
        ("de", "Mama und Papa am Abend."),
    ],
)
def test_shipped_audio_model_opens_for_open_vowels_and_closes_for_lips(face_avatar, voice, text):
    """End to end on speech with known phonemes: the shipped model's mouth follows the
    opening of each sound (r about 0.8; 0.5-0.68 before it learned from synthetic speech)
    and is more open in /a/ than in /m p b/."""
    from dhlive.audio.inference import load_audio_model, predict
    from dhlive.facemesh import aperture
    from dhlive.formats import SHIPPED_AUDIO_MODEL, load_avatar
    from dhlive.mouth import avatar_mouth

    model, basis = load_audio_model(SHIPPED_AUDIO_MODEL)
    audio, phonemes = synthesize_phonemes(text, voice, 140)
    rest = avatar_mouth(load_avatar(face_avatar), True)[2]  # the astronaut's mouth
    lips, _ = basis.decode(predict(model, audio), rest)
    ap = aperture(lips)
    a = frame_targets(phonemes, len(ap))
    assert np.corrcoef(ap, a[:, OPEN])[0, 1] > 0.6
    assert ap[a[:, OPEN] > 0.8].mean() > ap[a[:, CLOSURE] > 0.8].mean() + 0.05


def test_a_pitch_given_to_one_call_does_not_carry_into_the_next():
    """espeak-ng keeps its pitch settings between calls: a call without them gets the voice's own."""
    import librosa

    def f0(x):
        return np.nanmedian(librosa.pyin(x, fmin=60, fmax=500, sr=16000)[0])

    text = "Mama, papa, bob and mom."
    before = f0(synthesize_phonemes(text, "en", 140)[0])
    high = f0(synthesize_phonemes(text, "en", 140, pitch=95, pitch_range=100)[0])
    after = f0(synthesize_phonemes(text, "en", 140)[0])
    assert high > 1.3 * before and abs(after - before) < 0.05 * before
