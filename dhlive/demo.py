"""`dhlive demo`: a talking-head mp4 from nothing but the installed packages.

The face is scikit-image's astronaut photo (Eileen Collins, a NASA portrait in the public
domain, shipped inside scikit-image), made into a still avatar by `dhlive prepare`; the
speech is synthesised offline by espeak-ng; the shipped base models in checkpoints/ drive
`dhlive infer`. The avatar and the speech are cached, so a second run only renders.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2

from . import media
from .data.prepare import PrepareConfig, prepare
from .formats import META_FILE, cache_dir
from .infer import InferConfig, infer
from .speech import synthesize

DEMO_TEXT = (
    "Hello! I am a talking head made by dhlive, on your own computer, without any network. "
    "Give me a short video of a person and some speech, and I will say it with their face."
)


def demo(
    out="demo.mp4",
    *,
    text: str = DEMO_TEXT,
    work=None,
    audio_model=None,
    renderer=None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Write `out`; returns infer's summary plus the total seconds. `work` caches the avatar
    and the speech (default: the dhlive cache folder)."""
    from skimage import data as skdata

    start = time.perf_counter()
    media.check_writable(out)
    work = Path(work) if work else cache_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    avatar = work / "avatars" / "astronaut"
    if not (avatar / META_FILE).exists():
        photo = work / "astronaut.png"
        cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
        avatar = prepare(photo, "astronaut", work / "avatars", PrepareConfig(), force=True, progress=progress).path
    speech = work / f"speech-{hashlib.sha1(text.encode()).hexdigest()[:10]}.wav"
    if not speech.exists():
        media.write_wav(speech, synthesize(text, words_per_minute=150))
    res = infer(
        speech,
        avatar,
        Path(out),
        audio_model=audio_model,
        renderer=renderer,
        cfg=InferConfig(device=device),
        progress=progress,
    )
    res["total_seconds"] = round(time.perf_counter() - start, 2)
    return res
