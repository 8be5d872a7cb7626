"""Silence closes the mouth by construction: the speech gate, whatever the model's weights.

Covered by construction: digital or dithered silence, steady tones, hum, held notes.
Stationary noise louder than dither passes the gate and is left to the trained model
(measured by scripts/bench_audio.py, not here)."""

import numpy as np
import pytest
import torch

from dhlive.audio import inference as I
from dhlive.audio.model import AudioModel, AudioModelConfig
from dhlive.constants import SAMPLE_RATE

SECONDS = 3
T = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE


def untrained_model(seed=0):
    torch.manual_seed(seed)
    model = AudioModel(AudioModelConfig())
    model.closed.copy_(torch.linspace(-1, 1, model.config.n_coeffs))  # a closed mouth that is not zero
    return model.eval()


def held_notes():
    """An arpeggio with harmonics, 0.3 s per note: music without voice."""
    out = np.zeros_like(T)
    step = int(0.3 * SAMPLE_RATE)
    for k, semis in enumerate([0, 4, 7, 12, 7, 4, 0, 5, 9, 12]):
        seg = T[:step]
        f0 = 220 * 2 ** (semis / 12)
        out[k * step : (k + 1) * step] = sum(np.sin(2 * np.pi * f0 * h * seg) / h for h in range(1, 6)) * np.exp(
            -2 * seg
        )
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


SOUNDS = {
    "digital silence": lambda: np.zeros_like(T, dtype=np.float32),
    "dither at -80 dBFS": lambda: (np.random.default_rng(0).standard_normal(T.size) * 10 ** (-80 / 20)).astype(
        np.float32
    ),
    "440 Hz sine at -6 dBFS": lambda: (0.5 * np.sin(2 * np.pi * 440 * T)).astype(np.float32),
    "150 Hz sine at -20 dBFS": lambda: (0.1 * np.sin(2 * np.pi * 150 * T)).astype(np.float32),
    "mains hum": lambda: (0.05 * sum(np.sin(2 * np.pi * 50 * h * T) / h for h in range(1, 6))).astype(np.float32),
    "held notes": held_notes,
}


@pytest.mark.parametrize("sound", SOUNDS)
def test_non_speech_closes_the_mouth_whatever_the_weights(sound):
    model = untrained_model()
    out = I.predict(model, SOUNDS[sound]())
    closed = np.all(np.abs(out - model.closed.numpy()) < 1e-6, axis=1)
    assert closed.mean() >= 0.98, f"{sound}: mouth closed in only {closed.mean():.0%} of frames"


def test_speech_opens_the_gate(speech):
    model = untrained_model()
    raw, gated = I.predict(model, speech, gate=False), I.predict(model, speech)
    open_frames = np.abs(gated - model.closed.numpy()).max(1) > 0.5 * np.abs(raw - model.closed.numpy()).max(1)
    n = speech.size // 640
    loud = np.abs(speech[: n * 640]).reshape(n, 640).max(1) > 0.05
    assert loud.sum() > 20
    assert open_frames[:n][loud].mean() > 0.8  # while speaking, the model is heard


def test_gate_statistics_of_known_sounds():
    silent = I.row_statistics(I.silence_row()[None], I.silence_row()[:80])[0]
    assert silent[0] < I.ENERGY_CLOSED and silent[1:].max() == 0
    from dhlive.audio.features import fbank_features

    rows = fbank_features((0.5 * np.sin(2 * np.pi * 440 * T)).astype(np.float32))
    stats = I.row_statistics(rows[5:], rows[4, 80:])
    assert stats[:, 0].min() > I.ENERGY_OPEN  # loud...
    assert stats[:, 1:].max() < I.FLUX_CLOSED  # ...but not changing: not speech
    assert I.gate_from_statistics(stats[:5]) == 0.0
