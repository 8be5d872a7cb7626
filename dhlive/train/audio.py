"""`dhlive distill-audio`: train the audio model on prepared avatars that have sound.

    avatars -> clips (audio + real mouth per frame) -> mouth PCA fitted on them
            -> augmented copies of each clip's audio, batches of windows with stretches of
               non-speech whose target is the closed mouth (train/audio_data.py)
            + windows of synthetic speech (espeak-ng, many languages and voices) whose
              phonemes give the visible articulation each frame (opening, rounding, closure)
            -> L1 on coefficients + L1 on their frame-to-frame change and spread, and, from a
               small extra head on the LSTM (not shipped), L1 on the synthetic articulation
            -> OUT/audio_model.pt + OUT/pca.pkl (+ train_state.pt and phonetic_corpus.npz to
               resume, log.csv, loss.png)

The clips are split by clip, never by frame: evaluation clips (--eval-avatars) are not seen
in training, nor any clip that shares a recording with one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..audio.clips import load_clip, shared_recordings
from ..audio.evaluate import evaluate_clip, evaluate_clips
from ..audio.inference import save_audio_model
from ..audio.model import AudioModel, AudioModelConfig
from ..audio.phonetic import N_FEATURES
from ..config import fields, number, numbers
from ..constants import FPS
from ..device import pick_device
from ..errors import DhliveError
from ..formats import (
    AUDIO_MODEL_FILE,
    AUDIO_TRAIN_STATE_FORMAT,
    PHONETIC_CORPUS_FILE,
    cache_dir,
    file_sha256,
    load_phonetic_corpus,
    save_phonetic_corpus,
    write_json,
)
from ..mouth import MouthFitConfig, mouth_deltas
from .audio_data import (
    AUGMENT_CACHE,
    MIN_TRACK_FRAMES,
    Batches,
    Track,
    augmented_copies,
    non_speech_pool,
    targets_on_timeline,
)
from .loop import EVAL_FILE, LOG_FILE, PLOT_FILE, RunningMean, TrainRun, cosine_lr, write_plot


@dataclass
class DistillConfig(MouthFitConfig):
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
    min_clip_seconds: float = 1.0  # shorter training clips are refused (shorter than a window: set in silence)
    checkpoint_every: int = 250
    log_every: int = 25

    def __post_init__(self):
        super().__post_init__()
        fields(self, "steps batch window checkpoint_every log_every", low=1, integer=True)
        fields(self, "burn_in warmup seed copies freq_masks time_masks phonetic_batch", low=0, integer=True)
        fields(self, "weight_decay velocity_weight spread_weight pitch_semitones gain_db phonetic_seconds", low=0)
        fields(self, "phonetic_weight", low=0)
        number("lr", self.lr, low=0, above=True)
        number("min_clip_seconds", self.min_clip_seconds, low=MIN_TRACK_FRAMES / FPS)
        number("speed_range", self.speed_range, low=0, high=0.9)
        number("non_speech_prob", self.non_speech_prob, low=0, high=1)
        numbers("noise_snr_db", self.noise_snr_db, 2)
        self.model_config(n_coeffs=self.n_coeffs)

    def model_config(self, **fixed) -> AudioModelConfig:
        if not isinstance(self.model, dict):
            raise DhliveError(f"model must be a mapping of audio model options, not {self.model!r}")
        try:
            return AudioModelConfig(**{**self.model, **fixed})
        except TypeError as e:
            raise DhliveError(f"model: {e}") from None


# --- the loss ---------------------------------------------------------------------------------


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
    heard = heard[:, burn_in + L : burn_in + L + w]
    pred = model.mouth(heard[:n]).float()
    value = masked_l1(pred, y, m)
    velocity = masked_l1(pred[:, 1:] - pred[:, :-1], y[:, 1:] - y[:, :-1], m[:, 1:] * m[:, :-1])
    spread = (masked_std(pred, m) - masked_std(y, m)).abs().mean()
    phonetic = torch.zeros((), device=x.device)
    if phonetic_head is not None and a is not None and len(a):
        phonetic = (phonetic_head(heard[n:]).float() - a).abs().mean()
    return value, velocity, spread, phonetic


# --- evaluation while training ----------------------------------------------------------------


def _eval_aperture_r(model, basis, clips) -> float:
    """Mean aperture Pearson r over the evaluation clips, the model run as in use (on the CPU)."""
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
            tail = np.repeat(tr.feats[-1:], model.config.lookahead, 0)
            out, _ = model(torch.from_numpy(np.concatenate([tr.feats, tail]))[None].to(device))
            pred = out[0, model.config.lookahead :].float().cpu().numpy()
            total += float(np.abs(pred - tr.target)[tr.valid].sum())
            count += int(tr.valid.sum()) * pred.shape[1]
    model.train()
    return total / max(count, 1)


# --- the run ------------------------------------------------------------------------------------


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
            raise DhliveError(
                f"{path}: made for other settings ({found.get('seconds')} s, seed {found.get('seed')}); cannot resume"
            )
    from .speech_corpus import phonetic_corpus

    if progress:
        tqdm.write(f"synthesising {cfg.phonetic_seconds:.0f} s of labelled speech (espeak-ng)")
    items = phonetic_corpus(cfg.phonetic_seconds, cfg.seed)
    save_phonetic_corpus(path, meta, items)
    return load_phonetic_corpus(path)[1]  # the stored (float16) copy, as a resumed run will see it


def _clips(avatars: list, eval_avatars: list, min_seconds: float, progress: bool) -> tuple[list, list]:
    """The training and evaluation clips, refused when they overlap or share a recording."""
    if not avatars:
        raise DhliveError("no training avatars given")
    overlap = {Path(a).resolve() for a in avatars} & {Path(a).resolve() for a in eval_avatars}
    if overlap:
        raise DhliveError(f"{sorted(overlap)[0]}: is both a training and an evaluation avatar (split by clip)")
    clips = [load_clip(a, min_seconds=min_seconds) for a in tqdm(avatars, desc="loading avatars", disable=not progress)]
    held = [load_clip(a) for a in eval_avatars]
    for group in shared_recordings(held + clips) if held else ():
        both = sorted(group)
        if both[0] < len(held) <= both[-1]:  # an evaluation clip heard in training scores what it learned
            raise DhliveError(
                f"{eval_avatars[both[0]]}: has the same recording as training avatar "
                f"{avatars[both[-1] - len(held)]} (split by recording)"
            )
    return clips, held


def avatar_versions(avatars: list) -> list[str]:
    """Each training avatar by name and the hash of its meta.json (a re-prepared avatar differs)."""
    return [f"{Path(a).name}:{file_sha256(Path(a) / 'meta.json')[:16]}" for a in avatars]


def _data(cfg: DistillConfig, clips: list, held: list, basis, out: Path, resume: bool, progress: bool):
    """(batches, evaluation tracks): augmented copies of the training clips, non-speech sounds,
    the synthetic speech of the run, and the evaluation clips as they are."""
    rng = np.random.default_rng(cfg.seed)
    tracks = []
    for c in tqdm(clips, desc="augmenting audio", disable=not progress):
        tracks += augmented_copies(
            c, basis.encode(*mouth_deltas(c.lips, c.images, c.rest)), cfg, cache_dir() / AUGMENT_CACHE
        )
    eval_tracks = [
        Track(
            c.features(),
            *targets_on_timeline(c, basis.encode(*mouth_deltas(c.lips, c.images, c.rest)), c.n_timeline, 1.0),
        )
        for c in held
    ]
    phonetic = [
        Track(f, a, np.ones(len(f), bool))
        for f, a in _phonetic_corpus(out / PHONETIC_CORPUS_FILE, cfg, resume, progress)
    ]
    lookahead = cfg.model_config(n_coeffs=basis.n_coeffs).lookahead
    return Batches(tracks, non_speech_pool(rng), basis.closed, cfg, lookahead, phonetic), eval_tracks


def _held_out(model, basis, held: list, eval_tracks: list, dev) -> dict:
    """Log columns scoring the evaluation clips, empty without any."""
    if not held:
        return {}
    return {"eval_loss": _eval_loss(model, eval_tracks, dev), "eval_aperture_r": _eval_aperture_r(model, basis, held)}


PLOTTED = ("loss", "value", "velocity", "phonetic", "eval_loss")
PLOTTED_SCORE = ("eval_aperture_r", "held-out aperture r")


def distill(
    avatars: list,
    out: str | os.PathLike,
    cfg: DistillConfig | None = None,
    *,
    eval_avatars: list = (),
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    stop_at: int | None = None,
    mouth=None,
) -> dict:
    """Train an audio model; returns a summary (steps, seconds, final losses, evaluation).

    mouth: a mouth PCA file to predict the coefficients of, instead of fitting one on the
    training clips (so that a renderer trained on that PCA stays consistent with the model).
    stop_at: stop after this step with a resumable state (time-sliced runs); the model files
    are written only when all cfg.steps are done."""
    cfg = cfg or DistillConfig()
    out = Path(out)
    clips, held = _clips(list(avatars), list(eval_avatars), cfg.min_clip_seconds, progress)
    dev = pick_device(device)
    out.mkdir(parents=True, exist_ok=True)
    run = TrainRun(
        out,
        AUDIO_TRAIN_STATE_FORMAT,
        cfg,
        {"avatars": avatar_versions(avatars)},
        resume=resume,
        stop_at=stop_at,
        results=(AUDIO_MODEL_FILE, EVAL_FILE),
        progress=progress,
        log_columns=["step", "lr", "loss", "value", "velocity", "phonetic", "eval_loss", "eval_aperture_r", "seconds"],
    )
    basis_path, basis = run.mouth_basis(mouth, lambda: cfg.fit([(c.lips, c.images, c.rest) for c in clips]))
    torch.manual_seed(cfg.seed)
    batches, eval_tracks = _data(cfg, clips, held, basis, out, run.state is not None, progress)
    model = AudioModel(cfg.model_config(n_coeffs=basis.n_coeffs))
    model.closed.copy_(torch.from_numpy(basis.closed))
    # reads the articulation of synthetic speech from the LSTM; a training aid, not shipped
    phonetic_head = nn.Linear(model.config.lstm_dim, N_FEATURES) if batches.phonetic else None
    trained = nn.ModuleList([model] + ([phonetic_head] if phonetic_head is not None else []))
    trained.to(dev).train()
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if run.state is not None:
        trained.load_state_dict(run.state["trained"])
        opt.load_state_dict(run.state["optimizer"])
    losses, amp = RunningMean(), dev.type == "cuda"
    for step in run.steps("distill-audio"):
        lr = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [t.to(dev, non_blocking=True) for t in batches.batch(step)]
        losses.add(**_train_step(cfg, model, phonetic_head, trained, opt, batch, amp))
        done = step + 1
        if run.due(done, cfg.log_every):
            scores = _held_out(model, basis, held, eval_tracks, dev) if run.due(done, cfg.checkpoint_every) else {}
            run.log.write({"step": done, "lr": lr, **losses.take(), **scores, "seconds": run.seconds})
        if run.due(done, cfg.checkpoint_every):
            run.save(
                done,
                {"trained": _cpu(trained), "optimizer": opt.state_dict(), "mouth_pca_sha256": file_sha256(basis_path)},
            )
            write_plot(out / LOG_FILE, out / PLOT_FILE, PLOTTED, "L1 (coefficient units)", *PLOTTED_SCORE)
    if run.stopped:
        return run.result()
    model.cpu().eval()
    info = {
        "steps": cfg.steps,
        "clips": [c.name for c in clips],
        "frames": int(sum(len(c.frames) for c in clips)),
        "config": run.config,
        "device": str(dev),
    }
    save_audio_model(out / AUDIO_MODEL_FILE, model, basis_path, info)
    summary = run.result()
    if held:
        report = evaluate_clips(model, basis, held)
        write_json(out / EVAL_FILE, report)
        summary["eval"] = report["mean"]
    return summary


def _train_step(cfg: DistillConfig, model, phonetic_head, trained, opt, batch, amp: bool) -> dict:
    """One optimiser step on a batch (windows, targets, loss mask, articulation); its losses."""
    x, y, m, a = batch
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        value, velocity, spread, articulation = loss_terms(model, x, y, m, cfg.burn_in, phonetic_head, a)
    loss = value + cfg.velocity_weight * velocity + cfg.spread_weight * spread + cfg.phonetic_weight * articulation
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
    opt.step()
    return {
        "loss": loss.item(),
        "value": value.item(),
        "velocity": velocity.item(),
        **({"phonetic": articulation.item()} if phonetic_head is not None else {}),
    }


def _cpu(module: nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
