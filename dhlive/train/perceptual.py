"""Perceptual loss: ST-LPIPS (shift-tolerant LPIPS, VGG16 trunk), in plain torch.

No pretrained network can be downloaded here, but the PyPI package `stlpips-pytorch`
(BSD-2, Ghildyal & Liu, ECCV 2022) ships ImageNet-trained weights. We install it with
--no-deps and read only its weight file, verified by sha256, into the small network
below: VGG16 whose max-pools are followed by a [1 2 1] blur before subsampling (what
makes it tolerant to small shifts, so the loss does not punish a lip drawn one pixel
off), then LPIPS: each layer's features unit-normalised per position, squared
differences weighted per channel by learned non-negative weights, averaged.
"""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DhliveError
from ..formats import atomic_write_bytes, file_sha256

WEIGHTS_PACKAGE = "stlpips-pytorch==0.0.2"
WEIGHTS_FILE = "weights/vST0.0/vgg_shift_tolerant.pth"
WEIGHTS_SHA256 = "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250"
# VGG16 blocks: (number of 3x3 convolutions, channels); a blur-pool precedes every block but the first
VGG_BLOCKS = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
# The first blocks' tensors alone, for a machine that cannot receive the wheel (it receives
# little data). Never shipped: made from the installed wheel.
SUBSET_FORMAT = "dhlive-stlpips-subset"
WEIGHTS_ENV = "DHLIVE_STLPIPS_WEIGHTS"  # a subset (or the original file) to read instead of the wheel's


def weights_path() -> Path:
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise DhliveError(
            f"the perceptual loss needs the weights in {WEIGHTS_PACKAGE}: "
            f"pip install --no-deps {WEIGHTS_PACKAGE} (scripts/install.sh does)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


def _layer_keys(layers: int) -> list[str]:
    """Names of the original network's tensors the first `layers` blocks use."""
    keys, index = [], 0
    for b, (n_conv, _) in enumerate(VGG_BLOCKS[:layers]):
        index += 2 if b > 0 else 0
        for _ in range(n_conv):
            keys += [f"net.slice{b + 1}.{index}.weight", f"net.slice{b + 1}.{index}.bias"]
            index += 2
        keys.append(f"lin{b}.model.1.weight")
    return keys


def load_weights(path: Path, layers: int) -> dict:
    """The tensors of the first `layers` blocks, from the wheel's file (verified by sha256) or
    from a subset exported from it (weights only, tagged with that file's sha256)."""
    if not path.is_file():
        raise DhliveError(f"{path}: missing; reinstall {WEIGHTS_PACKAGE}")
    if file_sha256(path) == WEIGHTS_SHA256:
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        sub = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any unreadable file is the one error below
        sub = None
    if not (
        isinstance(sub, dict) and sub.get("format") == SUBSET_FORMAT and sub.get("source_sha256") == WEIGHTS_SHA256
    ):
        raise DhliveError(f"{path}: not the ST-LPIPS VGG weights this dhlive was built for (sha256 differs)")
    state = sub.get("state", {})
    if sub.get("layers", 0) < layers or any(k not in state for k in _layer_keys(layers)):
        raise DhliveError(f"{path}: holds {sub.get('layers')} ST-LPIPS blocks, {layers} are needed (perceptual_layers)")
    return state


def export_weights(out: str | os.PathLike, layers: int) -> Path:
    """Write the first `layers` blocks of the installed wheel's weights to `out` (a few MB for 3)."""
    state = load_weights(weights_path(), layers)
    buf = io.BytesIO()
    torch.save(
        {
            "format": SUBSET_FORMAT,
            "source_sha256": WEIGHTS_SHA256,
            "layers": layers,
            "state": {k: state[k].clone() for k in _layer_keys(layers)},
        },
        buf,
    )
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)


class BlurPool(nn.Module):
    """Max-pool with stride 1, then a [1 2 1] x [1 2 1] blur sampled with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).contiguous())

    def forward(self, x):
        x = F.max_pool2d(x, 2, stride=1)
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class STLPIPS(nn.Module):
    """LPIPS distance per image between two batches in 0..1, over the first `layers` VGG blocks
    (5 = the published metric; fewer is cheaper and keeps the fine-detail layers)."""

    def __init__(self, layers: int = 5, path: str | Path | None = None):
        super().__init__()
        if not 1 <= layers <= len(VGG_BLOCKS):
            raise ValueError(f"layers must be 1..{len(VGG_BLOCKS)}")
        state = load_weights(Path(path) if path else weights_path(), layers)

        self.blocks = nn.ModuleList()
        self.lins = nn.ParameterList()
        cin, index = 3, 0  # index walks the original network's layer numbering
        for b, (n_conv, cout) in enumerate(VGG_BLOCKS[:layers]):
            layers_b, slice_name = [], f"net.slice{b + 1}"
            if b > 0:
                layers_b.append(BlurPool(cin))
                index += 2  # max-pool and blur are layers of their own there
            for _ in range(n_conv):
                conv = nn.Conv2d(cin, cout, 3, padding=1)
                conv.weight.data.copy_(state[f"{slice_name}.{index}.weight"])
                conv.bias.data.copy_(state[f"{slice_name}.{index}.bias"])
                layers_b += [conv, nn.ReLU()]
                cin, index = cout, index + 2
            self.blocks.append(nn.Sequential(*layers_b))
            self.lins.append(nn.Parameter(state[f"lin{b}.model.1.weight"].clone(), requires_grad=False))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # a fixed judge: never in training mode

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) images in 0..1 -> (B,) distances."""
        if a.requires_grad and not b.requires_grad:
            # a training target: its features need no backward pass, which is about a third of
            # this loss's cost on a CPU (the same distances either way; tests/test_render_train.py)
            with torch.no_grad():
                target = self.features(b)
            return self.distance(self.features(a), target)
        fa, fb = zip(*(f.chunk(2) for f in self.features(torch.cat([a, b]))))
        return self.distance(fa, fb)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised features of every block for images in 0..1."""
        out, x = [], x * 2 - 1
        for block in self.blocks:
            x = block(x)
            f = x.float()
            out.append(f / (f.norm(dim=1, keepdim=True) + 1e-10))
        return out

    def distance(self, fa, fb) -> torch.Tensor:
        return sum(F.conv2d((a - b) ** 2, lin).mean((1, 2, 3)) for a, b, lin in zip(fa, fb, self.lins))
