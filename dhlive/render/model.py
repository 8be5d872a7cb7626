"""The renderer: a simplified DINet that repaints the lower face of a crop, read top to bottom.

    source     window with the lower face masked (3) + mouth prompt (3) + lip sketch (1)  (B, 7, R, R)
    references n windows of the same person, RGB + landmark sketch (4 each)            (B, 4n, R, R)

    source -> source encoder -> s (B, C, R/2^L, R/2^L), with skips at every level
    references -> reference encoder -> r (same size)       computed once per avatar, cached
    [s, r] -> alignment code -> per channel of r: scale, rotation, translation
    AdaAT: each channel of r moved by its own affine transform (grid_sample)
    [s, moved r] -> bottleneck blocks -> decoder (upsampling with the skips) to R/2
    -> sub-pixel convolution -> RGB (B, 3, R, R)

AdaAT (DINet, AAAI 2023) lets the network move the reference mouth features to where the
prompt wants them instead of copying pixels. The config sets resolution and widths; `fast`
(the CPU default) and `large` (about DH_live's 36 GMAC per frame) are presets; `count_macs`
measures a config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

SOURCE_CHANNELS = 7  # masked window RGB + mouth prompt RGB + lip sketch (render/inputs.py)
REFERENCE_CHANNELS = 4  # per reference: RGB + landmark sketch


@dataclass(frozen=True)
class RenderConfig:
    resolution: int = 256  # crop side: 128, 256 or 384
    n_refs: int = 5  # reference frames
    width: int = 16  # channels at full resolution (notional): doubled per level up to max_width
    max_width: int = 128
    levels: int = 3  # downsamplings: features are resolution / 2**levels
    blocks: int = 2  # residual blocks at the bottleneck

    def channels(self, level: int) -> int:
        return min(self.width * 2**level, self.max_width)


PRESETS = {
    "fast": RenderConfig(),
    "large": RenderConfig(width=62, max_width=496, blocks=3),
}


def preset(name: str, **overrides) -> RenderConfig:
    if name not in PRESETS:
        raise ValueError(f"renderer preset must be one of {sorted(PRESETS)}, not {name!r}")
    return replace(PRESETS[name], **overrides)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.2)


class Encoder(nn.Module):
    """Stride-2 convolutions down to resolution / 2**levels; returns the features of every level.

    Nothing runs at full resolution: there, convolutions are the slowest per MAC on a CPU,
    and the decoder's sub-pixel output restores the detail."""

    def __init__(self, cin: int, cfg: RenderConfig):
        super().__init__()
        self.stem = conv(cin, cfg.channels(1), 2)
        self.down = nn.ModuleList(conv(cfg.channels(i), cfg.channels(i + 1), 2) for i in range(1, cfg.levels))

    def forward(self, x) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for d in self.down:
            feats.append(d(feats[-1]))
        return feats


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`F.affine_grid(theta, (n, 1, h, w), align_corners=False)` written out: (n, 2, 3) affine
    transforms -> (n, h, w, 2) sampling positions in -1..1. Written with elementwise products,
    it converts to OpenVINO (which lacks aten::affine_grid_generator) and stays in fp32 under
    autocast."""
    xs = (torch.arange(w, device=theta.device, dtype=torch.float32) * 2 + 1) / w - 1  # pixel centres
    ys = (torch.arange(h, device=theta.device, dtype=torch.float32) * 2 + 1) / h - 1
    t = theta.float()[:, None, None]  # (n, 1, 1, 2, 3)
    return xs[None, None, :, None] * t[..., 0] + ys[None, :, None, None] * t[..., 1] + t[..., 2]


class AdaAT(nn.Module):
    """Adaptive affine transformation: every channel of a feature map gets its own scale,
    rotation and translation, predicted from an alignment code, applied by grid_sample."""

    def __init__(self, code_dim: int, channels: int):
        super().__init__()
        self.params = nn.Linear(code_dim, 4 * channels)
        nn.init.zeros_(self.params.weight)  # starts as the identity transform
        nn.init.zeros_(self.params.bias)

    def forward(self, feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        b, c, h, w = feat.shape
        p = self.params(code).view(b, c, 4)
        scale = torch.exp(torch.tanh(p[..., 0]) * math.log(2))  # 0.5 .. 2
        angle = torch.tanh(p[..., 1]) * math.pi / 4
        shift = torch.tanh(p[..., 2:]) * 0.5  # up to a quarter of the map each way
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[..., 0]], -1), torch.stack([sin, cos, shift[..., 1]], -1)], -2
        )  # (b, c, 2, 3)
        grid = affine_grid(theta.view(b * c, 2, 3), h, w)
        moved = F.grid_sample(
            feat.reshape(b * c, 1, h, w), grid.to(feat.dtype), align_corners=False, padding_mode="border"
        )
        return moved.view(b, c, h, w)


class Renderer(nn.Module):
    def __init__(self, cfg: RenderConfig = RenderConfig()):
        super().__init__()
        self.cfg = cfg
        top = cfg.channels(cfg.levels)
        self.source_encoder = Encoder(SOURCE_CHANNELS, cfg)
        self.reference_encoder = Encoder(REFERENCE_CHANNELS * cfg.n_refs, cfg)
        self.alignment = nn.Sequential(conv(2 * top, top, 2), conv(top, top), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.adaat = AdaAT(top, top)
        self.bottleneck = nn.Sequential(conv(2 * top, top), *[ResBlock(top) for _ in range(cfg.blocks)])
        self.up = nn.ModuleList(
            conv(cfg.channels(i + 1) + cfg.channels(i), cfg.channels(i)) for i in reversed(range(1, cfg.levels))
        )
        # back to full resolution by a sub-pixel convolution: 4 RGB values per half-resolution position
        self.to_rgb = nn.Sequential(nn.Conv2d(cfg.channels(1), 3 * 4, 3, 1, 1), nn.PixelShuffle(2))

    def encode_references(self, references: torch.Tensor) -> torch.Tensor:
        """(B, 4n, R, R) -> reference features; compute once per avatar and pass to forward()."""
        return self.reference_encoder(references)[-1]

    def forward(self, source: torch.Tensor, reference_features: torch.Tensor) -> torch.Tensor:
        """(B, 7, R, R) source and cached reference features -> (B, 3, R, R) RGB in 0..1."""
        skips = self.source_encoder(source)
        s = skips[-1]
        r = reference_features.expand(s.shape[0], -1, -1, -1)
        code = self.alignment(torch.cat([s, r], 1))
        x = self.bottleneck(torch.cat([s, self.adaat(r, code)], 1))
        for up, skip in zip(self.up, reversed(skips[:-1])):
            x = up(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], 1))
        return torch.sigmoid(self.to_rgb(x))


@torch.no_grad()
def fuse_for_inference(model: Renderer) -> Renderer:
    """Fold every BatchNorm into the convolution before it (eval statistics), in place.

    The result computes the same function in eval mode with one memory pass less per layer,
    which is most of the cost at full resolution on a CPU. Not for training."""
    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            c, bn = seq[i], seq[i + 1]
            if isinstance(c, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = c.bias if c.bias is not None else torch.zeros_like(bn.running_mean)
                fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, bias=True)
                fused.weight.copy_(c.weight * scale[:, None, None, None])
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
                seq[i], seq[i + 1] = fused, nn.Identity()
    return model


def macs_of(module: nn.Module, *args) -> int:
    """Multiply-accumulates of one call of `module` on `args`, from the convolutions and linear
    layers actually run (normalisation, activations and resampling are not counted)."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += output.numel() * m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        elif isinstance(m, nn.Linear):
            total += output.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(*args)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total


def count_macs(model: Renderer, cached_references: bool = True) -> int:
    """Multiply-accumulates of one frame (batch 1); with cached_references the reference
    encoder (run once per avatar) is not counted."""
    cfg = model.cfg
    refs = torch.zeros(1, REFERENCE_CHANNELS * cfg.n_refs, cfg.resolution, cfg.resolution)
    source = torch.zeros(1, SOURCE_CHANNELS, cfg.resolution, cfg.resolution)
    was_training = model.training
    with torch.no_grad():
        feats = model.eval().encode_references(refs)
    model.train(was_training)
    frame = macs_of(model, source, feats)
    return frame if cached_references else frame + macs_of(model.reference_encoder, refs)
