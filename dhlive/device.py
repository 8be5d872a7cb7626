"""The torch device a command runs on (`--device auto|cpu|cuda`), chosen one way everywhere,
the precision the renderer runs at there (`--precision auto|fp32|bf16`), and the CPU threads
that feed it."""

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


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX); elsewhere torch
    emulates it, slower than fp32."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def pick_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype the renderer computes in: auto is bf16 on a GPU and on a CPU with native
    bf16, fp32 elsewhere; bf16 on a CPU without it is refused (it would be slower)."""
    if precision not in PRECISIONS:
        raise DhliveError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    fast = device.type == "cuda" or native_bf16()
    if precision == "bf16" and not fast:
        raise DhliveError("--precision bf16: this CPU has no native bf16 (AVX-512 BF16 or AMX); use fp32")
    return torch.bfloat16 if precision == "bf16" or (precision == "auto" and fast) else torch.float32


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
