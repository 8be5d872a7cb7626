"""`dhlive train-render`: train the renderer on prepared avatars, on CPU or GPU(s).

    avatars -> one render pack each (windows as JPEG + geometry + real mouths), cached in OUT/packs
            -> mouth PCA (given with --mouth, or fitted on the training frames) -> coefficients
    each step, per sample: the real mouth's coefficients + noise -> decoded prompt and lip sketch
            (render/inputs.py, the very functions inference uses) -> renderer -> composite
    loss:   L1 inside the repaint region + ST-LPIPS on the mouth crop and the shrunken window
            + LSGAN from a window discriminator and a mouth-patch discriminator (teeth, lips)
            + (clip stage) a temporal discriminator over consecutive mouth crops (flicker)
    ->      OUT/render_model.pt, OUT/pca.pkl, train_state.pt (resume), log.csv, loss.png,
            samples/*.png, and with a hold-out eval.json + eval_strip.png

A per-avatar fine-tune is `--init base/render_model.pt` on one avatar: its last 20% of
frames are held out and scored (mouth-crop PSNR/SSIM, lower-face SSIM) against the real
frames, rendered from their real mouths. Batches are a function of (seed, step, rank), so
a killed and resumed run takes the steps an uninterrupted one would. Multi-GPU: launch with
`torchrun --nproc_per_node=G -m dhlive.cli train-render ...` (DistributedDataParallel).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..audio.mouth import MouthRest, aperture, avatar_mouth, fit_basis, load_basis, mouth_deltas, save_basis
from ..errors import DhliveError
from ..eval.metrics import psnr, sharpness, ssim
from ..formats import (MOUTH_PCA_FILE, RENDER_MODEL_FILE, RENDER_TRAIN_STATE_FORMAT, file_sha256, load_avatar,
                       load_checkpoint, load_render_pack, save_checkpoint, save_render_pack, write_json)
from ..render import inputs
from ..render.checkpoint import load_renderer, save_renderer
from ..render.model import Renderer, preset
from ..render.references import select_references
from ..device import frame_workers, pick_device
from .common import CsvLog, clear_results, cosine_lr, write_plot
from .perceptual import STLPIPS

STATE_FILE = "train_state.pt"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"
EVAL_FILE = "eval.json"
STRIP_FILE = "eval_strip.png"
PACK_DIR = "packs"
SAMPLE_DIR = "samples"
JPEG_QUALITY = 95
STAGES = ("frame", "clip")


@dataclass
class TrainRenderConfig:
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
    gan_start: int = 500  # reconstruction-only steps before the discriminators join
    coeff_noise: float = 0.15  # std of noise on the real mouth's PCA coefficients (units: std of the first)
    holdout: float = 0.0  # last fraction of each avatar's frames kept out of training and scored
    seed: int = 0
    # mouth PCA fitted when none is given (same meaning as in distill-audio)
    mouth_kind: str = "lips+pixels"
    n_coeffs: int = 8
    lip_weight: float = 2.0
    log_every: int = 25
    sample_every: int = 250
    checkpoint_every: int = 250
    eval_every: int = 0  # steps between hold-out scores in the log (0: at checkpoints)

    def render_config(self):
        try:
            return preset(self.renderer, **self.model)
        except (TypeError, ValueError) as e:
            raise DhliveError(f"renderer config: {e}") from None


def check_config(cfg: TrainRenderConfig) -> TrainRenderConfig:
    if cfg.stage not in STAGES:
        raise DhliveError(f"stage must be one of {STAGES}, not {cfg.stage!r}")
    if not 0 <= cfg.holdout < 0.9:
        raise DhliveError(f"holdout must be in [0, 0.9), not {cfg.holdout}")
    if cfg.steps < 1 or cfg.batch < 1 or cfg.clip_frames < 2:
        raise DhliveError("steps and batch must be at least 1, clip_frames at least 2")
    cfg.render_config()
    return cfg


# --- render packs --------------------------------------------------------------------------

def build_pack(avatar_dir, size: int, path: Path, progress: bool = True) -> None:
    """One avatar's render windows and per-frame geometry, written to `path` (atomic).

    The windows are cut from the source frames exactly as inference cuts them. Cutting them
    from the 512 px crops (resampled once already) made them about a quarter less sharp than
    what the renderer is given at inference (docs/render.md)."""
    from .. import media  # here, not at the top: training from packs alone needs no PyAV

    avatar = load_avatar(avatar_dir)
    lips, images, rest = avatar_mouth(avatar)
    window = inputs.face_window(avatar.lower_face, rest.lips, size)
    n = avatar.n_frames
    blobs, c2w = [], np.empty((n, 2, 4), np.float32)
    repaint = np.empty((n, len(avatar.lower_face), 2), np.float32)
    landmarks = np.empty((n, avatar.canonical.shape[1], 2), np.float32)
    source = media.SourceFrames(avatar)
    try:
        for i in tqdm(range(n), desc=f"packing {avatar.root.name}", disable=not progress, leave=False):
            win = inputs.cut_window(source[i], window.to_source(avatar.pose[i]), size)
            ok, enc = cv2.imencode(".jpg", cv2.cvtColor(win, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            blobs.append(enc.reshape(-1))
            c2w[i] = window.canonical_to_window(avatar.pose[i])
            landmarks[i] = inputs.project(avatar.canonical[i], c2w[i])
            repaint[i] = inputs.project(avatar.lower_face, c2w[i])
    finally:
        source.close()
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    meta = {"avatar": avatar.root.name, "avatar_meta_sha256": file_sha256(avatar.root / "meta.json"), "size": size,
            "window": asdict(window), "rest_contrast": rest.contrast, "aperture_range": list(rest.aperture_range),
            "fps": avatar.fps}
    save_render_pack(path, meta, {
        "jpeg": np.concatenate(blobs), "jpeg_offsets": offsets, "canonical_to_window": c2w, "repaint": repaint,
        "landmarks": landmarks, "lips": lips, "mouth_images": images, "aperture": aperture(lips),
        "euler": avatar.euler, "rest_lips": rest.lips, "rest_image": rest.image})


def thin_pack(src, dst, every: int) -> Path:
    """A copy of a render pack with every `every`-th frame, compressed: what travels to a lent
    GPU machine (64 MiB per call). Its frames are no longer consecutive, so the clip stage
    refuses it (meta frame_step)."""
    if every < 1:
        raise DhliveError(f"every must be at least 1, not {every}")
    meta, a = load_render_pack(src)
    n, off = len(a["aperture"]), a["jpeg_offsets"]
    keep = np.arange(0, n, every)
    blobs = [a["jpeg"][off[i]:off[i + 1]] for i in keep]
    per_frame = {k: v[keep] for k, v in a.items() if k not in ("jpeg", "jpeg_offsets", "rest_lips", "rest_image")}
    save_render_pack(dst, {**meta, "frame_step": int(meta.get("frame_step", 1)) * every}, {
        **a, **per_frame, "jpeg": np.concatenate(blobs),
        "jpeg_offsets": np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)}, compressed=True)
    return Path(dst)


def ensure_pack(avatar_dir, size: int, pack_dir: Path, progress: bool = True) -> Path:
    """The cached pack of an avatar, rebuilt when the avatar changed (resumable: one file per avatar)."""
    avatar_dir = Path(avatar_dir)
    if avatar_dir.suffix == ".npz":  # a pack given directly (e.g. carried to a GPU machine)
        return avatar_dir
    path = pack_dir / f"{avatar_dir.name}-{size}.npz"
    meta_file = avatar_dir / "meta.json"
    if path.exists() and meta_file.exists():
        try:
            meta, _ = load_render_pack(path)
            if meta.get("avatar_meta_sha256") == file_sha256(meta_file):
                return path
        except DhliveError:
            pass
    pack_dir.mkdir(parents=True, exist_ok=True)
    build_pack(avatar_dir, size, path, progress)
    return path


@dataclass
class AvatarFrames:
    """One avatar's training material, decoded: windows, geometry, mouth and its references."""

    name: str
    windows: np.ndarray  # (N, R, R, 3) uint8
    arrays: dict
    rest: MouthRest
    coeffs: np.ndarray  # (N, k) the real mouth in the PCA
    n_train: int  # frames [0, n_train) train; the rest are held out
    reference_ids: np.ndarray
    references: np.ndarray  # (4n, R, R) float32

    @property
    def n(self) -> int:
        return len(self.windows)

    def lips_window(self, i: int) -> np.ndarray:
        return inputs.project(self.arrays["lips"][i], self.arrays["canonical_to_window"][i])


def load_frames(pack_path: Path, holdout: float, n_refs: int, size: int) -> tuple[AvatarFrames, dict]:
    meta, a = load_render_pack(pack_path)
    if meta["size"] != size:
        raise DhliveError(f"render pack {pack_path}: made for {meta['size']} px, the renderer is {size} px")
    off = a["jpeg_offsets"]
    windows = np.stack([cv2.cvtColor(cv2.imdecode(a["jpeg"][off[i]:off[i + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                        for i in range(len(off) - 1)])
    n = len(windows)
    n_train = n - int(round(holdout * n))
    if n_train < 2:
        raise DhliveError(f"{meta['avatar']}: {n} frames leave too few for training after a {holdout:.0%} hold-out")
    rest = MouthRest(a["rest_lips"], a["rest_image"], float(meta["rest_contrast"]), tuple(meta["aperture_range"]))
    ref_ids = select_references(a["aperture"][:n_train], a["euler"][:n_train], n_refs)
    refs = inputs.reference_input(windows[ref_ids], a["landmarks"][ref_ids])
    return AvatarFrames(meta["avatar"], windows, a, rest, np.zeros(0), n_train, ref_ids, refs), meta


def frame_inputs(av: AvatarFrames, i: int, coeffs: np.ndarray, basis) -> dict:
    """Everything one frame contributes to a batch, built as inference builds it."""
    size = av.windows.shape[1]
    prompt, sketch, _ = inputs.mouth_prompt(coeffs, basis, av.rest, av.arrays["canonical_to_window"][i], size)
    repaint = inputs.repaint_mask(av.arrays["repaint"][i], size)
    return {"source": inputs.source_input(av.windows[i], repaint, prompt, sketch),
            "target": av.windows[i].transpose(2, 0, 1).astype(np.float32) / 255.0,
            "paste": inputs.paste_mask(repaint)[None],
            "box": np.array(inputs.mouth_box(av.lips_window(i), size))}


class Batches:
    def __init__(self, avatars: list[AvatarFrames], basis, cfg: TrainRenderConfig, rank: int = 0):
        self.avatars, self.basis, self.cfg, self.rank = avatars, basis, cfg, rank
        self.t = cfg.clip_frames if cfg.stage == "clip" else 1
        weights = np.array([max(a.n_train - self.t + 1, 1) for a in avatars], np.float64)
        self.p = weights / weights.sum()

    def batch(self, step: int) -> dict:
        rng = np.random.default_rng([self.cfg.seed, step, self.rank])
        n_seq = max(1, self.cfg.batch // self.t)
        items, which = [], []
        for _ in range(n_seq):
            k = int(rng.choice(len(self.avatars), p=self.p))
            av = self.avatars[k]
            start = int(rng.integers(0, max(av.n_train - self.t + 1, 1)))
            for i in range(start, start + self.t):
                c = av.coeffs[i] + self.cfg.coeff_noise * rng.standard_normal(av.coeffs.shape[1]).astype(np.float32)
                items.append(frame_inputs(av, min(i, av.n_train - 1), c, self.basis))
                which.append(k)
        return collate(items, which, self.avatars)

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


def collate(items: list[dict], which: list[int], avatars: list[AvatarFrames]) -> dict:
    used = sorted(set(which))
    out = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in ("source", "target", "paste", "box")}
    out["references"] = torch.from_numpy(np.stack([avatars[k].references for k in used]))
    out["reference_index"] = torch.tensor([used.index(k) for k in which])
    return out


# --- networks besides the renderer -------------------------------------------------------------

class RenderStep(nn.Module):
    """The renderer with its references encoded in the same forward (one DDP-wrappable call):
    each avatar's references are encoded once per batch and shared by its frames."""

    def __init__(self, renderer: Renderer):
        super().__init__()
        self.renderer = renderer

    def forward(self, source, references, reference_index):
        feats = self.renderer.encode_references(references)[reference_index]
        return self.renderer(source, feats)


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
    return torch.stack([img[:, int(y):int(y) + side, int(x):int(x) + side] for img, (x, y, _) in zip(images, boxes)])


def real_vs_fake(d, real, fake):
    """LSGAN discriminator loss, real and fake scored in one call (one forward per DDP step)."""
    real_score, fake_score = d(torch.cat([real, fake])).float().chunk(2)
    return ((real_score - 1) ** 2).mean() + (fake_score ** 2).mean()


def lsgan_g(fake_score):
    return ((fake_score - 1) ** 2).mean()


# --- training ---------------------------------------------------------------------------------

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
    rows = [np.concatenate(list(_to_uint8(t[None])[0] for t in (s, o, r)), 1)
            for s, o, r in zip(shown, out[:n], batch["target"][:n])]
    return np.concatenate(rows, 0)


@torch.no_grad()
def evaluate_holdout(model: Renderer, avatars: list[AvatarFrames], basis, device, max_frames: int = 0,
                     strip_path: Path | None = None) -> dict:
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
        shown = set(ids[np.linspace(0, len(ids) - 1, min(8, len(ids))).round().astype(int)].tolist()) if not strips else set()
        scores = []
        for chunk in np.array_split(ids, max(1, len(ids) // 8)):
            items = [frame_inputs(av, int(i), av.coeffs[i], basis) for i in chunk]
            b = {k: torch.from_numpy(np.stack([it[k] for it in items])).to(device) for k in ("source", "target", "paste")}
            gen = inputs.composite(model(b["source"], feats), b["target"], b["paste"])
            for it, g, i in zip(items, _to_uint8(gen), chunk):
                real = av.windows[i]
                x, y, s = it["box"]
                ys, xs = np.nonzero(inputs.repaint_mask(av.arrays["repaint"][i], real.shape[0]) > 0)
                face = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))  # the lower face
                gm, rm = g[y:y + s, x:x + s], real[y:y + s, x:x + s]
                scores.append((psnr(gm, rm), ssim(gm, rm), ssim(g[face], real[face]),
                               sharpness(gm) / max(sharpness(rm), 1e-6)))
                if strip_path is not None and i in shown:
                    strips.append(np.concatenate([real, g, cv2.resize(rm, real.shape[:2]), cv2.resize(gm, real.shape[:2])], 0))
        s = np.array(scores)
        rows.append({"avatar": av.name, "frames": len(ids), "mouth_psnr": float(s[:, 0].mean()),
                     "mouth_ssim": float(s[:, 1].mean()), "face_ssim": float(s[:, 2].mean()),
                     "sharpness_ratio": float(np.median(s[:, 3]))})
    model.train()
    if not rows:
        return {}
    if strip_path is not None and strips:
        _write_png(strip_path, np.concatenate(strips, 1))
    keys = ("mouth_psnr", "mouth_ssim", "face_ssim", "sharpness_ratio")
    return {"avatars": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}


def train_render(avatars: list, out: str | os.PathLike, cfg: TrainRenderConfig | None = None, *,
                 init: str | None = None, mouth: str | None = None, resume: bool = False, device: str = "auto",
                 progress: bool = True, stop_at: int | None = None) -> dict:
    """Train (or fine-tune with `init`) a renderer; returns a summary. stop_at: stop after that
    step with a resumable state (time-sliced runs); the model file is written at the end."""
    cfg = check_config(cfg or TrainRenderConfig())
    if not avatars:
        raise DhliveError("no training avatars given")
    rank, world, dev = _dist_setup(device)
    main = rank == 0
    progress = progress and main
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rcfg = cfg.render_config()
    state_path, basis_path = out / STATE_FILE, out / MOUTH_PCA_FILE

    base_info = {}
    if init:
        base, base_info = load_renderer(init)
        if base.cfg != rcfg:
            raise DhliveError(f"{init}: its renderer config {asdict(base.cfg)} differs from this run's {asdict(rcfg)}")

    # packs (rank 0 builds, the others wait) and frames
    if main:
        packs = [ensure_pack(a, rcfg.resolution, out / PACK_DIR, progress) for a in avatars]
    _barrier(world)
    packs = [ensure_pack(a, rcfg.resolution, out / PACK_DIR, False) for a in avatars] if not main else packs
    loaded = [load_frames(p, cfg.holdout, rcfg.n_refs, rcfg.resolution) for p in packs]
    frames = [f for f, _ in loaded]
    if cfg.stage == "clip":
        thinned = [m["avatar"] for _, m in loaded if m.get("frame_step", 1) > 1]
        if thinned:
            raise DhliveError(f"the clip stage needs consecutive frames; thinned packs: {', '.join(thinned)}")

    state = load_checkpoint(state_path, RENDER_TRAIN_STATE_FORMAT) if resume and state_path.exists() else None
    if state is None and main:
        clear_results(out, (RENDER_MODEL_FILE, EVAL_FILE, STRIP_FILE))
    if state is not None:
        basis = load_basis(basis_path)
        if state.get("mouth_pca_sha256") != file_sha256(basis_path):
            raise DhliveError(f"{out}: {MOUTH_PCA_FILE} changed since {STATE_FILE} was written; cannot resume")
    elif mouth:
        basis = load_basis(mouth)
        if main:
            save_basis(basis_path, basis)
    else:
        rests = [f.rest for f in frames]
        deltas = [mouth_deltas(f.arrays["lips"][:f.n_train], f.arrays["mouth_images"][:f.n_train], r) for f, r in zip(frames, rests)]
        basis = fit_basis(np.concatenate([d[0] for d in deltas]), np.concatenate([d[1] for d in deltas]),
                          cfg.mouth_kind, cfg.n_coeffs, cfg.lip_weight)
        if main:
            save_basis(basis_path, basis)
    for f in frames:
        f.coeffs = basis.encode(*mouth_deltas(f.arrays["lips"], f.arrays["mouth_images"], f.rest))

    torch.manual_seed(cfg.seed)
    model = Renderer(rcfg)
    if init:
        model.load_state_dict(base.state_dict())
    d_window, d_mouth = PatchDiscriminator(), PatchDiscriminator(layers=3)
    d_time = PatchDiscriminator(cin=3 * cfg.clip_frames, layers=3)
    step_net = RenderStep(model)
    nets = {"model": model, "d_window": d_window, "d_mouth": d_mouth, "d_time": d_time}
    # channels_last on CPUs too: a training step on 2 cores took 0.55 s instead of 0.65 (docs/render.md)
    for m in nets.values():
        m.to(dev, memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([p for k in ("d_window", "d_mouth", "d_time") for p in nets[k].parameters()],
                             lr=cfg.lr_d, betas=(0.5, 0.999))
    start = 0
    if state is not None:
        for k, m in nets.items():
            m.load_state_dict(state[k])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        start = int(state["step"])
    lpips = STLPIPS(cfg.perceptual_layers).to(dev, memory_format=torch.channels_last) if cfg.perceptual_weight > 0 else None

    g_run, dw_run, dm_run, dt_run = step_net, d_window, d_mouth, d_time
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dev.index] if dev.type == "cuda" else None
        g_run = DDP(step_net, device_ids=ids)
        dw_run, dm_run, dt_run = (DDP(d, device_ids=ids) for d in (d_window, d_mouth, d_time))
    amp = dev.type == "cuda"
    batches = Batches(frames, basis, cfg, rank)
    holdout = [f for f in frames if f.n_train < f.n]

    log = CsvLog(out / LOG_FILE, ["step", "lr", "loss", "l1", "perceptual", "adv", "d", "eval_mouth_psnr",
                                  "eval_mouth_ssim", "seconds"], start) if main else None
    (out / SAMPLE_DIR).mkdir(exist_ok=True)
    t0 = time.time()
    sums, n_sum = np.zeros(5), 0
    end = cfg.steps if stop_at is None else max(start, min(cfg.steps, stop_at))
    # beside a GPU, building batches on the CPU is the bottleneck; on a CPU it would take cores from the step
    loader_workers = min(6, max(1, (os.cpu_count() or 2) // max(world, 1) - 2)) if dev.type == "cuda" else 0
    upcoming = batches.prefetch(start, end, loader_workers, pin=dev.type == "cuda")
    t = batches.t
    bar = tqdm(range(start, end), desc=f"train-render ({cfg.stage})", initial=start, total=cfg.steps, disable=not progress)
    for step in bar:
        lr = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        for g in opt_g.param_groups:
            g["lr"] = lr
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        b = {k: v.to(dev, non_blocking=True, memory_format=torch.channels_last) if v.ndim == 4 else v.to(dev, non_blocking=True)
             for k, v in next(upcoming).items()}
        gan = step >= cfg.gan_start and (cfg.adv_weight or cfg.mouth_adv_weight or (t > 1 and cfg.temporal_weight))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            gen = g_run(b["source"], b["references"], b["reference_index"])
        gen = gen.float()
        paste = b["paste"]
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
                adv = cfg.adv_weight * lsgan_g(d_window(out_img).float()) + cfg.mouth_adv_weight * lsgan_g(d_mouth(mouth_fake).float())
                if t > 1:
                    adv = adv + cfg.temporal_weight * lsgan_g(d_time(_stack_time(mouth_fake, t)).float())
        loss = cfg.l1_weight * l1 + cfg.perceptual_weight * perc + adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt_g.step()

        d_loss = torch.zeros((), device=dev)
        if gan:
            fake, mf = out_img.detach(), mouth_fake.detach()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                d_loss = real_vs_fake(dw_run, b["target"], fake) + real_vs_fake(dm_run, mouth_real, mf)
                if t > 1:
                    d_loss = d_loss + real_vs_fake(dt_run, _stack_time(mouth_real, t), _stack_time(mf, t))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

        sums += (loss.item(), l1.item(), perc.item(), adv.item(), d_loss.item())
        n_sum += 1
        done = step + 1
        if not main:
            continue
        checkpoint = done % cfg.checkpoint_every == 0 or done in (cfg.steps, end)
        if done % cfg.log_every == 0 or checkpoint:
            mean = sums / max(n_sum, 1)
            ev = {}
            if holdout and (checkpoint if not cfg.eval_every else done % cfg.eval_every == 0):
                ev = evaluate_holdout(model, holdout, basis, dev, max_frames=24).get("mean", {})
            log.write({"step": done, "lr": lr, "loss": mean[0], "l1": mean[1], "perceptual": mean[2], "adv": mean[3],
                       "d": mean[4], "eval_mouth_psnr": ev.get("mouth_psnr"), "eval_mouth_ssim": ev.get("mouth_ssim"),
                       "seconds": round(time.time() - t0, 1)})
            bar.set_postfix(l1=f"{mean[1]:.4f}", perc=f"{mean[2]:.4f}")
            sums[:], n_sum = 0, 0
        if done % cfg.sample_every == 0 or done == end:
            _write_png(out / SAMPLE_DIR / f"step_{done:06d}.png", _sample_grid(b, out_img))
        if checkpoint:
            save_checkpoint(state_path, RENDER_TRAIN_STATE_FORMAT, {
                "step": done, **{k: {n: v.detach().cpu() for n, v in m.state_dict().items()} for k, m in nets.items()},
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "config": asdict(cfg),
                "mouth_pca_sha256": file_sha256(basis_path)})
            write_plot(out / LOG_FILE, out / PLOT_FILE, ("loss", "l1", "perceptual", "adv", "d"), "loss",
                       "eval_mouth_psnr", "held-out mouth PSNR (dB)")
    bar.close()
    _barrier(world)
    seconds = round(time.time() - t0, 1)
    if end < cfg.steps:
        return {"out": str(out), "steps": end, "seconds": seconds, "stopped": True}
    summary = {"out": str(out), "steps": cfg.steps, "seconds": seconds}
    if main:
        model.cpu()
        info = {"steps": cfg.steps, "stage": cfg.stage, "avatars": [f.name for f in frames], "config": asdict(cfg),
                "device": str(dev), "world_size": world, "init": str(init) if init else None,
                "base": base_info if init else None, "mouth_pca_sha256": file_sha256(basis_path)}
        save_renderer(out / RENDER_MODEL_FILE, model, info)
        if holdout:
            report = evaluate_holdout(model, holdout, basis, torch.device("cpu"), strip_path=out / STRIP_FILE)
            write_json(out / EVAL_FILE, report)
            summary["eval"] = report["mean"]
    return summary


def _stack_time(crops: torch.Tensor, t: int) -> torch.Tensor:
    """(B*t, 3, S, S) consecutive crops -> (B, 3t, S, S) for the temporal discriminator."""
    return crops.reshape(-1, t * crops.shape[1], *crops.shape[2:])
