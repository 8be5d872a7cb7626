"""Offline speech synthesis with espeak-ng (the library and voices ship in the
`espeakng-loader` wheel): test and demo speech without any network or recording."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from .errors import DhliveError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()  # espeak-ng keeps global state
_lib = None
_rate = 0


def _library():
    global _lib, _rate
    if _lib is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise DhliveError("espeak-ng failed to initialise")
        _lib, _rate = lib, rate
    return _lib


def synthesize(text: str, voice: str = "en", words_per_minute: int = 160, sample_rate: int = 16000) -> np.ndarray:
    """Speech for `text` as mono float32 at `sample_rate`."""
    from .media import resample_audio

    with _lock:
        lib = _library()
        chunks = []

        def on_audio(wav, n, events):
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        cb = _CALLBACK(on_audio)
        lib.espeak_SetSynthCallback(cb)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DhliveError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(1, int(words_per_minute), 0)  # espeakRATE
        data = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != 0 or not chunks:
            raise DhliveError(f"espeak-ng could not synthesise {text[:30]!r}")
    return resample_audio(np.concatenate(chunks).astype(np.float32) / 32768.0, _rate, sample_rate)
