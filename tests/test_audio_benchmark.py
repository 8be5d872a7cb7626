"""The audio benchmark's split by source and its two baselines, on generated speech."""

import numpy as np

from dhlive.audio import baselines as B
from dhlive.audio.clips import Clip, source_folds, source_of
from dhlive.audio.features import fbank_features
from dhlive.mouth import MouthRest
from dhlive.speech import synthesize

SENTENCES = [
    "Hello there, how are you today?",
    "We could walk down to the river tonight.",
    "Mama and papa sat by the open window.",
    "Nobody knows where the blue boat went.",
    "Five big apples fell from the old tree.",
    "Please call me back after lunch.",
]


def test_source_split_never_puts_a_source_or_a_recording_on_both_sides():
    names = ["A__1", "A__2", "B__1", "B__2", "B__3", "C__1", "D__1", "D__2"]
    sources = [source_of(n) for n in names]
    assert sources == ["A", "A", "B", "B", "B", "C", "D", "D"]
    recordings = [{0}, {1, 5}, {2}, {3}, {4}, {6}, {7}]  # A__2 and C__1 are one recording
    folds = source_folds(sources, recordings)
    assert [f.source for f in folds] == ["A", "B", "C", "D"]
    for f in folds:
        assert set(f.held) == {i for i, s in enumerate(sources) if s == f.source}
        assert not {sources[i] for i in f.train} & {f.source}
        assert not set(f.train) & set(f.held)
        shared = {j for g in recordings for i in f.held if i in g for j in g}
        assert not set(f.train) & shared
    by = {f.source: f for f in folds}
    assert 5 not in by["A"].train and 1 not in by["C"].train  # the shared recording is on one side only
    assert set(by["B"].train) == {0, 1, 5, 6, 7}


def speaking_clip(name, text, rng, gain):
    """A clip whose mouth opens with the loudness of its speech (and jitter), like a talker's."""
    pause = np.zeros(4000, np.float32)
    audio = np.concatenate([pause, synthesize(text, words_per_minute=170), pause]) * gain
    feats = fbank_features(audio)
    loud = np.logaddexp.reduce(feats.reshape(-1, 2, 80).mean(1), axis=1)
    lo, hi = np.percentile(loud, [10, 95])
    level = np.clip((loud - lo) / (hi - lo), 0, 1)
    n = len(feats)
    lips = np.zeros((n, 40, 3), np.float32)
    lips[:, 20 + 15, 1] = -0.05  # inner upper lip (13)
    lips[:, 20 + 5, 1] = 0.05 + 0.3 * level + 0.02 * rng.standard_normal(n)  # inner lower lip (14)
    lips[:, 20, 0], lips[:, 30, 0] = -0.4, 0.4  # inner corners 78, 308
    rest = MouthRest(lips[0], np.zeros((15, 30, 3), np.float32), 4.0, (0.0, 1.0))
    return Clip(name, audio, np.arange(n), lips, None, rest)


def test_baselines_learn_from_the_training_folds_only():
    rng = np.random.default_rng(0)
    clips = [
        speaking_clip(f"{s}__{k}", SENTENCES[(2 * i + k) % len(SENTENCES)], rng, g)
        for i, (s, g) in enumerate([("A", 0.3), ("B", 1.0), ("C", 0.6)])
        for k in range(2)
    ]
    sources = [source_of(c.name) for c in clips]
    fold = source_folds(sources, [{i} for i in range(len(clips))])[0]
    train, held = [clips[i] for i in fold.train], [clips[i] for i in fold.held]
    ridge, alpha = B.ridge_baseline(train, [sources[i] for i in fold.train], held)
    energy = B.energy_baseline(train, held)
    assert alpha in B.ALPHAS and len(ridge) == len(energy) == len(held) == 2
    for c, r, e in zip(held, ridge, energy):
        assert r.shape == e.shape == c.aperture.shape
        assert np.corrcoef(r, c.aperture)[0, 1] > 0.6 and np.corrcoef(e, c.aperture)[0, 1] > 0.6
    # fitted on clips whose mouth does not follow the sound, the ridge predicts nothing of it
    shuffled = [Clip(c.name, c.audio, c.frames, c.lips[rng.permutation(len(c.lips))], None, c.rest) for c in train]
    ridge, _ = B.ridge_baseline(shuffled, [sources[i] for i in fold.train], held)
    assert max(abs(np.corrcoef(r, c.aperture)[0, 1]) for r, c in zip(ridge, held)) < 0.4
