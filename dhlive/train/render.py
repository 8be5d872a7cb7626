"""`dhlive train-render`: train the renderer on prepared avatars, on CPU or GPU(s).

    avatars -> one render pack each (train/packs.py), cached in OUT/packs
            -> mouth PCA (given with --mouth, or fitted on the training frames) -> coefficients
    each step, per sample: the real mouth's coefficients + noise -> decoded prompt and lip sketch
            (render/inputs.py, the very functions inference uses) -> renderer -> composite
    loss:   L1 inside the repaint region + ST-LPIPS on the mouth crop and the shrunken window
            + LSGAN from a window and a mouth-patch discriminator (train/gan.py)
            + (clip stage) a temporal discriminator over consecutive mouth crops (flicker)
    ->      OUT/render_model.pt, OUT/pca.pkl, train_state.pt (resume), log.csv, loss.png,
            samples/*.png, and with a hold-out eval.json + eval_strip.png

A per-avatar fine-tune is `--init base/render_model.pt` on one avatar: its last frames are
held out and scored (mouth-crop PSNR/SSIM, lower-face SSIM) against the real frames,
rendered from their real mouths. Batches are a function of (seed, step, rank), so a killed
and resumed run takes the steps an uninterrupted one would. Multi-GPU: launch with
`torchrun --nproc_per_node=G -m dhlive.cli train-render ...` (DistributedDataParallel).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import choice, fields, number
from ..device import frame_workers, pick_device
from ..errors import DhliveError
from ..formats import (
    RENDER_MODEL_FILE,
    RENDER_TRAIN_STATE_FORMAT,
    file_sha256,
    load_render_pack,
    write_json,
)
from ..metrics import checkerboard, psnr, sharpness, ssim
from ..mouth import MouthFitConfig, mouth_deltas
from ..render import inputs
from ..render.checkpoint import load_renderer, save_renderer
from ..render.model import REFERENCE_CHANNELS, Renderer, preset
from .detail import detail_gap
from .gan import PatchDiscriminator, lsgan_g, mouth_crops, real_vs_fake, stack_time
from .grid import grid_excess
from .loop import EVAL_FILE, LOG_FILE, PLOT_FILE, RunningMean, TrainRun, cosine_lr, write_plot
from .packs import PACK_DIR, AvatarFrames, ensure_pack, load_frames
from .perceptual import STLPIPS

STRIP_FILE = "eval_strip.png"
SAMPLE_DIR = "samples"
STAGES = ("frame", "clip")
BALANCES = ("frames", "avatars")


@dataclass
class TrainRenderConfig(MouthFitConfig):
    renderer: str = "fast"  # network preset (render/model.py)
    model: dict = field(default_factory=dict)  # RenderConfig overrides, e.g. resolution
    stage: str = "frame"  # frame | clip
    steps: int = 3000
    batch: int = 8  # frames per step (clip stage: batch // clip_frames sequences)
    clip_frames: int = 3  # consecutive frames the temporal discriminator judges together
    lr: float = 2e-4
    lr_d: float = 2e-4
    warmup: int = 50
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    perceptual_layers: int = 3  # VGG blocks of ST-LPIPS used (5 = all; fewer is cheaper on CPU)
    perceptual_window: int = 4  # also ST-LPIPS on the whole window shrunk by this factor (0: mouth crop only)
    adv_weight: float = 0.02  # window discriminator
    mouth_adv_weight: float = 0.02  # mouth-patch discriminator
    temporal_weight: float = 0.02  # clip stage only
    grid_weight: float = 0.0  # penalty on the mouth's pixel grid beyond the real one's (train/grid.py)
    detail_weight: float = 0.0  # mouth's fine detail against the real one's (train/detail.py)
    gan_start: int = 500  # reconstruction-only steps before the discriminators join
    coeff_noise: float = 0.15  # std of noise on the real mouth's PCA coefficients (units: std of the first)
    colour_jitter: float = 0.0  # strength of one random colour change per sample (colour_change; 0: none)
    balance: str = "frames"  # frames: each avatar drawn by its frame count; avatars: each alike
    holdout: float = 0.0  # last fraction of each avatar's frames kept out of training and scored
    seed: int = 0
    log_every: int = 25
    sample_every: int = 250
    checkpoint_every: int = 250
    eval_every: int = 0  # steps between hold-out scores in the log (0: at checkpoints)

    def __post_init__(self):
        super().__post_init__()
        choice("stage", self.stage, STAGES)
        choice("balance", self.balance, BALANCES)
        number("colour_jitter", self.colour_jitter, low=0, high=3)
        fields(self, "steps batch log_every sample_every checkpoint_every", low=1, integer=True)
        fields(self, "warmup perceptual_window gan_start seed eval_every", low=0, integer=True)
        fields(self, "lr lr_d", low=0, above=True)
        fields(self, "l1_weight perceptual_weight adv_weight mouth_adv_weight temporal_weight coeff_noise", low=0)
        fields(self, "grid_weight detail_weight", low=0)
        number("clip_frames", self.clip_frames, low=2, integer=True)
        number("perceptual_layers", self.perceptual_layers, low=1, high=5, integer=True)
        number("holdout", self.holdout, low=0, high=0.9)
        self.render_config()

    def render_config(self):
        if not isinstance(self.model, dict):
            raise DhliveError(f"model must be a mapping of renderer options, not {self.model!r}")
        try:
            return preset(self.renderer, **self.model)
        except (TypeError, ValueError) as e:
            raise DhliveError(f"renderer config: {e}") from None


# --- batches ------------------------------------------------------------------------------------


def colour_change(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A random linear colour change (3x3, RGB): white balance, saturation, hue and brightness,
    at `strength` 1 about as far as lighting, cameras and make-up move a face's colours.

    Applied alike to a training sample's window, prompt, references and target, it makes the
    colours read from the references right and the colours remembered from training faces
    wrong: the network learns to copy lips, teeth and skin from the person's own frames.
    Linear, so black (outside the prompt, the repaint hole) stays black."""
    gains = np.exp(rng.normal(0.0, 0.08 * strength, 3))
    saturation = np.exp(rng.uniform(-0.3, 0.3) * strength)
    hue = np.deg2rad(rng.uniform(-12.0, 12.0) * strength)
    brightness = np.exp(rng.uniform(-0.15, 0.15) * strength)
    luma = np.array([[0.299, 0.587, 0.114]])
    desaturate = saturation * np.eye(3) + (1.0 - saturation) * np.ones((3, 1)) @ luma
    k = np.ones(3) / np.sqrt(3.0)  # the grey axis: a hue turn is a rotation about it
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    turn = np.eye(3) + np.sin(hue) * cross + (1.0 - np.cos(hue)) * cross @ cross
    return (brightness * np.diag(gains) @ turn @ desaturate).astype(np.float32)


def recolour_references(references: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(n * REFERENCE_CHANNELS, R, R) references with `colour` applied to each one's RGB."""
    refs = references.reshape(-1, REFERENCE_CHANNELS, *references.shape[1:]).copy()
    refs[:, :3] = np.clip(np.einsum("ij,njhw->nihw", colour, refs[:, :3]), 0.0, 1.0)
    return refs.reshape(references.shape)


def frame_inputs(av: AvatarFrames, i: int, coeffs: np.ndarray, basis, colour: np.ndarray | None = None) -> dict:
    """Everything one frame contributes to a batch, built as inference builds it; `colour` (3x3)
    changes the colours of the window and prompt alike (colour_change)."""
    size = av.windows.shape[1]
    prompt, sketch, _ = inputs.mouth_prompt(coeffs, basis, av.rest, av.arrays["canonical_to_window"][i], size)
    repaint = inputs.repaint_mask(av.arrays["repaint"][i], size)
    window = av.windows[i]
    if colour is not None:
        window = np.clip(window.astype(np.float32) @ colour.T, 0.0, 255.0)
        prompt = np.clip(prompt @ colour.T, 0.0, 1.0)
    return {
        "source": inputs.source_input(window, repaint, prompt, sketch),
        "target": window.transpose(2, 0, 1).astype(np.float32) / 255.0,
        "paste": inputs.paste_mask(repaint, keep_above=inputs.nose_row(av.arrays["landmarks"][i], size))[None],
        "box": np.array(inputs.mouth_box(av.lips_window(i), size)),
    }


class Batches:
    def __init__(self, avatars: list[AvatarFrames], basis, cfg: TrainRenderConfig, rank: int = 0):
        self.avatars, self.basis, self.cfg, self.rank = avatars, basis, cfg, rank
        self.t = cfg.clip_frames if cfg.stage == "clip" else 1
        if cfg.balance == "avatars":
            weights = np.ones(len(avatars))
        else:
            weights = np.array([max(a.n_train - self.t + 1, 1) for a in avatars], np.float64)
        self.p = weights / weights.sum()

    def batch(self, step: int) -> dict:
        rng = np.random.default_rng([self.cfg.seed, step, self.rank])
        n_seq = max(1, self.cfg.batch // self.t)
        items, which, refs = [], [], []
        for _ in range(n_seq):
            k = int(rng.choice(len(self.avatars), p=self.p))
            av = self.avatars[k]
            start = int(rng.integers(0, max(av.n_train - self.t + 1, 1)))
            colour = colour_change(rng, self.cfg.colour_jitter) if self.cfg.colour_jitter else None
            for i in range(start, start + self.t):
                c = av.coeffs[i] + self.cfg.coeff_noise * rng.standard_normal(av.coeffs.shape[1]).astype(np.float32)
                items.append(frame_inputs(av, min(i, av.n_train - 1), c, self.basis, colour))
                which.append(k)
                if colour is not None:
                    refs.append(recolour_references(av.references, colour))
        return collate(items, which, self.avatars, refs or None)

    def prefetch(self, start: int, end: int, workers: int, pin: bool = False):
        """Batches of steps start..end-1 in order, built `workers` at a time on threads (the prompts
        are drawn with numpy and OpenCV, which release the GIL) while the device computes; one
        worker or none builds each in the loop. A batch depends on its step alone, so the result is the same."""

        def build(step):
            b = self.batch(step)
            return {k: v.pin_memory() for k, v in b.items()} if pin else b

        with frame_workers(workers) as pool:
            if pool is None:
                for step in range(start, end):
                    yield build(step)
                return
            ahead = deque(pool.submit(build, s) for s in range(start, min(end, start + 2 * workers)))
            for step in range(start + len(ahead), end + len(ahead)):
                b = ahead.popleft().result()
                if step < end:
                    ahead.append(pool.submit(build, step))
                yield b


def collate(items: list[dict], which: list[int], avatars: list[AvatarFrames], refs: list | None = None) -> dict:
    """A batch: each avatar's references once, or `refs`, one set per item (recoloured)."""
    out = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in ("source", "target", "paste", "box")}
    if refs is not None:
        out["references"] = torch.from_numpy(np.stack(refs))
        out["reference_index"] = torch.arange(len(items))
        return out
    used = sorted(set(which))
    out["references"] = torch.from_numpy(np.stack([avatars[k].references for k in used]))
    out["reference_index"] = torch.tensor([used.index(k) for k in which])
    return out


# --- networks and helpers ------------------------------------------------------------------


class RenderStep(nn.Module):
    """The renderer with its references encoded in the same forward (one DDP-wrappable call):
    each avatar's references are encoded once per batch and shared by its frames."""

    def __init__(self, renderer: Renderer):
        super().__init__()
        self.renderer = renderer

    def forward(self, source, references, reference_index):
        feats = self.renderer.encode_references(references)[reference_index]
        return self.renderer(source, feats)


def _dist_setup(device: str):
    """(rank, world, device): torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, pick_device(device)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return dist.get_rank(), world, torch.device(f"cuda:{local}" if use_cuda else "cpu")


def _barrier(world: int):
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.part.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    os.replace(tmp, path)


def _sample_grid(batch: dict, out: torch.Tensor, n: int = 4) -> np.ndarray:
    """Rows of [input: masked window + prompt + sketch, output, real] for the first n frames."""
    src = batch["source"][:n]
    shown = (src[:, :3] + src[:, 3:6] + src[:, 6:7]).clamp(0, 1)
    rows = [
        np.concatenate(list(_to_uint8(t[None])[0] for t in (s, o, r)), 1)
        for s, o, r in zip(shown, out[:n], batch["target"][:n])
    ]
    return np.concatenate(rows, 0)


@torch.no_grad()
def evaluate_holdout(
    model: Renderer, avatars: list[AvatarFrames], basis, device, max_frames: int = 0, strip_path: Path | None = None
) -> dict:
    """Render each avatar's held-out frames from their real mouths (no noise) and compare with
    the real frames: mouth-crop PSNR/SSIM, lower-face SSIM, mouth sharpness ratio."""
    model.eval()
    rows, strips = [], []
    for av in avatars:
        ids = np.arange(av.n_train, av.n)
        if len(ids) == 0:
            continue
        if max_frames and len(ids) > max_frames:
            ids = ids[np.linspace(0, len(ids) - 1, max_frames).round().astype(int)]
        feats = model.encode_references(torch.from_numpy(av.references[None]).to(device))
        shown = (
            set(ids[np.linspace(0, len(ids) - 1, min(8, len(ids))).round().astype(int)].tolist())
            if not strips
            else set()
        )
        scores = []
        for chunk in np.array_split(ids, max(1, len(ids) // 8)):
            items = [frame_inputs(av, int(i), av.coeffs[i], basis) for i in chunk]
            b = {
                k: torch.from_numpy(np.stack([it[k] for it in items])).to(device) for k in ("source", "target", "paste")
            }
            gen = inputs.composite(model(b["source"], feats), b["target"], b["paste"])
            for it, g, i in zip(items, _to_uint8(gen), chunk):
                real = av.windows[i]
                x, y, s = it["box"]
                ys, xs = np.nonzero(inputs.repaint_mask(av.arrays["repaint"][i], real.shape[0]) > 0)
                face = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))  # the lower face
                gm, rm = g[y : y + s, x : x + s], real[y : y + s, x : x + s]
                scores.append(
                    (
                        psnr(gm, rm),
                        ssim(gm, rm),
                        ssim(g[face], real[face]),
                        sharpness(gm) / max(sharpness(rm), 1e-6),
                        checkerboard(gm),
                        checkerboard(rm),
                    )
                )
                if strip_path is not None and i in shown:
                    strips.append(
                        np.concatenate([real, g, cv2.resize(rm, real.shape[:2]), cv2.resize(gm, real.shape[:2])], 0)
                    )
        s = np.array(scores)
        rows.append(
            {
                "avatar": av.name,
                "frames": len(ids),
                "mouth_psnr": float(s[:, 0].mean()),
                "mouth_ssim": float(s[:, 1].mean()),
                "face_ssim": float(s[:, 2].mean()),
                "sharpness_ratio": float(np.median(s[:, 3])),
                "checkerboard": float(s[:, 4].mean()),
                "checkerboard_real": float(s[:, 5].mean()),
            }
        )
    model.train()
    if not rows:
        return {}
    if strip_path is not None and strips:
        _write_png(strip_path, np.concatenate(strips, 1))
    keys = ("mouth_psnr", "mouth_ssim", "face_ssim", "sharpness_ratio", "checkerboard", "checkerboard_real")
    return {"avatars": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}


# --- the run ------------------------------------------------------------------------------------


def _networks(cfg: TrainRenderConfig, rcfg, init, state, dev) -> dict:
    """The renderer (from `init` when fine-tuning, from the state when resuming) and the three
    discriminators, on the device in channels_last (faster on CPUs too)."""
    model = Renderer(rcfg)
    if init:
        base, _ = load_renderer(init)
        if base.cfg != rcfg:
            raise DhliveError(f"{init}: its renderer config {asdict(base.cfg)} differs from this run's {asdict(rcfg)}")
        model.load_state_dict(base.state_dict())
    nets = {
        "model": model,
        "d_window": PatchDiscriminator(),
        "d_mouth": PatchDiscriminator(layers=3),
        "d_time": PatchDiscriminator(cin=3 * cfg.clip_frames, layers=3),
    }
    for k, m in nets.items():
        if state is not None:
            m.load_state_dict(state[k])
        m.to(dev, memory_format=torch.channels_last)
    return nets


def run_inputs(avatars: list, packs: list[Path], init, mouth) -> dict:
    """What a run trains on, for the resume check: each avatar's pack version, the starting
    model and the given mouth PCA."""
    versions = []
    for a, p in zip(avatars, packs):
        meta, _ = load_render_pack(p)
        versions.append(f"{Path(a).name}:{meta.get('avatar_meta_sha256', file_sha256(p))[:16]}")
    return {
        "avatars": versions,
        "init": file_sha256(init)[:16] if init else None,
        "mouth": file_sha256(mouth)[:16] if mouth else None,
    }


def _generator_step(cfg, b, nets, g_run, lpips, opt_g, gan: bool, t: int, amp: bool):
    """One step of the renderer: L1 + perceptual (+ grid, detail, adversarial); returns the
    losses and the composites."""
    dev = b["source"].device
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        gen = g_run(b["source"], b["references"], b["reference_index"])
    gen, paste = gen.float(), b["paste"]
    out_img = inputs.composite(gen, b["target"], paste)
    l1 = ((gen - b["target"]).abs() * paste).sum() / (3 * paste.sum() + 1e-6)
    mouth_fake, mouth_real = mouth_crops(out_img, b["box"]), mouth_crops(b["target"], b["box"])
    perc = torch.zeros((), device=dev)
    if lpips is not None:
        perc = lpips(mouth_fake, mouth_real).mean()
        if cfg.perceptual_window:
            k = cfg.perceptual_window
            perc = perc + lpips(F.avg_pool2d(out_img, k), F.avg_pool2d(b["target"], k)).mean()
    adv = torch.zeros((), device=dev)
    if gan:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            # the discriminators unwrapped: their gradients here are discarded (zeroed before
            # their own step), so DDP need not synchronise them
            adv = cfg.adv_weight * lsgan_g(nets["d_window"](out_img).float()) + cfg.mouth_adv_weight * lsgan_g(
                nets["d_mouth"](mouth_fake).float()
            )
            if t > 1:
                adv = adv + cfg.temporal_weight * lsgan_g(nets["d_time"](stack_time(mouth_fake, t)).float())
    grid = grid_excess(mouth_fake, mouth_real) if cfg.grid_weight else torch.zeros((), device=dev)
    detail = detail_gap(mouth_fake, mouth_real) if cfg.detail_weight else torch.zeros((), device=dev)
    loss = cfg.l1_weight * l1 + cfg.perceptual_weight * perc + cfg.grid_weight * grid + cfg.detail_weight * detail + adv
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(nets["model"].parameters(), 5.0)
    opt_g.step()
    return (loss, l1, perc, grid, detail, adv), out_img, mouth_fake, mouth_real


def _discriminator_step(b, out_img, mouth_fake, mouth_real, d_runs, opt_d, t: int, amp: bool):
    dw, dm, dt = d_runs
    fake, mf = out_img.detach(), mouth_fake.detach()
    with torch.autocast(b["source"].device.type, dtype=torch.bfloat16, enabled=amp):
        d_loss = real_vs_fake(dw, b["target"], fake) + real_vs_fake(dm, mouth_real, mf)
        if t > 1:
            d_loss = d_loss + real_vs_fake(dt, stack_time(mouth_real, t), stack_time(mf, t))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return d_loss


def _log_and_save(
    run: TrainRun,
    done: int,
    cfg: TrainRenderConfig,
    lr: float,
    losses: RunningMean,
    nets: dict,
    optimizers: tuple,
    holdout: list,
    basis,
    basis_path: Path,
    batch: dict,
    out_img,
) -> None:
    """After step `done`: the log (with hold-out scores at checkpoints), sample images, the state."""
    checkpoint = run.due(done, cfg.checkpoint_every)
    if run.due(done, cfg.log_every) or checkpoint:
        ev = {}
        if holdout and (checkpoint if not cfg.eval_every else done % cfg.eval_every == 0):
            ev = evaluate_holdout(nets["model"], holdout, basis, out_img.device, max_frames=24).get("mean", {})
        run.log.write(
            {
                "step": done,
                "lr": lr,
                **losses.take(),
                "eval_mouth_psnr": ev.get("mouth_psnr"),
                "eval_mouth_ssim": ev.get("mouth_ssim"),
                "seconds": run.seconds,
            }
        )
    if run.due(done, cfg.sample_every):
        _write_png(run.out / SAMPLE_DIR / f"step_{done:06d}.png", _sample_grid(batch, out_img))
    if checkpoint:
        opt_g, opt_d = optimizers
        run.save(
            done,
            {
                **{k: {n: v.detach().cpu() for n, v in m.state_dict().items()} for k, m in nets.items()},
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "mouth_pca_sha256": file_sha256(basis_path),
            },
        )
        write_plot(
            run.out / LOG_FILE,
            run.out / PLOT_FILE,
            ("loss", "l1", "perceptual", "grid", "detail", "adv", "d"),
            "loss",
            "eval_mouth_psnr",
            "held-out mouth PSNR (dB)",
        )


LOG_COLUMNS = [
    "step",
    "lr",
    "loss",
    "l1",
    "perceptual",
    "grid",
    "adv",
    "d",
    "eval_mouth_psnr",
    "eval_mouth_ssim",
    "seconds",
    "detail",  # last, so that a log begun without it keeps its columns in place when resumed
]


def train_render(
    avatars: list,
    out: str | os.PathLike,
    cfg: TrainRenderConfig | None = None,
    *,
    init: str | None = None,
    mouth: str | None = None,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or fine-tune with `init`) a renderer; returns a summary. stop_at: stop after that
    step with a resumable state (time-sliced runs); the model file is written at the end."""
    cfg = cfg or TrainRenderConfig()
    if not avatars:
        raise DhliveError("no training avatars given")
    rank, world, dev = _dist_setup(device)
    main = rank == 0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rcfg = cfg.render_config()
    packs = _packs(avatars, rcfg.resolution, out / PACK_DIR, progress, world, main)
    frames = _training_frames(packs, cfg, rcfg)
    run = TrainRun(
        out,
        RENDER_TRAIN_STATE_FORMAT,
        cfg,
        run_inputs(avatars, packs, init, mouth),
        resume=resume,
        stop_at=stop_at,
        results=(RENDER_MODEL_FILE, EVAL_FILE, STRIP_FILE),
        main=main,
        progress=progress,
        log_columns=LOG_COLUMNS,
    )
    basis_path, basis = run.mouth_basis(mouth, lambda: _fit_basis(cfg, frames), save=main)
    _barrier(world)
    for f in frames:
        f.coeffs = basis.encode(*mouth_deltas(f.arrays["lips"], f.arrays["mouth_images"], f.rest))

    torch.manual_seed(cfg.seed)
    nets = _networks(cfg, rcfg, init, run.state, dev)
    model = nets["model"]
    opt_g, opt_d = _optimizers(cfg, nets, run.state)
    if main:
        (out / SAMPLE_DIR).mkdir(exist_ok=True)
    lpips = (
        STLPIPS(cfg.perceptual_layers).to(dev, memory_format=torch.channels_last) if cfg.perceptual_weight > 0 else None
    )
    g_run, d_runs = _runners(nets, world, dev)
    amp = dev.type == "cuda"
    batches = Batches(frames, basis, cfg, rank)
    holdout = [f for f in frames if f.n_train < f.n]
    # beside a GPU, building batches on the CPU is the bottleneck; on a CPU it would take cores from the step
    loader_workers = min(6, max(1, (os.cpu_count() or 2) // max(world, 1) - 2)) if dev.type == "cuda" else 0
    upcoming = batches.prefetch(run.start, run.end, loader_workers, pin=dev.type == "cuda")
    losses, t = RunningMean(), batches.t
    for step in run.steps(f"train-render ({cfg.stage})"):
        lr = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        for g in opt_g.param_groups:
            g["lr"] = lr
        b = _to_device(next(upcoming), dev)
        gan = step >= cfg.gan_start and bool(cfg.adv_weight or cfg.mouth_adv_weight or (t > 1 and cfg.temporal_weight))
        (loss, l1, perc, grid, detail, adv), out_img, mouth_fake, mouth_real = _generator_step(
            cfg, b, nets, g_run, lpips, opt_g, gan, t, amp
        )
        d = _discriminator_step(b, out_img, mouth_fake, mouth_real, d_runs, opt_d, t, amp) if gan else torch.zeros(())
        losses.add(
            loss=loss.item(),
            l1=l1.item(),
            perceptual=perc.item(),
            grid=grid.item(),
            adv=adv.item(),
            d=d.item(),
            detail=detail.item(),
        )
        if main:
            _log_and_save(run, step + 1, cfg, lr, losses, nets, (opt_g, opt_d), holdout, basis, basis_path, b, out_img)
    _barrier(world)
    if run.stopped or not main:
        return run.result()
    info = _model_info(cfg, run, frames, dev, world, init, basis_path)
    return _finish(run, model.cpu(), info, holdout, basis)


def _fit_basis(cfg: TrainRenderConfig, frames: list[AvatarFrames]):
    """A mouth PCA of the training frames (held-out frames left out)."""
    a = [f.arrays for f in frames]
    return cfg.fit([(x["lips"][: f.n_train], x["mouth_images"][: f.n_train], f.rest) for x, f in zip(a, frames)])


def _model_info(cfg: TrainRenderConfig, run: TrainRun, frames, dev, world: int, init, basis_path: Path) -> dict:
    """What the model file records of its training."""
    return {
        "steps": cfg.steps,
        "stage": cfg.stage,
        "avatars": [f.name for f in frames],
        "trained_frames": {f.name: [0, f.n_train] for f in frames},  # [first, end) of each avatar
        "config": run.config,
        "device": str(dev),
        "world_size": world,
        "init": str(init) if init else None,
        "base": load_renderer(init)[1] if init else None,
        "mouth_pca_sha256": file_sha256(basis_path),
    }


def _training_frames(packs: list[Path], cfg: TrainRenderConfig, rcfg) -> list[AvatarFrames]:
    """Each pack's frames, split into training and held-out; the clip stage refuses thinned packs."""
    loaded = [load_frames(p, cfg.holdout, rcfg.n_refs, rcfg.resolution) for p in packs]
    thinned = [m["avatar"] for _, m in loaded if m.get("frame_step", 1) > 1]
    if cfg.stage == "clip" and thinned:
        raise DhliveError(f"the clip stage needs consecutive frames; thinned packs: {', '.join(thinned)}")
    return [f for f, _ in loaded]


def _runners(nets: dict, world: int, dev: torch.device) -> tuple:
    """The generator step and the discriminators as the loop calls them (wrapped in DDP across processes)."""
    g_run, d_runs = RenderStep(nets["model"]), (nets["d_window"], nets["d_mouth"], nets["d_time"])
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dev.index] if dev.type == "cuda" else None
        g_run, d_runs = DDP(g_run, device_ids=ids), tuple(DDP(d, device_ids=ids) for d in d_runs)
    return g_run, d_runs


def _to_device(batch: dict, dev: torch.device) -> dict:
    """A batch on the device, images channels_last."""
    return {
        k: v.to(dev, non_blocking=True, memory_format=torch.channels_last)
        if v.ndim == 4
        else v.to(dev, non_blocking=True)
        for k, v in batch.items()
    }


def _optimizers(cfg: TrainRenderConfig, nets: dict, state) -> tuple:
    """Adam for the renderer and one for the three discriminators, restored when resuming."""
    opt_g = torch.optim.Adam(nets["model"].parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(
        [p for k in ("d_window", "d_mouth", "d_time") for p in nets[k].parameters()], lr=cfg.lr_d, betas=(0.5, 0.999)
    )
    if state is not None:
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
    return opt_g, opt_d


def _finish(run: TrainRun, model: Renderer, info: dict, holdout: list, basis) -> dict:
    """Write the trained renderer and, with held-out frames, their scores and strip."""
    save_renderer(run.out / RENDER_MODEL_FILE, model, info)
    summary = run.result()
    if holdout:
        report = evaluate_holdout(model, holdout, basis, torch.device("cpu"), strip_path=run.out / STRIP_FILE)
        write_json(run.out / EVAL_FILE, report)
        summary["eval"] = report["mean"]
    return summary


def _packs(avatars: list, size: int, pack_dir: Path, progress: bool, world: int, main: bool) -> list[Path]:
    """Each avatar's render pack: the first process builds what is missing, the others wait.
    An avatar that cannot be packed leaves no empty pack folder behind."""
    try:
        packs = [ensure_pack(a, size, pack_dir, progress and main) for a in avatars] if main else None
    except BaseException:
        if pack_dir.is_dir() and not any(pack_dir.iterdir()):
            pack_dir.rmdir()
        raise
    _barrier(world)
    return packs or [ensure_pack(a, size, pack_dir, False) for a in avatars]
