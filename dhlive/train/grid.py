"""A penalty on the pixel grid (checkerboard) that upsampling draws into teeth and lips.

The renderer's last step is a sub-pixel convolution (4 RGB values per half-resolution
position), after a nearest-neighbour upsampling: when the four phases drift apart, the
mouth gets a period-2 and period-4 grid. The perceptual loss hardly sees it, and a short
per-avatar fine-tune lets it grow. This measures, as `metrics.checkerboard` does, the share
of an image's high-passed energy at those periods, and penalises what the generated mouth
has beyond the real one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import GRID_PERIODS

_BLUR_SIGMA = 2.0


def luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma (Rec. 601 weights)."""
    return (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)


def high_pass(grey: torch.Tensor) -> torch.Tensor:
    """(B, 1, n, n) minus its Gaussian blur (sigma 2 px)."""
    radius = int(3 * _BLUR_SIGMA)
    x = torch.arange(-radius, radius + 1, dtype=grey.dtype, device=grey.device)
    k = torch.exp(-0.5 * (x / _BLUR_SIGMA) ** 2)
    k = k / k.sum()
    blurred = F.conv2d(F.pad(grey, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return grey - blurred


def grid_share(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in 0..1 -> (B,) share of their high-pass energy on the pixel grid."""
    n = min(images.shape[-2:]) // 4 * 4
    grey = luma(images[:, :, :n, :n])
    window = torch.hann_window(n, periodic=False, dtype=grey.dtype, device=grey.device)
    power = torch.fft.fft2(high_pass(grey)[:, 0] * window[:, None] * window[None, :]).abs() ** 2
    at = sorted({n // p % n for p in GRID_PERIODS} | {(n - n // p) % n for p in GRID_PERIODS} | {0})
    near = sorted({(u + d) % n for u in at for d in (-1, 0, 1)})
    mask = torch.zeros(n, n, dtype=torch.bool, device=grey.device)
    idx = torch.tensor(near, device=grey.device)
    mask[idx[:, None], idx[None, :]] = True
    mask[0, 0] = False
    centre = torch.tensor([(d % n) for d in (-1, 0, 1)], device=grey.device)
    mask[centre[:, None], centre[None, :]] = False  # the lowest frequencies are not a grid
    total = power.sum((-2, -1)) - power[:, 0, 0]
    return power[:, mask].sum(-1) / total.clamp_min(1e-12)


def grid_excess(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of how much more grid the generated images have than the real ones."""
    return F.relu(grid_share(generated.float()) - grid_share(real.float())).mean()
