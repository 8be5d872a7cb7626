import pytest
import torch

from dhlive.render.model import (
    REFERENCE_CHANNELS,
    SOURCE_CHANNELS,
    AdaAT,
    Renderer,
    count_macs,
    fuse_for_inference,
    preset,
)

DH_LIVE_GMAC = 36.0  # DH_live's renderer per frame with cached references (BRIEF section 2)


@pytest.mark.parametrize("resolution", [128, 256, 384])
def test_output_shape_and_range(resolution):
    torch.manual_seed(0)
    model = Renderer(preset("fast", resolution=resolution)).eval()
    refs = torch.rand(1, REFERENCE_CHANNELS * 5, resolution, resolution)
    with torch.no_grad():
        feats = model.encode_references(refs)
        out = model(
            torch.rand(3, SOURCE_CHANNELS, resolution, resolution), feats
        )  # one avatar's cache, a batch of frames
    assert out.shape == (3, 3, resolution, resolution)
    assert 0 <= out.min() and out.max() <= 1


def test_mac_budgets():
    fast = count_macs(Renderer(preset("fast")))
    large = count_macs(Renderer(preset("large")))
    assert fast <= 5e9  # the CPU default: at most 5 GMAC per frame at 256x256 with cached references
    assert 0.85 * DH_LIVE_GMAC * 1e9 <= large <= 1.15 * DH_LIVE_GMAC * 1e9  # comparable to DH_live
    uncached = count_macs(Renderer(preset("fast")), cached_references=False)
    assert uncached > fast  # the reference encoder is real work, done once per avatar


def test_adaat_starts_as_identity_and_moves_channels_independently():
    feat = torch.rand(2, 4, 16, 16)
    layer = AdaAT(8, 4)
    code = torch.rand(2, 8)
    assert torch.allclose(layer(feat, code), feat, atol=1e-5)
    with torch.no_grad():
        layer.params.bias[4 * 1 + 2] = 10.0  # channel 1: shift x by the maximum
    moved = layer(feat, code)
    assert torch.allclose(moved[:, 0], feat[:, 0], atol=1e-5)
    assert not torch.allclose(moved[:, 1], feat[:, 1], atol=1e-2)


def test_fusing_batchnorm_for_inference_keeps_the_output():
    torch.manual_seed(0)
    model = Renderer(preset("fast", resolution=128, width=8, max_width=32))
    model.train()
    src, refs = torch.rand(2, SOURCE_CHANNELS, 128, 128), torch.rand(1, REFERENCE_CHANNELS * 5, 128, 128)
    for _ in range(3):  # give BatchNorm running statistics that are not the identity
        model(src, model.encode_references(refs))
    model.eval()
    with torch.no_grad():
        feats = model.encode_references(refs)
        before = model(src, feats)
        fuse_for_inference(model)
        after = model(src, model.encode_references(refs))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-5)


def test_affine_grid_is_torchs():
    """The written-out affine grid AdaAT samples with is F.affine_grid (align_corners=False)."""
    import torch.nn.functional as F

    from dhlive.render.model import affine_grid

    theta = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(0))
    want = F.affine_grid(theta, (6, 1, 8, 12), align_corners=False)
    assert torch.allclose(affine_grid(theta, 8, 12), want, atol=1e-6)
