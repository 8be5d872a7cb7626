"""`dhlive distill-audio`: train the audio model on prepared avatars that have sound.

    avatars -> clips (audio + real mouth per frame) -> mouth PCA fitted on them
            -> augmented copies of each clip's audio (pitch, speed, noise), features cached
            -> batches of windows, with stretches replaced by non-speech (silence, tones,
               music, noise) whose target is the closed mouth
            + windows of synthetic speech (espeak-ng, many languages and voices) whose
              phonemes give the visible articulation each frame (opening, rounding, closure)
            -> L1 on coefficients + L1 on their frame-to-frame change and spread, and, from a
               small extra head on the LSTM (not shipped), L1 on the synthetic articulation
            -> OUT/audio_model.pt + OUT/pca.pkl (+ train_state.pt and phonetic_corpus.npz to
               resume, log.csv, loss.png)

The clips are split by clip, never by frame: evaluation clips (--eval-avatars) are not seen
in training. Batches (and dropout) are drawn from generators seeded by (seed, step), so a
resumed run takes the same steps as one that was never stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..audio.clips import Clip, load_clip, shared_recordings
from ..audio.features import FEATURE_DIM, FPS, N_MELS, SAMPLE_RATE, fbank_features
from ..audio.model import AudioModel, AudioModelConfig
from ..audio.phonetic import N_FEATURES
from ..audio.inference import save_audio_model
from ..audio.mouth import fit_basis, load_basis, mouth_deltas, save_basis
from ..errors import DhliveError
from ..device import pick_device
from .common import CsvLog, clear_results, cosine_lr, write_plot
from ..formats import (AUDIO_MODEL_FILE, AUDIO_TRAIN_STATE_FORMAT, MOUTH_PCA_FILE, PHONETIC_CORPUS_FILE, file_sha256,
                       load_checkpoint, load_phonetic_corpus, save_checkpoint, save_phonetic_corpus)

STATE_FILE = "train_state.pt"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"
EVAL_FILE = "eval.json"


@dataclass
class DistillConfig:
    steps: int = 2000
    batch: int = 32
    window: int = 40  # frames per training window (1.6 s) that carry loss
    burn_in: int = 10  # frames before each window that only warm the LSTM up
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    velocity_weight: float = 1.0  # loss on the change between frames (articulation, no lag)
    spread_weight: float = 1.0  # loss on each window's spread of each coefficient (against mumbling)
    seed: int = 0
    # mouth representation (docs/audio.md)
    mouth_kind: str = "lips+pixels"
    n_coeffs: int = 8
    lip_weight: float = 2.0
    # augmentation
    pitch_semitones: float = 3.0  # copies shifted by up to this many semitones either way
    speed_range: float = 0.12  # copies played up to 12% slower or faster
    copies: int = 4  # augmented copies per clip, besides the original
    noise_snr_db: tuple = (8.0, 35.0)  # additive noise on the copies
    gain_db: float = 12.0  # random level change per window, either way
    non_speech_prob: float = 0.5  # chance a window has a stretch of non-speech (target: closed)
    freq_masks: int = 2  # SpecAugment: mel bands of up to 12 bins hidden per window
    time_masks: int = 1  # and stretches of up to 3 frames
    # synthetic speech with known phonemes (train/speech_corpus.py): teaches the LSTM to hear
    # articulation (opening, rounding, lip closure...) the same way in any voice and language
    phonetic_seconds: float = 1800.0  # of espeak-ng speech (0: none)
    phonetic_batch: int = 16  # its windows per batch, besides the `batch` real ones
    phonetic_weight: float = 2.0  # weight of the L1 on the articulation heard in them
    model: dict = field(default_factory=dict)  # AudioModelConfig overrides (lookahead, widths)
    checkpoint_every: int = 250
    log_every: int = 25


# --- data ---------------------------------------------------------------------------------

@dataclass
class Track:
    """One playable copy of a clip: features and targets on a common 25 fps timeline."""

    feats: np.ndarray  # (T, 160)
    target: np.ndarray  # (T, k) coefficients
    valid: np.ndarray  # (T,) bool: a real mouth exists at this frame


def _targets_on_timeline(clip: Clip, coeffs: np.ndarray, n: int, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients at the frames of a copy played `speed` times faster (1 = original)."""
    full = np.full((clip.n_timeline + 1, coeffs.shape[1]), np.nan, np.float32)
    full[clip.frames] = coeffs
    pos = np.arange(n) * speed  # source frame each new frame shows
    lo = np.clip(np.floor(pos).astype(int), 0, len(full) - 1)
    hi = np.clip(lo + 1, 0, len(full) - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    tgt = (1 - w) * full[lo] + w * full[hi]
    exact = w[:, 0] < 1e-6
    tgt[exact] = full[lo[exact]]
    valid = np.isfinite(tgt).all(1)
    return np.nan_to_num(tgt), valid


def _noise(rng, n: int) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if rng.random() < 0.5:
        return white
    spec = np.fft.rfft(white)  # pink: 1/f power
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    pink = np.fft.irfft(spec, n).astype(np.float32)
    return pink / (pink.std() + 1e-8)


def _add_noise(audio: np.ndarray, snr_db: float, rng) -> np.ndarray:
    power = float(np.mean(audio ** 2)) + 1e-10
    return audio + _noise(rng, len(audio)) * math.sqrt(power / 10 ** (snr_db / 10))


def augmented_copies(clip: Clip, coeffs: np.ndarray, cfg: DistillConfig, rng) -> list[Track]:
    """The clip as it is, and cfg.copies copies changed in pitch, speed and noise."""
    tracks = []
    feats = clip.features()
    tgt, valid = _targets_on_timeline(clip, coeffs, len(feats), 1.0)
    tracks.append(Track(feats, tgt, valid))
    if cfg.copies <= 0:
        return tracks
    import librosa  # slow to import; only training needs it

    for _ in range(cfg.copies):
        audio = clip.audio
        semis = float(rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones))
        speed = float(np.exp(rng.uniform(np.log(1 - cfg.speed_range), np.log(1 + cfg.speed_range))))
        if abs(semis) > 0.1:
            audio = librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=semis)
        if abs(speed - 1) > 0.01:
            audio = librosa.effects.time_stretch(audio, rate=speed)
        audio = _add_noise(audio.astype(np.float32), float(rng.uniform(*cfg.noise_snr_db)), rng)
        peak = float(np.abs(audio).max())
        audio = audio / peak * 0.9 if peak > 0.99 else audio
        feats = fbank_features(audio.astype(np.float32))
        tgt, valid = _targets_on_timeline(clip, coeffs, len(feats), speed)
        tracks.append(Track(feats, tgt, valid))
    return tracks


def non_speech_pool(rng, seconds: float = 6.0) -> list[np.ndarray]:
    """Feature sequences of sounds during which nobody speaks: silence with a faint floor,
    steady and gliding tones, hum, synthetic music (notes, chords, drums), noise."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    db = lambda lo, hi: 10 ** (rng.uniform(lo, hi) / 20)  # noqa: E731
    sounds = [np.zeros(n, np.float32)]
    for _ in range(3):
        sounds.append(_noise(rng, n) * db(-90, -55))
    for _ in range(4):
        f = rng.uniform(80, 3000)
        glide = rng.uniform(-0.3, 0.3) * f * t / seconds
        sounds.append(np.sin(2 * np.pi * (f + glide) * t) * db(-40, -3))
    for mains in (50, 60):
        sounds.append(sum(np.sin(2 * np.pi * mains * h * t) / h for h in range(1, 6)) * db(-45, -15))
    for _ in range(6):  # music: a note or chord every 0.15-0.6 s with harmonics and decay, some drums
        music = np.zeros(n)
        pos = 0
        while pos < n:
            length = int(rng.uniform(0.15, 0.6) * SAMPLE_RATE)
            seg = np.arange(min(length, n - pos)) / SAMPLE_RATE
            for _ in range(rng.integers(1, 4)):
                f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
                music[pos:pos + len(seg)] += sum(np.sin(2 * np.pi * f0 * h * seg) / h ** 1.5 for h in range(1, 8)) * np.exp(-seg * rng.uniform(1, 6))
            if rng.random() < 0.4:
                hit = min(int(0.05 * SAMPLE_RATE), len(seg))
                music[pos:pos + hit] += _noise(rng, hit) * np.exp(-np.arange(hit) / 200) * 2
            pos += length
        sounds.append(music / (np.abs(music).max() + 1e-9) * db(-30, -3))
    for _ in range(3):
        sounds.append(_noise(rng, n) * db(-45, -20))
    return [fbank_features(np.asarray(s, np.float32)) for s in sounds]


class Batches:
    """Windows drawn from the tracks, augmented on the fly; batch(step) is a pure function of step."""

    def __init__(self, tracks: list[Track], pool: list[np.ndarray], closed: np.ndarray, cfg: DistillConfig, lookahead: int,
                 phonetic: list[Track] = ()):
        self.tracks, self.pool, self.closed, self.cfg, self.lookahead = tracks, pool, closed, cfg, lookahead
        self.span = cfg.burn_in + cfg.window + lookahead  # feature rows per window
        self.usable, self.weights = self._windows(tracks)
        if not self.usable:
            raise DhliveError(f"no clip is longer than {self.span / FPS:.1f} s, the training window")
        self.phonetic = list(phonetic)
        self.n_phonetic = cfg.phonetic_batch if self.phonetic else 0
        if self.n_phonetic:
            self.phonetic_usable, self.phonetic_weights = self._windows(self.phonetic)

    def _windows(self, tracks):
        ok = [i for i, tr in enumerate(tracks) if len(tr.feats) > self.span and tr.valid.any()]
        lengths = np.array([len(tracks[i].feats) - self.span for i in ok], np.float64)
        return ok, lengths / max(lengths.sum(), 1.0)

    def batch(self, step: int):
        """(x, y, m, a): feature windows, the first cfg.batch of real clips with their target
        coefficients y and mask m, then those of synthetic speech with their articulation a."""
        cfg, B = self.cfg, self.cfg.burn_in
        rng = np.random.default_rng([cfg.seed, step])
        x = np.empty((cfg.batch + self.n_phonetic, self.span, FEATURE_DIM), np.float32)
        y = np.empty((cfg.batch, cfg.window, len(self.closed)), np.float32)
        m = np.empty((cfg.batch, cfg.window), np.float32)
        a = np.empty((self.n_phonetic, cfg.window, N_FEATURES), np.float32)
        for b in range(cfg.batch + self.n_phonetic):
            real = b < cfg.batch
            tracks, usable, weights = ((self.tracks, self.usable, self.weights) if real else
                                       (self.phonetic, self.phonetic_usable, self.phonetic_weights))
            tr = tracks[usable[rng.choice(len(usable), p=weights)]]
            s = int(rng.integers(0, len(tr.feats) - self.span + 1))
            x[b] = tr.feats[s:s + self.span]
            # output row j belongs to frame s + j - L; loss on frames s + B .. s + B + window - 1
            if real:
                y[b] = tr.target[s + B:s + B + cfg.window]
                m[b] = tr.valid[s + B:s + B + cfg.window]
                if rng.random() < cfg.non_speech_prob:
                    self._insert_non_speech(rng, x[b], y[b], m[b])
            else:
                a[b - cfg.batch] = tr.target[s + B:s + B + cfg.window]
            x[b] += 2 * math.log(10) / 20 * rng.uniform(-cfg.gain_db, cfg.gain_db) * (x[b] > -15)  # gain on log mel
            self._mask(rng, x[b])
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m), torch.from_numpy(a)

    def _mask(self, rng, x):
        """SpecAugment: hide random mel bands (in both fbank frames of a row) and a few rows."""
        mels = x.reshape(len(x), 2, N_MELS)
        for _ in range(self.cfg.freq_masks):
            w = int(rng.integers(0, 13))
            f = int(rng.integers(0, N_MELS - w + 1))
            mels[:, :, f:f + w] = mels.mean()
        for _ in range(self.cfg.time_masks):
            w = int(rng.integers(0, 4))
            t = int(rng.integers(0, len(x) - w + 1))
            mels[t:t + w] = mels.mean()

    def _insert_non_speech(self, rng, x, y, m):
        """Replace feature rows a..b with a non-speech sound; frames whose whole view
        (their rows up to the look-ahead) is non-speech must show the closed mouth."""
        cfg, L, B = self.cfg, self.lookahead, self.cfg.burn_in
        length = int(rng.integers(L + 8, self.span + 1))
        a = int(rng.integers(0, self.span - length + 1))
        src = self.pool[rng.integers(len(self.pool))]
        o = int(rng.integers(0, len(src) - length + 1))
        x[a:a + length] = src[o:o + length]
        # frame f (row f - s) sees rows up to f - s + L; closed if rows (f-s-2 .. f-s+L) are all inside
        for j in range(cfg.window):
            row = B + j
            if a + 2 <= row and row + L < a + length:
                y[j] = self.closed
                m[j] = 1.0
            elif a <= row + L and row - 2 < a + length:
                m[j] = 0.0  # partly speech, partly not: no target is right


# --- training -----------------------------------------------------------------------------

def masked_l1(pred, target, mask):
    w = mask.unsqueeze(-1).expand_as(pred)
    return (w * (pred - target).abs()).sum() / w.sum().clamp_min(1)


def masked_std(x, mask):
    """(B,T,K) -> (B,K) standard deviation over the frames where mask (B,T) is set."""
    w = mask.unsqueeze(-1)
    n = w.sum(1).clamp_min(1)
    mean = (w * x).sum(1) / n
    return ((w * (x - mean.unsqueeze(1)) ** 2).sum(1) / n + 1e-8).sqrt()


def loss_terms(model: AudioModel, x, y, m, burn_in: int, phonetic_head: nn.Module | None = None, a=None):
    """L1 on the coefficients, on their change between frames, and on their spread per window;
    and L1 on the articulation `phonetic_head` reads from the LSTM in the synthetic windows
    (the rows of x after the first len(y)). Returns (value, velocity, spread, phonetic)."""
    heard, _ = model.hear(x)
    L, n, w = model.config.lookahead, len(y), y.shape[1]
    heard = heard[:, burn_in + L:burn_in + L + w]
    pred = model.mouth(heard[:n]).float()
    value = masked_l1(pred, y, m)
    velocity = masked_l1(pred[:, 1:] - pred[:, :-1], y[:, 1:] - y[:, :-1], m[:, 1:] * m[:, :-1])
    spread = (masked_std(pred, m) - masked_std(y, m)).abs().mean()
    phonetic = torch.zeros((), device=x.device)
    if phonetic_head is not None and a is not None and len(a):
        phonetic = (phonetic_head(heard[n:]).float() - a).abs().mean()
    return value, velocity, spread, phonetic


def _lr(step: int, cfg: DistillConfig) -> float:
    return cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)


def _eval_aperture_r(model, basis, clips) -> float:
    """Mean aperture Pearson r over the evaluation clips, the model run as in use (on the CPU)."""
    from ..audio.evaluate import evaluate_clip

    device = next(model.parameters()).device
    model.cpu().eval()
    r = float(np.mean([evaluate_clip(model, basis, c)["aperture_r"] for c in clips]))
    model.to(device).train()
    return r


def _eval_loss(model, clips_tracks, device) -> float:
    """Mean L1 of the coefficients over whole evaluation clips (no augmentation)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for tr in clips_tracks:
            x = torch.from_numpy(np.concatenate([tr.feats, np.repeat(tr.feats[-1:], model.config.lookahead, 0)]))[None].to(device)
            out, _ = model(x)
            pred = out[0, model.config.lookahead:].float().cpu().numpy()
            total += float(np.abs(pred - tr.target)[tr.valid].sum())
            count += int(tr.valid.sum()) * pred.shape[1]
    model.train()
    return total / max(count, 1)


def _phonetic_corpus(path: Path, cfg: DistillConfig, resume: bool, progress: bool) -> list:
    """The synthetic speech of this run: made once, then read back whenever the folder is
    used with the same settings (a resumed run sees exactly what the first part saw)."""
    if cfg.phonetic_seconds <= 0 or cfg.phonetic_batch <= 0:
        return []
    meta = {"seconds": cfg.phonetic_seconds, "seed": cfg.seed}
    if path.exists():
        found, items = load_phonetic_corpus(path)
        if {k: found.get(k) for k in meta} == meta:
            return items
        if resume:
            raise DhliveError(f"{path}: made for other settings ({found.get('seconds')} s, seed {found.get('seed')}); "
                              "cannot resume")
    from .speech_corpus import phonetic_corpus

    if progress:
        tqdm.write(f"synthesising {cfg.phonetic_seconds:.0f} s of labelled speech (espeak-ng)")
    items = phonetic_corpus(cfg.phonetic_seconds, cfg.seed)
    save_phonetic_corpus(path, meta, items)
    return load_phonetic_corpus(path)[1]  # the stored (float16) copy, as a resumed run will see it


def distill(avatars: list, out: str | os.PathLike, cfg: DistillConfig | None = None, *,
            eval_avatars: list = (), resume: bool = False, device: str = "auto", progress: bool = True,
            stop_at: int | None = None) -> dict:
    """Train an audio model; returns a summary (steps, seconds, final losses, evaluation).

    stop_at: stop after this step with a resumable state (time-sliced runs, e.g. on a lent GPU);
    the model files are written only when all cfg.steps are done."""
    cfg = cfg or DistillConfig()
    out = Path(out)
    if not avatars:
        raise DhliveError("no training avatars given")
    names = {Path(a).resolve() for a in avatars}
    overlap = names & {Path(a).resolve() for a in eval_avatars}
    if overlap:
        raise DhliveError(f"{sorted(overlap)[0]}: is both a training and an evaluation avatar (split by clip)")
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    clips = [load_clip(a) for a in tqdm(avatars, desc="loading avatars", disable=not progress)]
    held = [load_clip(a) for a in eval_avatars]
    for group in shared_recordings(held + clips) if held else ():
        both = sorted(group)
        if both[0] < len(held) <= both[-1]:  # an evaluation clip heard in training scores what it learned
            raise DhliveError(f"{eval_avatars[both[0]]}: has the same recording as training avatar "
                              f"{avatars[both[-1] - len(held)]} (split by recording)")
    out.mkdir(parents=True, exist_ok=True)
    state_path, basis_path = out / STATE_FILE, out / MOUTH_PCA_FILE

    state = None
    if resume and state_path.exists():
        state = load_checkpoint(state_path, AUDIO_TRAIN_STATE_FORMAT)
        basis = load_basis(basis_path)
        if state.get("mouth_pca_sha256") != file_sha256(basis_path):
            raise DhliveError(f"{out}: {MOUTH_PCA_FILE} changed since {STATE_FILE} was written; cannot resume")
    else:
        clear_results(out, (AUDIO_MODEL_FILE, EVAL_FILE))
        deltas = [mouth_deltas(c.lips, c.images, c.rest) for c in clips]
        basis = fit_basis(np.concatenate([d[0] for d in deltas]), np.concatenate([d[1] for d in deltas]),
                          cfg.mouth_kind, cfg.n_coeffs, cfg.lip_weight)
        save_basis(basis_path, basis)

    coeffs = [basis.encode(*mouth_deltas(c.lips, c.images, c.rest)) for c in clips]
    tracks = []
    for c, k in zip(tqdm(clips, desc="augmenting audio", disable=not progress), coeffs):
        tracks += augmented_copies(c, k, cfg, rng)
    eval_tracks = []
    for c in held:
        f = c.features()
        eval_tracks.append(Track(f, *_targets_on_timeline(c, basis.encode(*mouth_deltas(c.lips, c.images, c.rest)), len(f), 1.0)))

    try:
        model_cfg = AudioModelConfig(**{**cfg.model, "n_coeffs": basis.n_coeffs})
    except TypeError as e:
        raise DhliveError(f"config 'model': {e}") from None
    model = AudioModel(model_cfg)
    model.closed.copy_(torch.from_numpy(basis.closed))
    phonetic = [Track(f, a, np.ones(len(f), bool)) for f, a in _phonetic_corpus(out / PHONETIC_CORPUS_FILE, cfg,
                                                                                   state is not None, progress)]
    batches = Batches(tracks, non_speech_pool(rng), basis.closed, cfg, model_cfg.lookahead, phonetic)
    # reads the articulation of synthetic speech from the LSTM; a training aid, not shipped
    phonetic_head = nn.Linear(model_cfg.lstm_dim, N_FEATURES) if phonetic else None
    trained = nn.ModuleList([model] + ([phonetic_head] if phonetic_head is not None else []))
    trained.to(dev).train()
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        if (phonetic_head is None) != ("phonetic_head" not in state):
            said = "without" if phonetic_head is not None else "with"
            raise DhliveError(f"{state_path}: was trained {said} synthetic speech (phonetic_seconds); "
                              "resume with the settings it started with")
        if phonetic_head is not None:
            phonetic_head.load_state_dict(state["phonetic_head"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    amp = dev.type == "cuda"

    log_path = out / LOG_FILE
    log = CsvLog(log_path, ["step", "lr", "loss", "value", "velocity", "phonetic", "eval_loss", "eval_aperture_r",
                            "seconds"], start)

    t0 = time.time()
    sums = np.zeros(4)
    n_sum = 0
    last_loss = None
    end = cfg.steps if stop_at is None else max(start, min(cfg.steps, stop_at))
    bar = tqdm(range(start, end), desc="distill-audio", initial=start, total=cfg.steps, disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout too is a function of the step
        x, y, m, a = (t.to(dev, non_blocking=True) for t in batches.batch(step))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            value, velocity, spread, articulation = loss_terms(model, x, y, m, cfg.burn_in, phonetic_head, a)
        loss = (value + cfg.velocity_weight * velocity + cfg.spread_weight * spread
                + cfg.phonetic_weight * articulation)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        opt.step()
        last_loss = loss.item()
        sums += (last_loss, value.item(), velocity.item(), articulation.item())
        n_sum += 1
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            mean = sums / n_sum
            ev = er = None
            if held and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                ev = _eval_loss(model, eval_tracks, dev)
                er = _eval_aperture_r(model, basis, held)
            log.write({"step": done, "lr": _lr(step, cfg), "loss": mean[0], "value": mean[1], "velocity": mean[2],
                       "phonetic": mean[3] if phonetic else None, "eval_loss": ev, "eval_aperture_r": er,
                       "seconds": round(time.time() - t0, 1)})
            bar.set_postfix(loss=f"{mean[0]:.4f}")
            sums[:] = 0
            n_sum = 0
        if done % cfg.checkpoint_every == 0 or done in (cfg.steps, end):
            save_checkpoint(state_path, AUDIO_TRAIN_STATE_FORMAT, {
                "step": done, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                **({"phonetic_head": {k: v.detach().cpu() for k, v in phonetic_head.state_dict().items()}}
                   if phonetic_head is not None else {}),
                "optimizer": opt.state_dict(), "mouth_pca_sha256": file_sha256(basis_path), "config": asdict(cfg)})
            write_plot(log_path, out / PLOT_FILE, ("loss", "value", "velocity", "phonetic", "eval_loss"), "L1 (coefficient units)",
                       "eval_aperture_r", "held-out aperture r")

    bar.close()
    if end < cfg.steps:
        return {"out": str(out), "steps": end, "seconds": round(time.time() - t0, 1), "stopped": True}
    model.cpu().eval()
    info = {"steps": cfg.steps, "clips": [c.name for c in clips], "frames": int(sum(len(c.frames) for c in clips)),
            "config": asdict(cfg), "device": str(dev)}
    save_audio_model(out / AUDIO_MODEL_FILE, model, basis_path, info)
    summary = {"out": str(out), "steps": cfg.steps, "seconds": round(time.time() - t0, 1),
               "final_loss": last_loss}
    if held:
        from ..audio.evaluate import evaluate_clips
        from ..formats import write_json

        report = evaluate_clips(model, basis, held)
        write_json(out / EVAL_FILE, report)
        summary["eval"] = report["mean"]
    return summary
