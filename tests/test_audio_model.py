import numpy as np
import torch

from dhlive.audio import features as F
from dhlive.audio.inference import MouthStream, predict
from dhlive.audio.model import AudioModel, AudioModelConfig, count_parameters


def trained_looking_model(seed=0, **cfg):
    torch.manual_seed(seed)
    model = AudioModel(AudioModelConfig(**cfg))
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_dh_live_size():
    assert count_parameters(AudioModel(AudioModelConfig(n_coeffs=6))) == 644_166  # DH_live's, 6 outputs
    assert count_parameters(AudioModel()) == 644_166 + 2 * 257  # two more outputs (docs/audio.md)


def test_streaming_equals_offline(speech):
    model = trained_looking_model()
    offline = predict(model, speech)
    assert offline.shape == (F.n_video_frames(speech.size), model.config.n_coeffs)
    stream = MouthStream(model)
    pieces = [stream.push(speech[i : i + 640]) for i in range(0, speech.size, 640)] + [stream.finish()]
    assert np.allclose(np.concatenate(pieces), offline, atol=1e-5)


def test_lookahead_is_exactly_what_it_says(speech):
    """Frame t depends on audio up to frame t + lookahead and not beyond."""
    model = trained_looking_model(lookahead=4)
    base = predict(model, speech)
    t = 20
    changed = speech.copy()
    cut = (t + 4 + 1) * 640 + 400  # past the last sample frame t may see (its look-ahead frame's window)
    changed[cut:] = np.random.default_rng(1).normal(0, 0.3, changed.size - cut)
    other = predict(model, changed)
    assert np.allclose(other[: t + 1], base[: t + 1], atol=1e-6)
    assert not np.allclose(other[t + 2 :], base[t + 2 :], atol=1e-3)
