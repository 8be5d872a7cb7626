"""What the mouth does for each speech sound: IPA phonemes -> visible articulation per frame.

Synthetic speech whose phonemes are known (espeak-ng, any of its ~100 languages and
voices) teaches the audio model's LSTM to hear articulation the same way for every voice;
the real clips then only have to teach how that articulation looks on a face. Each symbol
gets a few visible features (0-1):

    open       jaw and lip opening (vowel height; 0 for a lip closure)
    round      lip rounding / protrusion
    spread     lips drawn wide (i, e)
    closure    lips pressed together (p b m)
    labiodental lower lip on the upper teeth (f v)
    speaking   any sound at all (0 in pauses)

A phoneme of several symbols (diphthongs, affricates) glides from its first symbol's
features to its last; symbols the table lacks (stress, length, tone marks) are skipped;
/h/ and the glottals take the features of the next sound, whose mouth they already show,
and a lone mark (Russian 'ʲ') holds the sound before it.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from ..constants import FPS
from ..geometry import smooth_series

FEATURES = ("open", "round", "spread", "closure", "labiodental", "speaking")
N_FEATURES = len(FEATURES)
COARTICULATION_FRAMES = 1.0  # std of the Gaussian that blends neighbouring sounds (40 ms)

#          open round spread closure labiodental
_VOWELS = {
    # close
    "i": (0.25, 0, 1, 0, 0),
    "y": (0.25, 1, 0, 0, 0),
    "ɨ": (0.25, 0, 0.5, 0, 0),
    "ʉ": (0.25, 1, 0, 0, 0),
    "ɯ": (0.25, 0, 0.5, 0, 0),
    "u": (0.25, 1, 0, 0, 0),
    # near-close
    "ɪ": (0.35, 0, 0.7, 0, 0),
    "ʏ": (0.35, 0.8, 0, 0, 0),
    "ʊ": (0.35, 0.8, 0, 0, 0),
    # close-mid and mid
    "e": (0.5, 0, 0.8, 0, 0),
    "ø": (0.5, 0.9, 0, 0, 0),
    "ɘ": (0.5, 0, 0.3, 0, 0),
    "ɵ": (0.5, 0.8, 0, 0, 0),
    "ɤ": (0.5, 0, 0.3, 0, 0),
    "o": (0.5, 1, 0, 0, 0),
    "ə": (0.45, 0, 0.2, 0, 0),
    "ɚ": (0.45, 0.3, 0, 0, 0),
    "ɝ": (0.5, 0.3, 0, 0, 0),
    # open-mid
    "ɛ": (0.7, 0, 0.5, 0, 0),
    "œ": (0.7, 0.8, 0, 0, 0),
    "ɜ": (0.65, 0, 0.2, 0, 0),
    "ɞ": (0.7, 0.8, 0, 0, 0),
    "ʌ": (0.7, 0, 0.2, 0, 0),
    "ɔ": (0.75, 0.9, 0, 0, 0),
    # near-open and open
    "æ": (0.85, 0, 0.5, 0, 0),
    "ɐ": (0.8, 0, 0.2, 0, 0),
    "a": (1.0, 0, 0.3, 0, 0),
    "ɶ": (1.0, 0.7, 0, 0, 0),
    "ɑ": (1.0, 0, 0.1, 0, 0),
    "ɒ": (0.95, 0.6, 0, 0, 0),
}
_CONSONANTS = {
    **{c: (0.0, 0, 0, 1, 0) for c in "pbmɸβʙ"},
    **{c: (0.1, 0, 0, 0, 1) for c in "fvɱʋ"},
    **{c: (0.2, 1, 0, 0, 0) for c in "wʍɥ"},
    **{c: (0.25, 0, 0.2, 0, 0) for c in "θð"},
    **{c: (0.2, 0, 0.2, 0, 0) for c in "tdnszlɾrɹɬɮɺʈɖɳɭɽ"},
    **{c: (0.25, 0.6, 0, 0, 0) for c in "ʃʒʂʐ"},
    **{c: (0.2, 0, 0.5, 0, 0) for c in "ɕʑcɟçʝjʎɲ"},
    **{c: (0.3, 0, 0.1, 0, 0) for c in "kgɡŋxɣχʁqɢʀɰɫ"},
}
_TRANSPARENT = set("hɦʔħʕʜʢ")  # the mouth already shows the next sound
_TABLE = {**_VOWELS, **_CONSONANTS}


def symbol_features(symbol: str) -> np.ndarray | None:
    """The features of one IPA character, or None if it has no mouth shape of its own."""
    f = _TABLE.get(symbol)
    return None if f is None else np.array((*f, 1.0), np.float32)


def phoneme_span(phoneme: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(features at the start, at the end) of a phoneme such as 'ˈaʊ' or 'tʃ'; None for a
    pause or a sound whose mouth belongs to its neighbours."""
    base = unicodedata.normalize("NFD", phoneme)  # 'ä' -> 'a' + a diacritic, which is skipped
    shapes = [f for f in (symbol_features(ch) for ch in base) if f is not None]
    if not shapes:
        return None
    return shapes[0], shapes[-1]


def frame_targets(phonemes: list, n_frames: int, fps: float = FPS) -> np.ndarray:
    """(n_frames, N_FEATURES) visible articulation at each video frame of a recording whose
    phonemes start at the given times ((seconds, IPA symbol) in order, '' = pause), sampled
    at 4 points per frame, then blended with the neighbouring frames (coarticulation)."""
    sub = 4
    t = (np.arange(n_frames * sub) + 0.5) / (fps * sub)
    out = np.zeros((len(t), N_FEATURES), np.float32)  # pauses: all zero, mouth closed
    events = sorted(phonemes, key=lambda e: e[0])
    previous = None
    for k, (start, name) in enumerate(events):
        end = events[k + 1][0] if k + 1 < len(events) else start
        if end <= start:
            continue
        span = phoneme_span(name)
        if span is None and name:  # /h/, or a mark such as 'ʲ' sent alone: hold a neighbour's mouth
            if previous is not None and not any(ch in _TRANSPARENT for ch in name):
                span = (previous[1], previous[1])
            else:
                following = (phoneme_span(n) for _, n in events[k + 1 :] if n)
                nxt = next((f for f in following if f is not None), None)
                span = None if nxt is None else (nxt[0], nxt[0])
        previous = span if name else None
        if span is None:
            continue
        inside = (t >= start) & (t < end)
        w = ((t[inside] - start) / (end - start))[:, None]
        out[inside] = (1 - w) * span[0] + w * span[1]
    out = out.reshape(n_frames, sub, N_FEATURES).mean(1)
    radius = int(np.ceil(3 * COARTICULATION_FRAMES))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / COARTICULATION_FRAMES) ** 2)
    return smooth_series(out, kernel, [(0, n_frames)]).astype(np.float32)
