"""distill-audio: real training steps on small generated data, resume, reload, clear errors."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import SMALL_DISTILL, astronaut_frame, moving_frames, run_cli, talking, write_clip

from dhlive import mouth as M
from dhlive.audio.features import fbank_features
from dhlive.audio.inference import load_audio_model, predict
from dhlive.audio.model import AudioModel, AudioModelConfig
from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.errors import DhliveError
from dhlive.formats import AUDIO_MODEL_FORMAT, MOUTH_PCA_FILE, file_sha256, load_checkpoint
from dhlive.models import DEFAULT_AUDIO_MODEL
from dhlive.train import audio as T

SMALL = SMALL_DISTILL


def synthetic_tracks(speech, k=8):
    """Speech padded with silence; target: every coefficient follows the loudness with its own
    gain and offset (a mouth that opens when the sound is loud)."""
    audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(8000, np.float32), speech[::-1]])
    feats = fbank_features(audio)
    loud = np.logaddexp.reduce(feats[:, :80], axis=1)
    level = (loud - loud.min()) / (loud.max() - loud.min())
    target = (level[:, None] * np.linspace(2, -1, k) + np.linspace(-1, 1, k)).astype(np.float32)
    return [T.Track(feats, target, np.ones(len(feats), bool))]


def test_training_steps_lower_the_loss(speech):
    cfg = T.DistillConfig(
        batch=8,
        window=16,
        burn_in=4,
        non_speech_prob=0.0,
        gain_db=0.0,
        lr=3e-3,
        warmup=1,
        freq_masks=0,
        time_masks=0,
        phonetic_batch=0,
    )
    torch.manual_seed(0)
    model = AudioModel(AudioModelConfig())
    batches = T.Batches(synthetic_tracks(speech), [], np.zeros(8, np.float32), cfg, model.config.lookahead)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    fixed = batches.batch(10_000)

    def loss():
        model.eval()
        with torch.no_grad():
            v, d, sp, _ = T.loss_terms(model, *fixed[:3], cfg.burn_in)
        model.train()
        return float(v + d + sp)

    before = loss()
    for step in range(60):
        v, d, sp, _ = T.loss_terms(model, *batches.batch(step)[:3], cfg.burn_in)
        opt.zero_grad()
        (v + d + sp).backward()
        opt.step()
    assert loss() < 0.5 * before


def test_batches_are_a_function_of_the_step_and_non_speech_is_closed(speech):
    closed = np.full(8, 5.0, np.float32)  # a value no real target takes
    cfg = T.DistillConfig(batch=16, window=16, burn_in=4, non_speech_prob=1.0, freq_masks=0, time_masks=0)
    pool = [fbank_features(np.zeros(16000 * 3, np.float32))]
    b = T.Batches(synthetic_tracks(speech), pool, closed, cfg, 4)
    x1, y1, m1, _ = b.batch(3)
    x2, y2, m2, _ = b.batch(3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    silent_rows = (x1 < -15).all(-1)  # rows replaced by digital silence
    assert silent_rows.any()
    is_closed = (y1 - torch.from_numpy(closed)).abs().max(-1).values < 1e-6
    assert is_closed.any() and (m1[is_closed] == 1).all()
    # a frame labelled closed has only silence in its view (its row -2 .. row + look-ahead)
    for i, j in zip(*np.nonzero(is_closed.numpy())):
        row = cfg.burn_in + j
        assert silent_rows[i, row - 2 : row + 5].all()


def test_synthetic_speech_teaches_articulation():
    """Windows of espeak-ng speech come after the real ones with their articulation; a few
    steps on them lower the L1 of what a small head reads from the LSTM."""
    from dhlive.audio.phonetic import N_FEATURES
    from dhlive.train.speech_corpus import phonetic_corpus

    corpus = phonetic_corpus(20, seed=3)
    assert sum(len(f) for f, _ in corpus) >= 20 * 25 and all(len(f) == len(a) for f, a in corpus)
    tracks = [T.Track(f, a, np.ones(len(f), bool)) for f, a in corpus]
    cfg = T.DistillConfig(
        batch=2, phonetic_batch=6, window=16, burn_in=4, non_speech_prob=0.0, gain_db=0.0, freq_masks=0, time_masks=0
    )
    torch.manual_seed(0)
    model = AudioModel(AudioModelConfig())
    real = [T.Track(corpus[0][0], np.zeros((len(corpus[0][0]), 8), np.float32), np.ones(len(corpus[0][0]), bool))]
    batches = T.Batches(real, [], np.zeros(8, np.float32), cfg, model.config.lookahead, tracks)
    x, y, m, a = batches.batch(0)
    assert x.shape[0] == 8 and y.shape[0] == 2 and a.shape == (6, 16, N_FEATURES)
    head = torch.nn.Linear(model.config.lstm_dim, N_FEATURES)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    fixed = batches.batch(10_000)

    def heard_loss():
        model.eval()
        with torch.no_grad():
            x, y, m, a = fixed
            out = float(T.loss_terms(model, x, y, m, cfg.burn_in, head, a)[3])
        model.train()
        return out

    before = heard_loss()
    for step in range(100):
        x, y, m, a = batches.batch(step)
        loss = T.loss_terms(model, x, y, m, cfg.burn_in, head, a)[3]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert heard_loss() < 0.8 * before


@pytest.fixture(scope="module")
def trained(tmp_path_factory, talking_avatar):
    """A tiny model trained through the CLI on the generated avatar, evaluated on another
    recording of the same face."""
    root = tmp_path_factory.mktemp("distill")
    held = talking(root, "held", "Seven bright boats sailed past the old harbour wall at noon.")
    cfg = root / "small.yaml"
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in SMALL.items()))
    out = root / "model"
    res = run_cli(
        "distill-audio", "--avatars", talking_avatar, "--eval-avatars", held, "--out", out, "--config", cfg, "--quiet"
    )
    assert res.returncode == 0, res.stderr
    return out, held, res


def test_distill_writes_a_reloadable_model(trained, speech):
    out, held, res = trained
    assert "held-out: aperture r" in res.stdout
    for name in ("audio_model.pt", "pca.pkl", "train_state.pt", "log.csv", "loss.png", "eval.json"):
        assert (out / name).is_file(), name
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows[-1].startswith("30,")
    raw = torch.load(out / "audio_model.pt", weights_only=True)  # plain data only
    assert raw["format"] == AUDIO_MODEL_FORMAT
    model, basis = load_audio_model(out)
    assert np.allclose(model.closed.numpy(), basis.closed)
    coeffs = predict(model, speech)
    assert coeffs.shape == (int(np.ceil(speech.size / 640)), basis.n_coeffs) and np.isfinite(coeffs).all()
    res = run_cli("eval-audio", held, "--model", out)
    assert res.returncode == 0 and "aperture r" in res.stdout


def test_resume_continues_as_if_never_stopped(talking_avatar, tmp_path):
    cfg = T.DistillConfig(**{**SMALL, "steps": 16, "copies": 0, "checkpoint_every": 4})
    T.distill([talking_avatar], tmp_path / "straight", cfg, progress=False)
    # espeak-ng's voices jitter between calls: both runs read the synthetic speech the first made
    # and the straight run's model, which the fresh run must remove before it stops
    shutil.copytree(tmp_path / "straight", tmp_path / "pieces", ignore=shutil.ignore_patterns("train_state.pt"))
    stopped = T.distill([talking_avatar], tmp_path / "pieces", cfg, progress=False, stop_at=8)
    assert stopped["stopped"] and not (tmp_path / "pieces" / "audio_model.pt").exists()
    assert load_checkpoint(tmp_path / "pieces" / "train_state.pt", T.AUDIO_TRAIN_STATE_FORMAT)["step"] == 8
    T.distill([talking_avatar], tmp_path / "pieces", cfg, progress=False, resume=True)
    a, _ = load_audio_model(tmp_path / "straight")
    b, _ = load_audio_model(tmp_path / "pieces")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-5), name


def test_a_given_mouth_pca_is_kept(talking_avatar, tmp_path):
    """--mouth: the model learns the coefficients of that PCA (a renderer trained on it stays
    consistent) instead of fitting its own."""
    shipped = DEFAULT_AUDIO_MODEL / MOUTH_PCA_FILE
    cfg = T.DistillConfig(**{**SMALL, "steps": 4, "copies": 0, "n_coeffs": 5})
    T.distill([talking_avatar], tmp_path / "given", cfg, progress=False, mouth=shipped)
    assert file_sha256(tmp_path / "given" / MOUTH_PCA_FILE) == file_sha256(shipped)
    model, basis = load_audio_model(tmp_path / "given")
    assert basis.n_coeffs == M.load_basis(shipped).n_coeffs != 5 and model.config.n_coeffs == basis.n_coeffs
    assert np.allclose(model.closed.numpy(), basis.closed)
    res = run_cli("distill-audio", "--avatars", talking_avatar, "--out", tmp_path / "x", "--mouth", tmp_path / "no.pkl")
    assert res.returncode != 0 and "no.pkl" in res.stderr and "Traceback" not in res.stderr
    # a run whose PCA file was replaced since its state was saved does not resume on it
    T.distill([talking_avatar], tmp_path / "swapped", cfg, progress=False, stop_at=2)
    shutil.copyfile(shipped, tmp_path / "swapped" / MOUTH_PCA_FILE)
    with pytest.raises(DhliveError, match="pca.pkl changed since the state was written; cannot resume"):
        T.distill([talking_avatar], tmp_path / "swapped", cfg, progress=False, resume=True)


def test_resume_with_other_synthetic_speech_settings_is_refused(talking_avatar, tmp_path):
    cfg = T.DistillConfig(**{**SMALL, "steps": 8, "copies": 0})
    T.distill([talking_avatar], tmp_path, cfg, progress=False, stop_at=4)
    for change in ({"phonetic_seconds": 0}, {"phonetic_seconds": 20}):
        with pytest.raises(DhliveError, match="phonetic"):
            T.distill(
                [talking_avatar],
                tmp_path,
                T.DistillConfig(**{**SMALL, "steps": 8, "copies": 0, **change}),
                progress=False,
                resume=True,
            )


def test_one_recording_is_recognised_after_reencoding_and_cutting():
    from scipy.signal import resample_poly

    from dhlive.audio.clips import SAME_RECORDING_R, recording_match, shared_recordings
    from dhlive.speech import synthesize

    speech = synthesize("Hello there, how are you today? I am fine, thank you very much.", words_per_minute=190)
    rng = np.random.default_rng(0)
    # the same recording cut 0.4 s later, through 44.1 kHz and back, 6 dB quieter, with noise at 30 dB SNR
    copy = resample_poly(resample_poly(speech[6400:], 441, 160), 160, 441).astype(np.float32) * 0.5
    copy += rng.standard_normal(copy.size).astype(np.float32) * np.sqrt(np.mean(copy**2) / 1000)
    r, offset = recording_match(speech, copy)
    assert r >= SAME_RECORDING_R and offset == 10  # 0.4 s = 10 video frames
    other = synthesize(
        "Where are you going this evening? We could walk down to the river.", words_per_minute=190
    )  # same voice, other words
    assert recording_match(speech, other)[0] < SAME_RECORDING_R - 0.1
    clips = [SimpleNamespace(audio=a) for a in (speech, other, copy)]
    assert sorted(map(sorted, shared_recordings(clips))) == [[0, 2], [1]]


def test_an_evaluation_avatar_from_a_training_recording_is_refused(talking_avatar, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(talking_avatar, copy)
    with pytest.raises(DhliveError, match="same recording as training avatar"):
        T.distill([talking_avatar], tmp_path / "m", T.DistillConfig(**SMALL), eval_avatars=[copy], progress=False)
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def bad_avatars(tmp_path_factory, speech):
    root = tmp_path_factory.mktemp("bad_audio")
    frames = list(moving_frames(astronaut_frame()))
    made = {}
    photo = root / "photo.png"
    import cv2

    cv2.imwrite(str(photo), cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR))
    made["no audio"] = prepare(photo, "photo", root, PrepareConfig(size=128), progress=False).path
    silent = write_clip(root / "silent.mp4", frames, audio=np.zeros(32000, np.float32))
    made["silent"] = prepare(silent, "silent", root, PrepareConfig(size=128), progress=False).path
    short = write_clip(root / "short.mp4", frames[:30], audio=speech[:9600])
    made["short"] = prepare(short, "short", root, PrepareConfig(size=128), progress=False).path
    return made


@pytest.mark.parametrize(
    "case, message",
    [
        ("no audio", "has no audio track"),
        ("silent", "audio is silent"),
        ("short", "at least 1 s is needed"),
    ],
)
def test_unusable_avatars_are_named(bad_avatars, tmp_path, case, message):
    res = run_cli("distill-audio", "--avatars", bad_avatars[case], "--out", tmp_path / "m", "--quiet")
    assert res.returncode == 1 and message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and str(bad_avatars[case]) in res.stderr


def test_mismatched_or_foreign_model_files(trained, tmp_path):
    out, held, _ = trained
    other = tmp_path / "other"
    shutil.copytree(out, other)
    basis = M.load_basis(other / "pca.pkl")
    basis.mean = basis.mean + 0.01  # another PCA of the same shape
    M.save_basis(other / "pca.pkl", basis)
    res = run_cli("eval-audio", held, "--model", other)
    assert res.returncode == 1 and "is not the mouth PCA" in res.stderr and "Traceback" not in res.stderr
    # a checkpoint that would run code when unpickled is refused, not executed
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": AUDIO_MODEL_FORMAT, "x": Evil()}, other / "audio_model.pt", pickle_module=pickle)
    with pytest.raises(DhliveError, match="refused: .* could run code"):
        load_audio_model(other)
    res = run_cli("eval-audio", held, "--model", tmp_path / "nowhere")
    assert res.returncode == 1 and "no such audio model folder" in res.stderr


def test_a_clip_shorter_than_a_window_is_set_in_silence(speech):
    """A word clip (1.2 s) teaches from its own frames only: the silence around it carries no target."""
    cfg = T.DistillConfig(batch=8, window=16, burn_in=4, non_speech_prob=0.0, phonetic_batch=0)
    short = synthetic_tracks(speech[:19200])[0]
    short = T.Track(short.feats[:30], short.target[:30], short.valid[:30])
    batches = T.Batches([short], [], np.zeros(8, np.float32), cfg, 4)
    padded = batches.tracks[0]
    assert len(padded.feats) > batches.span and padded.valid.sum() == 30
    assert np.allclose(padded.feats[0], padded.feats[-1])  # silence both sides
    seen = 0
    for step in range(20):
        x, y, m, _ = batches.batch(step)
        seen += int(m.sum())
        assert (y[m == 0] == 0).all()
    assert seen > 0
