"""Offline speech synthesis with espeak-ng (the library and voices ship in the
`espeakng-loader` wheel): test and demo speech without any network or recording, and,
with the time of every phoneme, labelled speech for training the audio model."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from .constants import SAMPLE_RATE
from .errors import DhliveError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002  # phoneme events name IPA symbols, the same for every language
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


class _Event(ctypes.Structure):  # espeak_EVENT (speak_lib.h)
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()  # espeak-ng keeps global state
_lib = None
_rate = 0
DEFAULT_PITCH = DEFAULT_PITCH_RANGE = 50  # espeak's own: the voice's pitch and range as it defines them


def _library():
    global _lib, _rate
    if _lib is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            espeakng_loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA,
        )
        if rate <= 0:
            raise DhliveError("espeak-ng failed to initialise")
        _lib, _rate = lib, rate
    return _lib


def synthesize_phonemes(
    text: str,
    voice: str = "en",
    words_per_minute: int = 160,
    sample_rate: int = SAMPLE_RATE,
    pitch: int | None = None,
    pitch_range: int | None = None,
) -> tuple[np.ndarray, list]:
    """Speech for `text` as mono float32 at `sample_rate`, and its phonemes as (start in
    seconds, IPA symbol) in time order; an empty symbol marks a pause. `voice` takes espeak-ng
    variants ("en+f3"); pitch and pitch_range are espeak's 0-100 (None: the voice's own)."""
    from .media import resample_audio

    with _lock:
        lib = _library()
        chunks, phonemes = [], []

        def on_audio(wav, n, events):
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                if events[i].type == _EVENT_PHONEME:
                    name = bytes(events[i].id).split(b"\0")[0].decode("utf-8", "replace")
                    phonemes.append((events[i].sample / _rate, name))
                i += 1
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        cb = _CALLBACK(on_audio)
        lib.espeak_SetSynthCallback(cb)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DhliveError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_PARAM_RATE, int(words_per_minute), 0)
        # espeak keeps these across calls and voices: set both every time (None: its default)
        lib.espeak_SetParameter(_PARAM_PITCH, int(DEFAULT_PITCH if pitch is None else pitch), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(DEFAULT_PITCH_RANGE if pitch_range is None else pitch_range), 0)
        data = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != 0 or not chunks:
            raise DhliveError(f"espeak-ng could not synthesise {text[:30]!r}")
    audio = resample_audio(np.concatenate(chunks).astype(np.float32) / 32768.0, _rate, sample_rate)
    return audio, phonemes


def synthesize(text: str, voice: str = "en", words_per_minute: int = 160, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech for `text` as mono float32 at `sample_rate`."""
    return synthesize_phonemes(text, voice, words_per_minute, sample_rate)[0]
