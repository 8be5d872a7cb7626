"""Audio features of the audio model: DH_live's kaldi fbank, one implementation for files
and for streams.

80 mel bins from 50 ms windows every 20 ms (50 fbank frames/s); each 25 fps video frame
gets the two fbank frames centred on its instant and 20 ms after it, concatenated
(160 values). The audio is padded by half a window of silence at the start, so fbank
frame j is centred at j * 20 ms, and at the end up to a whole video frame.

`FbankStream` takes audio in pieces of any size (40 ms in live use) and returns the rows
of the video frames it completed; `fbank_features` runs the same stream over a whole
file, so offline and streaming features are identical by construction.
"""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np

from ..constants import SAMPLE_RATE, SAMPLES_PER_FRAME

N_MELS = 80
WINDOW_MS = 50
HOP_MS = 20
FBANK_PER_FRAME = 2  # fbank frames per video frame (1000 / FPS / HOP_MS)
FEATURE_DIM = N_MELS * FBANK_PER_FRAME  # 160
HALF_WINDOW = SAMPLE_RATE * WINDOW_MS // 2000  # 400 samples of silence before the first sample
PCM_SCALE = 32768.0  # kaldi works on 16-bit sample values


def _options() -> knf.FbankOptions:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = WINDOW_MS
    opts.frame_opts.frame_shift_ms = HOP_MS
    opts.frame_opts.dither = 0.0  # deterministic: the same audio always gives the same features
    opts.frame_opts.snip_edges = True  # frames never look past the samples they were given
    opts.mel_opts.num_bins = N_MELS
    return opts


class FbankStream:
    """Incremental fbank: push() audio pieces, get (k, 160) rows for completed video frames."""

    def __init__(self):
        self._fbank = knf.OnlineFbank(_options())
        self._fbank.accept_waveform(SAMPLE_RATE, np.zeros(HALF_WINDOW, np.float32))
        self._samples = 0  # real samples received
        self._frames_out = 0  # video frames returned
        self._finished = False

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Append mono float32 samples in [-1, 1] at 16 kHz."""
        if self._finished:
            raise RuntimeError("FbankStream.push after finish")
        audio = np.asarray(audio, np.float32).reshape(-1)
        if audio.size:
            self._fbank.accept_waveform(SAMPLE_RATE, audio * PCM_SCALE)
            self._samples += audio.size
        return self._take(self._fbank.num_frames_ready // FBANK_PER_FRAME)

    def finish(self) -> np.ndarray:
        """Pad to a whole video frame (plus half a window) and return the remaining rows."""
        if self._finished:
            return np.zeros((0, FEATURE_DIM), np.float32)
        n_frames = -(-self._samples // SAMPLES_PER_FRAME)  # ceil: a partial last frame counts
        pad = n_frames * SAMPLES_PER_FRAME - self._samples + HALF_WINDOW
        self._fbank.accept_waveform(SAMPLE_RATE, np.zeros(pad, np.float32))
        self._fbank.input_finished()
        self._finished = True
        return self._take(n_frames)

    def _take(self, upto: int) -> np.ndarray:
        rows = []
        for i in range(self._frames_out, upto):
            pair = [self._fbank.get_frame(FBANK_PER_FRAME * i + k) for k in range(FBANK_PER_FRAME)]
            rows.append(np.concatenate(pair))
        if upto > self._frames_out:
            self._fbank.pop(FBANK_PER_FRAME * (upto - self._frames_out))  # memory stays bounded
            self._frames_out = upto
        return np.asarray(rows, np.float32).reshape(-1, FEATURE_DIM)


def fbank_features(audio: np.ndarray) -> np.ndarray:
    """(ceil(len / 640), 160) features of a whole 16 kHz mono recording."""
    stream = FbankStream()
    return np.concatenate([stream.push(audio), stream.finish()])


def n_video_frames(n_samples: int) -> int:
    """How many 25 fps frames a recording of n_samples at 16 kHz spans (a partial last frame counts)."""
    return -(-int(n_samples) // SAMPLES_PER_FRAME)
