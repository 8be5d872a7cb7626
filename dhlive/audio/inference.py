"""Running the audio model: on a whole recording, or live on 40 ms pieces with the LSTM
state carried. Both go through `MouthStream`, so their outputs are the same.

The speech gate makes silence close the mouth by construction, not by training luck: the
output of frame t is pulled to the closed-mouth coefficients unless the audio around t
(2 frames each side, within the model's look-ahead) is both loud enough and changing
like speech. Silence fails the loudness test; a steady tone, hum or held note fails the
change test (its spectrum does not move); speech passes both. What passes (speech, but
also noise or music) is left to the model, which is trained to close the mouth on noise
and music as well.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..errors import DhliveError
from ..formats import (
    AUDIO_MODEL_FILE,
    AUDIO_MODEL_FORMAT,
    MOUTH_PCA_FILE,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from ..mouth import MouthBasis, load_basis
from .features import FEATURE_DIM, N_MELS, FbankStream, fbank_features
from .model import AudioModel, AudioModelConfig

GATE_RADIUS = 2  # video frames each side of t the gate listens to (<= the model's look-ahead)
# loudness: log of the summed mel energies of a fbank frame (16-bit sample units); every 20 dB
# less is ln(100) = 4.6 less. White noise at -80 dBFS gives 14.9, at -70 dBFS 17.2; a
# full-scale sine 28.6; speech recorded at usual levels 20-29 (median 21-29 on real clips).
ENERGY_CLOSED, ENERGY_OPEN = 15.5, 17.0
# change: energy-weighted mean |difference| of log mel between fbank frames 20 ms apart,
# median over the window: 0 for a sine, about 0.1 for held notes, 0.36 for white noise,
# 0.65-1.15 for speech (docs/audio.md).
FLUX_CLOSED, FLUX_OPEN = 0.18, 0.30

_SILENCE_ROW = None


def silence_row() -> np.ndarray:
    """The feature row of pure silence: what the look-ahead sees past the end of speech."""
    global _SILENCE_ROW
    if _SILENCE_ROW is None:
        _SILENCE_ROW = fbank_features(np.zeros(640, np.float32))[0]
    return _SILENCE_ROW


def _ramp(x, lo, hi):
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def row_statistics(rows: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(k,160) feature rows -> (k,3): loudness and the spectral change into each of the two fbank
    frames of a row. `previous` is the fbank frame (80) before the first row."""
    frames = rows.reshape(-1, N_MELS)
    seq = np.concatenate([previous[None], frames])
    energy = np.logaddexp.reduce(frames, axis=1).reshape(-1, 2).max(1)
    p = np.exp(seq - seq.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    flux = ((0.5 * (p[1:] + p[:-1])) * np.abs(np.diff(seq, axis=0))).sum(1).reshape(-1, 2)
    return np.concatenate([energy[:, None], flux], 1)


def gate_from_statistics(window: np.ndarray) -> float:
    """(2*GATE_RADIUS+1, 3) row statistics around frame t -> how far its mouth may open, 0..1."""
    return float(
        _ramp(window[:, 0].max(), ENERGY_CLOSED, ENERGY_OPEN) * _ramp(np.median(window[:, 1:]), FLUX_CLOSED, FLUX_OPEN)
    )


class MouthStream:
    """push() audio pieces, get the mouth coefficients of the video frames now decided.

    Frame t is decided once frame t + lookahead has been heard; finish() decides the rest
    as if silence followed. gate=False gives the raw model output (for training checks).
    """

    def __init__(self, model: AudioModel, gate: bool = True):
        if model.config.lookahead < GATE_RADIUS:
            raise ValueError(f"the speech gate needs a look-ahead of at least {GATE_RADIUS} frames")
        self.model = model.eval()
        self.gate = gate
        self.features = FbankStream()
        self.state = None
        self.lookahead = model.config.lookahead  # the first outputs belong to no frame
        self.rows_seen = 0
        silent = row_statistics(silence_row()[None], silence_row()[:N_MELS])[0]
        # statistics of rows t - GATE_RADIUS .. t + lookahead, t the frame being decided
        self.stats = deque([silent] * GATE_RADIUS, maxlen=GATE_RADIUS + 1 + self.lookahead)
        self.last_fbank = silence_row()[:N_MELS]
        self.closed = model.closed.detach().cpu().numpy()

    @torch.inference_mode()
    def _run(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, self.model.config.n_coeffs), np.float32)
        out, self.state = self.model(torch.from_numpy(np.ascontiguousarray(rows, np.float32))[None], self.state)
        out = out[0].float().cpu().numpy()
        # a model fitted with L1 moves an unheard voice's mouth less than the real one moves
        # (it hedges towards the mean); its gain restores the amplitude, r is unchanged
        out = self.closed + self.model.config.gain * (out - self.closed)
        first = self.rows_seen  # global index of rows[0]; output row n belongs to frame n - lookahead
        self.rows_seen += len(rows)
        if self.gate:
            stats = row_statistics(rows, self.last_fbank)
            self.last_fbank = rows[-1, N_MELS:]
            for i, s in enumerate(stats):
                self.stats.append(s)  # now rows (frame - GATE_RADIUS) .. (frame + lookahead) when full
                if first + i >= self.lookahead:
                    g = gate_from_statistics(np.asarray(self.stats)[: 2 * GATE_RADIUS + 1])
                    out[i] = self.closed + g * (out[i] - self.closed)
        return out[max(0, self.lookahead - first) :]

    def push(self, audio: np.ndarray) -> np.ndarray:
        return self._run(self.features.push(audio))

    def finish(self) -> np.ndarray:
        tail = np.tile(silence_row(), (self.model.config.lookahead, 1)).reshape(-1, FEATURE_DIM)
        return self._run(np.concatenate([self.features.finish(), tail]))


def predict(model: AudioModel, audio: np.ndarray, gate: bool = True) -> np.ndarray:
    """(n_frames, n_coeffs) mouth coefficients for a whole 16 kHz mono recording."""
    stream = MouthStream(model, gate)
    return np.concatenate([stream.push(audio), stream.finish()])


def save_audio_model(path: Path, model: AudioModel, basis_path: Path, info: dict) -> None:
    save_checkpoint(
        path,
        AUDIO_MODEL_FORMAT,
        {
            "config": asdict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "mouth_pca_sha256": file_sha256(basis_path),
            "info": info,
        },
    )


def load_audio_model(folder: str | os.PathLike) -> tuple[AudioModel, MouthBasis]:
    """An audio model and the mouth PCA beside it, checked to belong together."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DhliveError(f"{folder}: no such audio model folder")
    ck = load_checkpoint(folder / AUDIO_MODEL_FILE, AUDIO_MODEL_FORMAT)
    basis_path = folder / MOUTH_PCA_FILE
    basis = load_basis(basis_path)
    if ck.get("mouth_pca_sha256") != file_sha256(basis_path):
        raise DhliveError(f"{folder}: {MOUTH_PCA_FILE} is not the mouth PCA {AUDIO_MODEL_FILE} was trained with")
    try:
        config = AudioModelConfig(**ck["config"])
        model = AudioModel(config)
        model.load_state_dict(ck["state_dict"])
    except (TypeError, RuntimeError, KeyError) as e:
        raise DhliveError(
            f"{folder / AUDIO_MODEL_FILE}: does not fit this dhlive's audio model ({str(e).splitlines()[0][:120]})"
        ) from None
    if config.n_coeffs != basis.n_coeffs:
        raise DhliveError(
            f"{folder}: model predicts {config.n_coeffs} coefficients but the mouth PCA has {basis.n_coeffs}"
        )
    return model.eval(), basis
