"""Running the audio model: on a whole recording, or live on 40 ms pieces with the LSTM
state carried. Both go through `MouthStream`, so their outputs are the same."""

from __future__ import annotations

import numpy as np
import torch

from .features import FEATURE_DIM, FbankStream, fbank_features
from .model import AudioModel

_SILENCE_ROW = None


def silence_row() -> np.ndarray:
    """The feature row of pure silence: what the look-ahead sees past the end of speech."""
    global _SILENCE_ROW
    if _SILENCE_ROW is None:
        _SILENCE_ROW = fbank_features(np.zeros(640, np.float32))[0]
    return _SILENCE_ROW


class MouthStream:
    """push() audio pieces, get the mouth coefficients of the video frames now decided.

    Frame t is decided once frame t + lookahead has been heard; finish() decides the rest
    as if silence followed.
    """

    def __init__(self, model: AudioModel):
        self.model = model.eval()
        self.features = FbankStream()
        self.state = None
        self.skip = model.config.lookahead  # the first outputs belong to no frame

    @torch.inference_mode()
    def _run(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, self.model.config.n_coeffs), np.float32)
        out, self.state = self.model(torch.from_numpy(np.ascontiguousarray(rows, np.float32))[None], self.state)
        out = out[0].numpy()
        drop = min(self.skip, len(out))
        self.skip -= drop
        return out[drop:]

    def push(self, audio: np.ndarray) -> np.ndarray:
        return self._run(self.features.push(audio))

    def finish(self) -> np.ndarray:
        tail = np.tile(silence_row(), (self.model.config.lookahead, 1)).reshape(-1, FEATURE_DIM)
        return self._run(np.concatenate([self.features.finish(), tail]))


def predict(model: AudioModel, audio: np.ndarray) -> np.ndarray:
    """(n_frames, n_coeffs) mouth coefficients for a whole 16 kHz mono recording."""
    stream = MouthStream(model)
    return np.concatenate([stream.push(audio), stream.finish()])
