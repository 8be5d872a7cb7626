"""The renderer's adversaries: patch discriminators with LSGAN losses.

Three judge the renderer in training: one the whole window, one the mouth crop (teeth,
lips), and in the clip stage one consecutive mouth crops stacked in time (flicker).
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake scores, each seeing a patch of the input (LSGAN targets)."""

    def __init__(self, cin: int = 3, width: int = 32, layers: int = 4):
        super().__init__()
        mods, c = [], cin
        for i in range(layers):
            cout = width * 2 ** min(i, 3)
            mods += [nn.Conv2d(c, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = cout
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x * 2 - 1)


def mouth_crops(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(B,3,R,R) images, (B,3) boxes (x0, y0, side; one side for all) -> (B,3,side,side)."""
    side = int(boxes[0, 2])
    return torch.stack(
        [img[:, int(y) : int(y) + side, int(x) : int(x) + side] for img, (x, y, _) in zip(images, boxes)]
    )


def real_vs_fake(d, real, fake):
    """LSGAN discriminator loss, real and fake scored in one call (one forward per DDP step)."""
    real_score, fake_score = d(torch.cat([real, fake])).float().chunk(2)
    return ((real_score - 1) ** 2).mean() + (fake_score**2).mean()


def lsgan_g(fake_score):
    return ((fake_score - 1) ** 2).mean()


def stack_time(crops: torch.Tensor, t: int) -> torch.Tensor:
    """(B*t, 3, S, S) consecutive crops -> (B, 3t, S, S) for the temporal discriminator."""
    return crops.reshape(-1, t * crops.shape[1], *crops.shape[2:])
