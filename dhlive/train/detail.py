"""A loss on how much fine detail the mouth has: lip lines, teeth edges, stubble.

L1 and the perceptual loss, averaged over the mouths a prompt allows, leave the generated
mouth smoother than the real one: where a line's exact place is uncertain, the average has
none. This compares the amount of detail instead of its place: the RMS of the high-passed
grey image in small cells, generated against real. (The high-pass compared pixel by pixel
would be one more average, and smooths as they do.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .grid import high_pass, luma

DETAIL_CELL = 8  # px: the squares whose detail is compared, a few lip lines wide


def detail_energy(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, n, n) images in 0..1 -> (B, 1, n // DETAIL_CELL, n // DETAIL_CELL) RMS of the
    high-passed grey image in each cell."""
    detail = high_pass(luma(images.float()))
    return F.avg_pool2d(detail * detail, DETAIL_CELL).clamp_min(1e-8).sqrt()


def detail_gap(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the detail energy of generated and real mouth crops."""
    return (detail_energy(generated) - detail_energy(real)).abs().mean()
