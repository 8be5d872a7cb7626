"""The torch device a command runs on (`--device auto|cpu|cuda`), chosen one way everywhere."""

from __future__ import annotations

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
