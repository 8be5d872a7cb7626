"""The torch device a command runs on (`--device auto|cpu|cuda`), chosen one way everywhere,
and the CPU threads that feed it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import cv2
import torch

from .errors import DhliveError


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DhliveError(f"--device {device}: no CUDA GPU is available to this torch")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise DhliveError(f"--device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


@contextmanager
def frame_workers(n: int):
    """A pool of n threads for per-frame numpy/OpenCV work (both release the GIL), or None
    for n <= 1. OpenCV runs single-threaded meanwhile: the work is parallel over frames, and
    OpenCV's own pool inside each call would oversubscribe the cores."""
    if n <= 1:
        yield None
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(n) as pool:
            yield pool
    finally:
        cv2.setNumThreads(before)
