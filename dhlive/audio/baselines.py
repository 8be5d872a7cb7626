"""Two baselines the audio model must beat on the same folds: a ridge regression from log-mel
to the mouth aperture, and the frame's loudness alone.

Both are fitted on training clips and scored on held-out ones exactly as the model is:
Pearson r of the predicted and the real aperture per clip, at lag 0 and at the best lag.

    ridge   the 80 log-mel bins of frames t-2..t+2 (400 values, standardised on the training
            clips) -> aperture, the penalty chosen by cross-validation that holds out one
            training source at a time
    energy  the frame's log mel energy -> aperture (a line fitted on the training clips)
"""

from __future__ import annotations

import numpy as np

from ..metrics import pearson
from .clips import Clip
from .features import N_MELS

CONTEXT = 2  # frames either side of t the ridge sees
ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)  # ridge penalties tried (times the number of frames / 1000)


def log_mel(clip: Clip) -> np.ndarray:
    """(n_timeline, 80) log-mel per video frame: the mean of its two fbank frames."""
    return clip.features().reshape(-1, 2, N_MELS).mean(1)


def context_rows(mel: np.ndarray, frames: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """(len(frames), 80 * (2 context + 1)): each frame's log-mel with its neighbours (edges repeated)."""
    pad = np.pad(mel, ((context, context), (0, 0)), mode="edge")
    stacked = np.concatenate([pad[k : k + len(mel)] for k in range(2 * context + 1)], 1)
    return stacked[np.clip(frames, 0, len(mel) - 1)]


def frame_energy(clip: Clip) -> np.ndarray:
    """(N,) log mel energy at the clip's frames."""
    mel = log_mel(clip)
    energy = np.logaddexp.reduce(mel, axis=1)
    return energy[np.clip(clip.frames, 0, len(mel) - 1)]


class Ridge:
    """Ridge regression with standardised inputs; `alpha` scales with the number of rows."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Ridge":
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mu) / self.sd
        self.y0 = float(y.mean())
        gram = xs.T @ xs + self.alpha * len(xs) / 1000 * np.eye(xs.shape[1])
        self.w = np.linalg.solve(gram, xs.T @ (y - self.y0))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mu) / self.sd) @ self.w + self.y0


def choose_alpha(xs: list[np.ndarray], ys: list[np.ndarray], groups: list[str]) -> float:
    """The penalty with the best mean r over the training clips when each group (source) is held
    out in turn; with one group only, the middle of ALPHAS."""
    names = sorted(set(groups))
    if len(names) < 2:
        return ALPHAS[len(ALPHAS) // 2]
    scores = []
    for alpha in ALPHAS:
        rs = []
        for g in names:
            train = [i for i, h in enumerate(groups) if h != g]
            model = Ridge(alpha).fit(np.concatenate([xs[i] for i in train]), np.concatenate([ys[i] for i in train]))
            rs += [pearson(model.predict(xs[i]), ys[i]) for i, h in enumerate(groups) if h == g]
        scores.append(np.mean(rs))
    return ALPHAS[int(np.argmax(scores))]


def ridge_baseline(train: list[Clip], groups: list[str], held: list[Clip]) -> tuple[list[np.ndarray], float]:
    """Predicted apertures of the held-out clips (at their frames), and the penalty chosen."""
    xs = [context_rows(log_mel(c), c.frames) for c in train]
    ys = [c.aperture for c in train]
    alpha = choose_alpha(xs, ys, groups)
    model = Ridge(alpha).fit(np.concatenate(xs), np.concatenate(ys))
    return [model.predict(context_rows(log_mel(c), c.frames)) for c in held], alpha


def energy_baseline(train: list[Clip], held: list[Clip]) -> list[np.ndarray]:
    """Predicted apertures of the held-out clips from their loudness (a line fitted on `train`)."""
    e = np.concatenate([frame_energy(c) for c in train])
    y = np.concatenate([c.aperture for c in train])
    slope, intercept = np.polyfit(e, y, 1)
    return [slope * frame_energy(c) + intercept for c in held]
