"""The audio model: fbank rows -> mouth coefficients, DH_live's LSTM, read top to bottom.

    160 fbank values per video frame
      -> Linear 160-80, BatchNorm, LeakyReLU, Linear 80-80          (per frame)
      -> LSTM, 2 layers of 192                                       (through time)
      -> Linear 192-256, BN, LeakyReLU, Linear 256-256, BN, LeakyReLU, Linear 256-6

With 6 outputs it has DH_live's 644,166 parameters (8 by default: 644,680). The LSTM is one-directional,
so the model can run live; it sees `lookahead` frames of future audio by emitting the
coefficients of frame t once frame t + lookahead has been heard (160 ms by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import number
from ..constants import LOOKAHEAD_FRAMES
from .features import FEATURE_DIM


@dataclass(frozen=True)
class AudioModelConfig:
    feature_dim: int = FEATURE_DIM
    frame_dim: int = 80  # per-frame encoder width
    lstm_dim: int = 192
    lstm_layers: int = 2
    head_dim: int = 256
    n_coeffs: int = 8  # mouth coefficients predicted per frame (DH_live: 6)
    lookahead: int = LOOKAHEAD_FRAMES  # video frames of future audio heard before a frame is decided
    dropout: float = 0.2  # between the LSTM layers, in training only
    gain: float = 1.0  # in use, the motion away from the closed mouth is scaled by this (see inference.py)

    def __post_init__(self):
        for name in "feature_dim frame_dim lstm_dim lstm_layers head_dim n_coeffs".split():
            number(f"model {name}", getattr(self, name), low=1, integer=True)
        number("model lookahead", self.lookahead, low=0, high=25, integer=True)
        number("model dropout", self.dropout, low=0, high=0.9)
        number("model gain", self.gain, low=0.5, high=3)


class AudioModel(nn.Module):
    def __init__(self, config: AudioModelConfig = AudioModelConfig()):
        super().__init__()
        c = self.config = config
        self.frame_encoder = nn.Sequential(
            nn.Linear(c.feature_dim, c.frame_dim),
            nn.BatchNorm1d(c.frame_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(c.frame_dim, c.frame_dim),
        )
        self.lstm = nn.LSTM(
            c.frame_dim,
            c.lstm_dim,
            num_layers=c.lstm_layers,
            batch_first=True,
            dropout=c.dropout if c.lstm_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(
            nn.Linear(c.lstm_dim, c.head_dim),
            nn.BatchNorm1d(c.head_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(c.head_dim, c.head_dim),
            nn.BatchNorm1d(c.head_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(c.head_dim, c.n_coeffs),
        )
        # the coefficients of the closed, resting mouth (set from the mouth PCA at training):
        # what the speech gate pulls the output to when nobody speaks
        self.register_buffer("closed", torch.zeros(c.n_coeffs))

    def hear(self, feats: torch.Tensor, state=None):
        """feats (B, T, 160) -> what the LSTM heard (B, T, lstm_dim), and its state to carry on."""
        b, t, _ = feats.shape
        x = self.frame_encoder(feats.reshape(b * t, -1)).reshape(b, t, -1)
        return self.lstm(x, state)

    def forward(self, feats: torch.Tensor, state=None):
        """feats (B, T, 160) -> coefficients (B, T, n_coeffs) and the LSTM state to carry on.

        Output row t belongs to video frame t - lookahead (the caller shifts; see inference.py).
        """
        x, state = self.hear(feats, state)
        return self.mouth(x), state

    def mouth(self, heard: torch.Tensor) -> torch.Tensor:
        """LSTM output (B, T, lstm_dim) -> coefficients (B, T, n_coeffs)."""
        b, t, _ = heard.shape
        return self.head(heard.reshape(b * t, -1)).reshape(b, t, -1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
