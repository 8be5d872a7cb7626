"""`dhlive infer` and `dhlive stream`: speech + avatar -> a lip-synced mp4.

    audio (any format) -> audio model (MouthStream) -> mouth coefficients, one per 25 fps frame
    avatar frame for output frame t: ping-pong over the avatar (forward, then backward)
    -> render window cut from the full-resolution source frame by the head pose
    -> mouth prompt + lip sketch (render/inputs.py, exactly as in training) -> renderer
       (reference features computed once) -> skin colour and smoothness matched to the frame
    -> pasted back through the feathered lower-face mask -> H.264 + AAC mp4

Frames are cut, rendered and pasted in batches on three threads (cut | render | paste +
encode), with bounded queues, so memory stays flat for any length of audio. On a machine
with more cores, a batch's frames are cut and pasted by a few workers each (OpenCV and
numpy release the GIL), so a GPU is not left waiting on one CPU thread. The source
frames of the avatar are decoded once into a temporary memory-mapped file, for the
backward half of the loop.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from . import media
from .audio.features import SAMPLE_RATE, n_video_frames
from .audio.inference import MouthStream, load_audio_model
from .audio.mouth import aperture, avatar_rest, lip_points
from .device import frame_workers, pick_device
from .errors import DhliveError
from .formats import SHIPPED_AUDIO_MODEL, SHIPPED_RENDERER, SHIPPED_STREAM_AUDIO_MODEL, load_avatar
from .render import inputs
from .render.checkpoint import load_renderer
from .render.model import fuse_for_inference
from .render.references import select_references

FPS = 25  # the audio model's frame rate: avatars are prepared at it
DEFAULT_AUDIO_MODEL = SHIPPED_AUDIO_MODEL
DEFAULT_STREAM_AUDIO_MODEL = SHIPPED_STREAM_AUDIO_MODEL  # stream: a frame within 200 ms of its audio
DEFAULT_RENDERER = SHIPPED_RENDERER
CPU_RENDER_BATCH = 2  # on a CPU, larger batches are slower per frame (cache), measured in scripts/bench_render.py


COLOUR_MATCH = ("skin", "edge", "off")  # before pasting: match_skin, match_edge, as drawn


@dataclass
class InferConfig:
    batch: int = 8  # frames rendered together (CPU); CUDA uses 4x this
    device: str = "auto"  # auto | cpu | cuda
    colour_match: str = "skin"  # before pasting: match_skin, match_edge (the feather band), or off (as drawn)
    crf: int = 18  # H.264 quality (lower is better, larger)
    threads: int = 0  # torch CPU threads (0: all cores)
    workers: int = 0  # threads cutting and pasting frames, each (0: from the cores; 1 on 2 cores)


def cut_paste_workers(cfg: InferConfig, device: torch.device) -> int:
    """Threads cutting, and threads pasting, frames. On 2 cores one of each keeps the renderer
    busy; more would only take cores from it. Beside a GPU they are the bottleneck: up to 4
    each (more were slower on a 16-core H100 machine, docs/render.md). On a many-core CPU the
    renderer keeps most cores."""
    if cfg.workers:
        return cfg.workers
    cores = os.cpu_count() or 2
    return max(1, min(4, (cores - 2) // 2)) if device.type == "cuda" else max(1, cores // 8)


def pingpong(t: int, n: int) -> int:
    """Avatar frame for output frame t: 0..n-1, then n-2..1, repeating; no frame is shown twice
    in a row at the turns, so the idle motion has no jump and no freeze."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    k = t % period
    return k if k < n else period - k


class AvatarPipeline:
    """One avatar with a renderer and a mouth PCA: mouth coefficients in, finished frames out."""

    def __init__(self, avatar_dir, renderer_path, basis, cfg: InferConfig, reference_frames=None):
        """`reference_frames`: the avatar frames references may be taken from [default: all];
        evaluation keeps its held-out frames out of them."""
        self.avatar = load_avatar(avatar_dir)
        if abs(self.avatar.fps - FPS) > 1e-6:
            raise DhliveError(f"{avatar_dir}: prepared at {self.avatar.fps:g} fps; the audio model needs {FPS} (prepare it again with --fps {FPS})")
        if cfg.colour_match not in COLOUR_MATCH:
            raise DhliveError(f"colour match must be one of {', '.join(COLOUR_MATCH)}, not {cfg.colour_match!r}")
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.workers = cut_paste_workers(cfg, self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif self.device.type == "cpu" and self.workers > 1:  # leave the cut and paste workers their cores
            torch.set_num_threads(max(2, (os.cpu_count() or 2) - 2 * self.workers))
        model, _ = load_renderer(renderer_path)
        self.model = fuse_for_inference(model).to(self.device)
        self.size = model.cfg.resolution
        self.basis = basis
        self.rest = avatar_rest(self.avatar)
        self.window = inputs.face_window(self.avatar.lower_face, self.rest.lips, self.size)
        self.source = media.SourceFrames(self.avatar)
        self.reference_features = self._references(model.cfg.n_refs, reference_frames)
        self.seconds = {"prepare": 0.0, "render": 0.0, "paste": 0.0, "encode": 0.0}  # per stage, summed over frames
        self._seconds_lock = threading.Lock()  # workers add to it concurrently

    def _spent(self, stage: str, start: float) -> None:
        with self._seconds_lock:
            self.seconds[stage] += time.perf_counter() - start

    def _references(self, n: int, allowed=None) -> torch.Tensor:
        av = self.avatar
        allowed = np.arange(av.n_frames) if allowed is None else np.asarray(list(allowed), np.int64)
        if len(allowed) == 0:
            raise DhliveError(f"{av.root}: no frames left to take reference frames from")
        ids = allowed[select_references(aperture(lip_points(av.canonical[allowed])), av.euler[allowed], n)]
        wins = np.stack([self.cut(i) for i in ids])
        lms = np.stack([inputs.project(av.canonical[i], self.window.canonical_to_window(av.pose[i])) for i in ids])
        refs = torch.from_numpy(inputs.reference_input(wins, lms)[None]).to(self.device)
        with torch.inference_mode():
            return self.model.encode_references(refs)

    def _geometry(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Avatar frame i's canonical -> window matrix and repaint mask in the window."""
        c2w = self.window.canonical_to_window(self.avatar.pose[i])
        return c2w, inputs.repaint_mask(inputs.project(self.avatar.lower_face, c2w), self.size)

    def cut(self, i: int) -> np.ndarray:
        return inputs.cut_window(self.source[i], self.window.to_source(self.avatar.pose[i]), self.size)

    def prepare(self, t: int, coeffs: np.ndarray) -> dict:
        """Inputs of output frame t (its avatar frame by ping-pong) for mouth coefficients `coeffs`."""
        start = time.perf_counter()
        i = pingpong(t, self.avatar.n_frames)
        c2w, repaint = self._geometry(i)
        win = self.cut(i)
        prompt, sketch, lips = inputs.mouth_prompt(coeffs, self.basis, self.rest, c2w, self.size)
        real_lips = inputs.project(lip_points(self.avatar.canonical[i]), c2w)
        item = {"i": i, "window": win, "paste": inputs.paste_mask(repaint), "lips": [lips, real_lips],
                "source": inputs.source_input(win, repaint, prompt, sketch)}
        self._spent("prepare", start)
        return item

    @torch.inference_mode()
    def render(self, items: list[dict]) -> np.ndarray:
        """(B, R, R, 3) uint8 generated windows."""
        start = time.perf_counter()
        x = torch.from_numpy(np.stack([it["source"] for it in items])).to(self.device)
        cuda = self.device.type == "cuda"
        step = len(x) if cuda else CPU_RENDER_BATCH
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = torch.cat([self.model(x[k:k + step], self.reference_features) for k in range(0, len(x), step)])
        out = (out.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        self._spent("render", start)
        return out

    def paste(self, item: dict, generated: np.ndarray) -> np.ndarray:
        """The full-resolution frame with the generated window pasted back."""
        start = time.perf_counter()
        try:
            return self._paste(item, generated)
        finally:
            self._spent("paste", start)

    def write(self, writer, frame: np.ndarray) -> None:
        start = time.perf_counter()
        writer.write(frame)
        self._spent("encode", start)

    def _paste(self, item: dict, generated: np.ndarray) -> np.ndarray:
        frame = np.array(self.source[item["i"]])
        gen, win, alpha = generated.astype(np.float32), item["window"].astype(np.float32), item["paste"]
        if self.cfg.colour_match == "skin":
            gen = match_skin(gen, win, alpha, item["lips"])
        elif self.cfg.colour_match == "edge":
            gen = match_edge(gen, win, alpha)
        h, w = frame.shape[:2]
        m = self.window.to_source(self.avatar.pose[item["i"]]).astype(np.float64)
        corners = np.c_[[[0, 0], [self.size, 0], [0, self.size], [self.size, self.size]], np.ones(4)] @ m.T
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, (w, h))
        if x1 <= x0 or y1 <= y0:
            return frame
        m[:, 2] -= (x0, y0)  # warp into the region of interest only
        size = (int(x1 - x0), int(y1 - y0))
        a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
        # bicubic, like the cut: a window cut and pasted back unchanged with bilinear sampling
        # kept 0.70 of the mouth's fine detail (Laplacian variance), 0.90 bicubic (docs/render.md)
        g = cv2.warpAffine(np.clip(gen, 0, 255), m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi + a * (g - roi) + 0.5, 0, 255).astype(np.uint8)
        return frame

    def frame_mask(self, i: int) -> np.ndarray:
        """(H, W) float paste-back mask of avatar frame i in source pixels (for seam scores)."""
        alpha = inputs.paste_mask(self._geometry(i)[1])
        w, h = self.avatar.source_size
        return cv2.warpAffine(alpha, self.window.to_source(self.avatar.pose[i]), (w, h), flags=cv2.INTER_LINEAR, borderValue=0)

    def close(self):
        self.source.close()


SKIN_SIGMA = 1 / 16  # smoothness of the colour and contrast fields, in window sides
SKIN_CHANGE = 25.0  # grey levels: where generated and real skin differ more than the rest (the jaw moved), they are not compared
TEXTURE_FLOOR = 0.5  # the generated skin's local contrast is damped to the real skin's, at most to half


def match_edge(generated: np.ndarray, window: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Shift the generated window's colour so that, in the feathered band where it meets the
    real frame, its local mean colour equals the frame's: a smooth per-channel correction
    field (not one global offset), so light falling across the face is followed too. Where
    the jaw crosses the band, the two differ in kind, not in colour; those pixels are left
    out (`_same_skin`), or the whole face would take their offset (0.4 dB of the fine-tuned
    d6 mouth, docs/render.md). The field is smooth, so it is computed at a quarter of the
    resolution."""
    size = generated.shape[1], generated.shape[0]
    small = (max(8, size[0] // 4), max(8, size[1] // 4))
    band_s = cv2.resize(((alpha > 0.02) & (alpha < 0.9)).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    diff_s = cv2.resize(window - generated, small, interpolation=cv2.INTER_AREA)
    band_s *= _same_skin(diff_s, band_s)
    if band_s.sum() * (size[0] * size[1]) / (small[0] * small[1]) < 16:
        return generated
    sigma = small[1] / 12
    diff_s *= band_s[..., None]
    mean = diff_s.sum((0, 1)) / band_s.sum()  # the band's mean offset
    diff_s = cv2.GaussianBlur(diff_s, (0, 0), sigma)
    weight_s = cv2.GaussianBlur(band_s, (0, 0), sigma)[..., None]
    # where the band is far away, fall back to the band's mean offset
    field = (diff_s + mean * 1e-2) / (weight_s + 1e-2)
    return generated + cv2.resize(field, size, interpolation=cv2.INTER_LINEAR)


def _same_skin(difference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Where (weight > 0) the real and generated windows differ by about the typical amount,
    from their (H, W, 3) difference at a quarter of the resolution: the same skin, shaded
    differently. Elsewhere (more than SKIN_CHANGE grey levels from the median difference) the
    jaw or the lips moved, and comparing colours there would be comparing different things."""
    change = cv2.GaussianBlur(difference.mean(-1), (0, 0), 1.0)
    if (weight > 0).sum() < 4:
        return np.ones_like(change)
    return (np.abs(change - np.median(change[weight > 0])) < SKIN_CHANGE).astype(np.float32)


def match_skin(generated: np.ndarray, window: np.ndarray, alpha: np.ndarray, lips: list[np.ndarray]) -> np.ndarray:
    """Give the generated skin the colour and the smoothness of the real frame it replaces.

    Only the mouth and the jaw should change; the cheeks, chin and upper lip keep the
    person's own skin. A base renderer that has not seen this face draws it with its
    training faces' skin instead (a darker, stubbly lower face on a woman it never saw,
    docs/render.md). So, compared over the paste-back region less the mouth (around the
    `lips` given, (40, 2) window pixels each: `inputs.mouth_region`) and less where the two
    differ in kind (the jaw moved), the generated window is shifted to the real one's local
    mean colour and its local contrast is damped to the real one's (never raised): two
    smooth fields, computed at a quarter of the resolution. Inside the mouth only the
    colour shift applies, carried in from around it."""
    size = generated.shape[1], generated.shape[0]
    small = (max(8, size[0] // 4), max(8, size[1] // 4))
    down = lambda x: cv2.resize(x, small, interpolation=cv2.INTER_AREA)  # noqa: E731
    mouth = inputs.mouth_region([np.asarray(p)[:, :2] * (small[0] / size[0]) for p in lips], small[0])
    weight = ((down(alpha) > 0.02) & (mouth < 0.5)).astype(np.float32)
    gen, win = down(generated), down(window)
    weight *= _same_skin(win - gen, weight)
    if weight.sum() < 4:
        return generated
    w = weight[..., None]
    # the local sums of the weight, colours and squares, in one blur
    sums = cv2.GaussianBlur(np.concatenate([w, gen * w, win * w, down(generated * generated) * w,
                                            down(window * window) * w], -1), (0, 0), small[1] * SKIN_SIGMA)
    cover, sum_g, sum_w, sq_g, sq_w = sums[..., :1], sums[..., 1:4], sums[..., 4:7], sums[..., 7:10], sums[..., 10:]
    mean_shift = ((win - gen) * w).sum((0, 1)) / weight.sum()
    # where no skin is near, fall back to the region's mean shift
    shift = (sum_w - sum_g + mean_shift * 1e-2) / (cover + 1e-2)
    c = np.maximum(cover, 1e-3)
    mean_g, mean_w = sum_g / c, sum_w / c
    var_g, var_w = sq_g / c - mean_g ** 2, sq_w / c - mean_w ** 2
    gain = np.clip(np.sqrt((np.maximum(var_w, 0) + 1) / (np.maximum(var_g, 0) + 1)), TEXTURE_FLOOR, 1.0)
    gain = np.where(cover > 0.05, gain, 1.0)
    gain = 1 - (1 - gain) * (1 - mouth[..., None])
    shift = shift + mean_g * (1 - gain)  # out = mean + shift + (generated - mean) * gain
    up = lambda x: cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    return generated * up(gain) + up(shift)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _run_threads(pipe: AvatarPipeline, coeffs_iter, writer, progress=None, on_frame=None):
    """cut/prompt (thread) -> render (this thread) -> paste + encode (thread), bounded queues;
    cutting and pasting each spread over cut_paste_workers() threads, frame order kept.

    coeffs_iter yields (t0, coeffs (B,k)) batches in order; on_frame(t) is called once frame t
    is encoded."""
    with frame_workers(pipe.workers) as cut_pool, frame_workers(pipe.workers) as paste_pool:
        _run_pipeline(pipe, coeffs_iter, writer, cut_pool, paste_pool, progress, on_frame)


def _run_pipeline(pipe, coeffs_iter, writer, cut_pool, paste_pool, progress, on_frame):
    prepared, rendered = queue.Queue(maxsize=3), queue.Queue(maxsize=3)
    errors = []

    def each(pool, fn, *args):
        return list(pool.map(fn, *args) if pool else map(fn, *args))

    def cutter():
        try:
            for t0, coeffs in coeffs_iter:
                prepared.put(each(cut_pool, pipe.prepare, range(t0, t0 + len(coeffs)), coeffs))
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)
        prepared.put(None)

    def paster():
        while True:
            job = rendered.get()
            if job is None:
                return
            items, gens = job
            try:
                if not errors:
                    for frame in each(paste_pool, pipe.paste, items, gens):
                        pipe.write(writer, frame)
                        if on_frame:
                            on_frame()
                        if progress is not None:
                            progress.update(1)
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=cutter, daemon=True), threading.Thread(target=paster, daemon=True)]
    for th in threads:
        th.start()
    try:
        while True:
            items = prepared.get()
            if items is None or errors:
                break
            rendered.put((items, pipe.render(items)))
    finally:
        rendered.put(None)
        for th in threads:
            th.join(timeout=60)
    if errors:
        raise errors[0]


def load_models(audio_model: str | os.PathLike | None, renderer: str | os.PathLike | None,
                default_audio_model: Path = DEFAULT_AUDIO_MODEL):
    audio_model = Path(audio_model) if audio_model else default_audio_model
    renderer = Path(renderer) if renderer else DEFAULT_RENDERER
    for path, what, flag in ((audio_model, "audio model", "--audio-model"), (renderer, "renderer", "--renderer")):
        if not path.exists():
            raise DhliveError(f"{path}: no {what} here (pass {flag}, or train one: see README)")
    model, basis = load_audio_model(audio_model)
    return model, basis, renderer


def infer(audio_path, avatar_dir, out_path, *, audio_model=None, renderer=None, cfg: InferConfig | None = None,
          progress: bool = True) -> dict:
    """Write `out_path` (mp4): the avatar saying `audio_path`. Returns timings per stage."""
    from tqdm import tqdm

    cfg = cfg or InferConfig()
    t_start = time.perf_counter()
    media.check_writable(out_path)
    audio = media.load_audio(audio_path, SAMPLE_RATE)
    track, rate = media.load_audio_native(audio_path)  # the output keeps the recording's rate and channels
    model, basis, renderer = load_models(audio_model, renderer)
    t0 = time.perf_counter()
    stream = MouthStream(model)
    coeffs = np.concatenate([stream.push(audio), stream.finish()])[:n_video_frames(len(audio))]
    t_audio = time.perf_counter() - t0
    pipe = AvatarPipeline(avatar_dir, renderer, basis, cfg)
    try:
        w, h = pipe.avatar.source_size
        n = len(coeffs)
        batch = cfg.batch * (4 if pipe.device.type == "cuda" else 1)
        t0 = time.perf_counter()
        bar = tqdm(total=n, desc="infer", unit="frame", disable=not progress)
        with media.Mp4Writer(out_path, FPS, w, h, audio=track, sample_rate=rate, crf=cfg.crf) as writer:
            _run_threads(pipe, ((r.start, coeffs[r.start:r.stop]) for r in _batches(n, batch)), writer, bar)
        bar.close()
        t_video = time.perf_counter() - t0
        stages = {"audio_model": round(t_audio, 3), **{k: round(v, 3) for k, v in pipe.seconds.items()}}
    finally:
        pipe.close()
    seconds = len(audio) / SAMPLE_RATE
    total = time.perf_counter() - t_start
    return {"out": str(out_path), "frames": n, "audio_seconds": round(seconds, 3), "seconds": round(total, 2),
            "audio_model_seconds": round(t_audio, 3), "video_seconds": round(t_video, 2),
            "fps": round(n / max(t_video, 1e-9), 2), "real_time_factor": round(total / max(seconds, 1e-9), 3),
            "device": str(pipe.device), "stage_seconds": stages}


# --- streaming ---------------------------------------------------------------------------------

CHUNK = SAMPLE_RATE // FPS  # 40 ms of audio: one video frame


def _stdin_chunks(read, chunk: int = CHUNK):
    """Raw PCM on stdin: signed 16-bit little-endian, mono, 16 kHz, in 40 ms pieces."""
    while True:
        data = read(2 * chunk)
        if not data:
            return
        if len(data) % 2:
            data = data[:-1]
        yield np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def _file_chunks(path, chunk: int = CHUNK):
    """A file decoded progressively, cut into 40 ms pieces."""
    pending = np.zeros(0, np.float32)
    for piece in media.iter_audio(path, SAMPLE_RATE):
        pending = np.concatenate([pending, piece])
        while len(pending) >= chunk:
            yield pending[:chunk]
            pending = pending[chunk:]
    if len(pending):
        yield pending


class RawWriter:
    """Frames as raw rgb24 bytes (height x width x 3 each, no header) on a binary stream."""

    def __init__(self, out):
        self.out = out
        self.n_frames = 0

    def write(self, rgb: np.ndarray) -> None:
        self.out.write(np.ascontiguousarray(rgb, np.uint8).tobytes())
        self.out.flush()
        self.n_frames += 1


def stream(audio_source, avatar_dir, out, *, audio_model=None, renderer=None, cfg: InferConfig | None = None,
           realtime: bool = False, stdin=None, on_start=None) -> dict:
    """Render while audio arrives in 40 ms chunks.

    audio_source: a file (decoded progressively; realtime=True paces it like a live source)
    or "-" for raw PCM on `stdin` (s16le, mono, 16 kHz). out: an mp4 path, or a binary
    stream for raw rgb24 frames. Each frame is rendered as soon as the audio model has
    heard its look-ahead; latency (chunk arrival -> its frame written) is measured."""
    cfg = cfg or InferConfig()
    to_file = isinstance(out, (str, os.PathLike))
    if to_file:
        media.check_writable(out)
    model, basis, renderer = load_models(audio_model, renderer, DEFAULT_STREAM_AUDIO_MODEL)
    pipe = AvatarPipeline(avatar_dir, renderer, basis, cfg)
    ms = MouthStream(model)
    w, h = pipe.avatar.source_size
    if on_start:
        on_start(w, h)
    writer = media.Mp4Writer(out, FPS, w, h, crf=cfg.crf, live_audio=True) if to_file else RawWriter(out)
    chunks = _stdin_chunks(stdin.read) if str(audio_source) == "-" else _file_chunks(audio_source)
    arrival, latency, n_samples, t = [], [], 0, 0
    t_begin = time.perf_counter()

    def emit(coeffs):
        nonlocal t
        for c in coeffs:
            if t >= n_video_frames(n_samples) and n_samples:
                return  # the look-ahead's padding past the end of the audio
            item = pipe.prepare(t, c)
            pipe.write(writer, pipe.paste(item, pipe.render([item])[0]))
            latency.append(time.perf_counter() - arrival[min(t, len(arrival) - 1)])
            t += 1

    try:
        for k, chunk in enumerate(chunks):
            if realtime:  # a live source delivers chunk k at k * 40 ms
                time.sleep(max(0.0, t_begin + k * CHUNK / SAMPLE_RATE - time.perf_counter()))
            arrival.append(time.perf_counter())
            n_samples += len(chunk)
            if to_file:
                writer.append_audio(chunk)
            emit(ms.push(chunk))
        if n_samples == 0:
            raise DhliveError(f"{audio_source}: audio has no samples")
        emit(ms.finish())
        if to_file:
            writer.close()
    except BaseException:
        if to_file:
            writer.abort()
        raise
    finally:
        pipe.close()
    lat = np.array(latency) * 1000
    return {"out": str(out) if to_file else "stdout", "frames": t, "audio_seconds": round(n_samples / SAMPLE_RATE, 3),
            "stage_seconds": {k: round(v, 3) for k, v in pipe.seconds.items()},
            "seconds": round(time.perf_counter() - t_begin, 2), "realtime": realtime,
            "lookahead_ms": model.config.lookahead * 1000 // FPS,
            "latency_ms": {"mean": round(float(lat.mean()), 1), "p95": round(float(np.percentile(lat, 95)), 1),
                           "max": round(float(lat.max()), 1)} if len(lat) else {}}
