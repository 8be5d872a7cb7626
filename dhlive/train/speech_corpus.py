"""Synthetic labelled speech for the audio model: espeak-ng utterances in many languages and
voices, each with its visible articulation per video frame (dhlive.audio.phonetic).

The real talking clips are a few minutes of a dozen speakers, mostly in English; this
corpus adds every vowel and consonant of ~15 languages, spoken by male, female, fast, slow,
high and low voices, through rooms (reverb), microphones (tilt) and noise. Utterances are
random pseudo-words (languages spelled as they sound) and short sentences, so no text
corpus is needed. Texts, voices and effects are a function of the seed; the speech itself
varies a little from call to call (espeak-ng's voices jitter), so a training run keeps the
corpus it made (formats.save_phonetic_corpus).
"""

from __future__ import annotations

import math

import numpy as np

from ..audio.features import fbank_features
from ..audio.phonetic import frame_targets
from ..constants import SAMPLE_RATE
from ..speech import synthesize_phonemes

# languages spelled as they sound: random syllables become real-sounding pseudo-speech
SYLLABLES = {
    "es": ("p b m f t d n s l r rr k g ch ll ñ j y c", "a e i o u ue ia ai"),
    "it": ("p b m f v t d n s z l r c g gl gn sc", "a e i o u io ia uo"),
    "de": ("p b m f w t d n s z l r k g sch ch pf ts h", "a e i o u ä ö ü au ei eu"),
    "fi": ("p m v t d n s l r k h j", "a e i o u y ä ö aa ii uu"),
    "sw": ("p b m f v t d n s z l r k g ch sh w y", "a e i o u"),
    "id": ("p b m t d n s l r k g c j w y ng ny", "a e i o u"),
    "pt": ("p b m f v t d n s z l r c g lh nh ch", "a e i o u ão ei ou"),
    "pl": ("p b m f w t d n s z l r k g sz cz rz ł", "a e i o u y ą ę ó"),
    "tr": ("p b m f v t d n s z l r k g ç ş y", "a e ı i o ö u ü"),
    "hu": ("p b m f v t d n s sz z l r k g cs zs", "a á e é i o ö u ü"),
}
SENTENCES = {
    "en": [
        "Please open the window before we leave.",
        "My father bought a blue boat in May.",
        "Who will walk with me along the river tonight?",
        "Five wide voices sang through the valley.",
        "Is it really that much cheaper to fly to Paris?",
        "Bob paid for the map, but Mary kept it.",
        "We should move the meeting to Thursday afternoon.",
        "Oh, I thought you were out of town!",
        "The children laughed at the funny old clown.",
        "Could you repeat the last number, please?",
    ],
    "fr": [
        "Bonjour, comment allez-vous aujourd'hui?",
        "Nous partons demain matin pour la mer.",
        "Le petit chat boit du lait dans la cuisine.",
        "Il faut absolument voir ce film.",
    ],
    "de": [
        "Guten Morgen, wie geht es Ihnen heute?",
        "Wir fahren morgen früh nach München.",
        "Das Wetter ist schön, aber sehr kalt.",
    ],
    "ru": ["Доброе утро, как ваши дела?", "Мы поедем на море летом."],
    "cmn": ["你好，今天天气很好。", "我们明天早上去北京。", "这本书非常有意思。"],
    "ja": ["おはようございます、げんきですか。", "あしたはやまにいきます。"],
    "hi": ["नमस्ते, आप कैसे हैं?", "हम कल बाज़ार जाएंगे।"],
    "ar": ["مرحبا، كيف حالك اليوم؟"],
}
VARIANTS = (
    "",
    "+f1",
    "+f2",
    "+f3",
    "+f4",
    "+f5",
    "+m1",
    "+m2",
    "+m3",
    "+m4",
    "+m5",
    "+m6",
    "+m7",
    "+klatt",
    "+klatt2",
    "+klatt3",
    "+klatt4",
)


def pseudo_text(language: str, rng) -> str:
    consonants, vowels = (s.split() for s in SYLLABLES[language])
    words = []
    for _ in range(int(rng.integers(3, 11))):
        word = ""
        for _ in range(int(rng.integers(1, 5))):
            onset = rng.choice(consonants) if rng.random() < 0.85 else ""
            coda = rng.choice(consonants) if rng.random() < 0.2 else ""
            word += onset + rng.choice(vowels) + coda
        words.append(word)
    text = ""
    for i, w in enumerate(words):
        text += w + ("," if i < len(words) - 1 and rng.random() < 0.15 else "") + " "
    return text.strip() + rng.choice([".", ".", "?", "!"])


def _room(audio: np.ndarray, rng) -> np.ndarray:
    """Reverb from a synthetic room: exponentially decaying noise, RT60 0.1-0.6 s."""
    rt60 = rng.uniform(0.1, 0.6)
    n = int(rt60 * SAMPLE_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir = np.concatenate([[1.0], tail * rng.uniform(0.02, 0.15)])
    wet = np.convolve(audio, ir)[: len(audio)]
    return wet / (np.abs(wet).max() + 1e-9) * np.abs(audio).max()


def _tilt(audio: np.ndarray, rng) -> np.ndarray:
    """A microphone's colour: a first-order high or low shelf."""
    a = rng.uniform(-0.9, 0.9)
    out = audio.copy()
    out[1:] += a * audio[:-1]
    return out / (np.abs(out).max() + 1e-9) * np.abs(audio).max()


def utterance(rng) -> tuple[np.ndarray, list]:
    """One synthetic utterance (16 kHz audio, phoneme timings) in a random language and voice."""
    if rng.random() < 0.6:
        language = str(rng.choice(list(SYLLABLES)))
        text = " ".join(pseudo_text(language, rng) for _ in range(int(rng.integers(1, 3))))
    else:
        language = str(rng.choice(list(SENTENCES)))
        text = str(rng.choice(SENTENCES[language]))
    voice = language + str(rng.choice(VARIANTS))
    return synthesize_phonemes(
        text,
        voice,
        int(rng.integers(110, 240)),
        SAMPLE_RATE,
        pitch=int(rng.integers(10, 90)),
        pitch_range=int(rng.integers(10, 90)),
    )


def phonetic_corpus(seconds: float, seed: int, snr_db: tuple = (5.0, 40.0)) -> list[tuple[np.ndarray, np.ndarray]]:
    """About `seconds` of synthetic speech as (fbank rows (T,160), articulation (T,6)) per utterance."""
    rng = np.random.default_rng([seed, 0x5EEC])
    out, total = [], 0.0
    while total < seconds:
        audio, phonemes = utterance(rng)
        lead = int(rng.uniform(0, 0.5) * SAMPLE_RATE)  # pauses before and after, so onsets are learned
        audio = np.concatenate(
            [np.zeros(lead, np.float32), audio, np.zeros(int(rng.uniform(0, 0.5) * SAMPLE_RATE), np.float32)]
        )
        phonemes = [(t + lead / SAMPLE_RATE, p) for t, p in phonemes]
        if rng.random() < 0.5:
            audio = _room(audio, rng)
        if rng.random() < 0.5:
            audio = _tilt(audio, rng)
        power = float(np.mean(audio**2)) + 1e-10
        noise = rng.standard_normal(len(audio)) * math.sqrt(power / 10 ** (rng.uniform(*snr_db) / 10))
        audio = (audio + noise) * 10 ** (rng.uniform(-20, 0) / 20)
        audio = (audio / max(1.0, float(np.abs(audio).max()) / 0.99)).astype(np.float32)
        feats = fbank_features(audio)
        out.append((feats, frame_targets(phonemes, len(feats))))
        total += len(audio) / SAMPLE_RATE
    return out
