import pytest
import torch

from dhlive.render.model import AdaAT, Renderer, count_macs, preset

DH_LIVE_GMAC = 36.0  # DH_live's renderer per frame with cached references (BRIEF section 2)


@pytest.mark.parametrize("resolution", [128, 256, 384])
def test_output_shape_and_range(resolution):
    torch.manual_seed(0)
    model = Renderer(preset("fast", resolution=resolution)).eval()
    refs = torch.rand(1, 30, resolution, resolution)
    with torch.no_grad():
        feats = model.encode_references(refs)
        out = model(torch.rand(3, 6, resolution, resolution), feats)  # one avatar's cache, a batch of frames
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
