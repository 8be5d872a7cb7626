"""The frame pipeline: one avatar's frames cut, rendered and pasted back. `infer`, `stream`,
`eval selfreenact` and `serve` all run it.

    output frame t, mouth coefficients -> FramePipeline.prepare -> Frame: the avatar frame
        shown (ping-pong over the avatar), the render window cut from its full-resolution
        source frame by the head pose, the renderer's input (masked window, mouth prompt,
        lip sketch; render/inputs.py, exactly as in training), the paste-back mask
    -> FramePipeline.render (a batch; the reference features are computed once)
    -> FramePipeline.paste (colour matched, feathered paste-back, render/paste.py)
    -> the finished full-resolution frame

`run_threaded` runs the three steps on three threads (cut | render | paste + write) with
bounded queues, so memory stays flat for any length; beside a GPU, several workers cut and
paste each batch (OpenCV and numpy release the GIL).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import media
from ..config import choice, number
from ..constants import FPS
from ..device import PRECISIONS, frame_workers, pick_device, pick_precision
from ..errors import DhliveError
from ..facemesh import aperture, lip_points
from ..formats import load_avatar
from ..mouth import MouthBasis, avatar_rest
from . import inputs
from .checkpoint import load_renderer
from .model import SOURCE_CHANNELS, fuse_for_inference
from .paste import COLOUR_MATCH, paste_window
from .references import select_references
from .runtime import BACKENDS, renderer_runtime

CPU_RENDER_BATCH = 2  # on a CPU, larger batches are slower per frame (cache; scripts/bench_render.py)
QUEUE_FRAMES = 3  # batches waiting between two threads
POLL_SECONDS = 0.1  # how often a waiting thread checks whether the run was stopped


@dataclass
class InferConfig:
    """How `infer`, `stream`, `eval` and `serve` run the frame pipeline."""

    batch: int = 8  # frames rendered together (CPU); CUDA uses 4x this
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16: the renderer's arithmetic (auto: bf16 where native)
    backend: str = "auto"  # auto | torch | openvino: what runs the renderer (render/runtime.py)
    colour_match: str = "skin"  # before pasting: match the skin, the edge (the feather band), or off
    crf: int = 18  # H.264 quality (lower is better, larger)
    threads: int = 0  # torch CPU threads (0: all cores)
    workers: int = 0  # threads cutting and pasting frames, each (0: from the cores; 1 on 2 cores)
    max_latency_ms: int = 200  # live: a frame whose sound is older than this is not rendered (the last repeats)

    def __post_init__(self):
        number("batch", self.batch, low=1, integer=True)
        choice("colour match", self.colour_match, COLOUR_MATCH)
        choice("precision", self.precision, PRECISIONS)
        choice("backend", self.backend, BACKENDS)
        number("crf", self.crf, low=0, high=51, integer=True)
        number("threads", self.threads, low=0, integer=True)
        number("workers", self.workers, low=0, integer=True)
        number("max_latency_ms", self.max_latency_ms, low=0)


def cut_paste_workers(cfg: InferConfig, device: torch.device) -> int:
    """Threads cutting, and threads pasting, frames. On 2 cores one of each keeps the renderer
    busy; more would only take cores from it. Beside a GPU they are the bottleneck: up to 4
    each. On a many-core CPU the renderer keeps most cores."""
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


@dataclass
class Frame:
    """One output frame on its way through the pipeline."""

    t: int  # output frame index
    index: int  # the avatar frame it shows
    window: np.ndarray  # (R, R, 3) uint8: the render window cut from the source frame
    source: np.ndarray  # (SOURCE_CHANNELS, R, R) float32: the renderer's input
    paste_mask: np.ndarray  # (R, R) float32: the feathered paste-back mask
    lips: tuple[np.ndarray, np.ndarray]  # generated and real lips, (40, 2) window pixels each


class FramePipeline:
    """One avatar with a renderer and a mouth PCA: mouth coefficients in, finished frames out."""

    def __init__(self, avatar_dir, renderer_path, basis: MouthBasis, cfg: InferConfig, reference_frames=None):
        """`reference_frames`: the avatar frames references may be taken from [default: all];
        evaluation keeps its held-out frames out of them."""
        self.avatar = load_avatar(avatar_dir)
        if abs(self.avatar.fps - FPS) > 1e-6:
            raise DhliveError(
                f"{avatar_dir}: prepared at {self.avatar.fps:g} fps; the audio model needs {FPS} "
                f"(prepare it again with --fps {FPS})"
            )
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.workers = cut_paste_workers(cfg, self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif self.device.type == "cpu" and self.workers > 1:  # leave the cut and paste workers their cores
            torch.set_num_threads(max(2, (os.cpu_count() or 2) - 2 * self.workers))
        model, _ = load_renderer(renderer_path)
        self.dtype = pick_precision(cfg.precision, self.device)
        self.precision = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        # channels_last: oneDNN's convolutions skip a layout change per layer on a CPU
        self.model = fuse_for_inference(model).to(self.device, memory_format=torch.channels_last)
        self.size = model.cfg.resolution
        self.basis = basis
        self.rest = avatar_rest(self.avatar)
        self.window = inputs.face_window(self.avatar.lower_face, self.rest.lips, self.size)
        self.source = media.SourceFrames(self.avatar)
        self.reference_features = self._references(model.cfg.n_refs, reference_frames)
        self.runtime = renderer_runtime(
            self.model, self.reference_features, cfg.backend, self.dtype, torch.get_num_threads()
        )
        self.backend = self.runtime.name
        self.seconds = {"prepare": 0.0, "render": 0.0, "paste": 0.0, "encode": 0.0}  # per stage, over all frames
        self._seconds_lock = threading.Lock()  # workers add to it concurrently

    def warm_up(self) -> None:
        """Run the renderer once on a blank input, so that the first real frame does not also
        pay for choosing and compiling kernels."""
        self.runtime(torch.zeros(1, SOURCE_CHANNELS, self.size, self.size, device=self.device))

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

    def _paste_mask(self, i: int, c2w: np.ndarray, repaint: np.ndarray) -> np.ndarray:
        nose = inputs.nose_row(inputs.project(self.avatar.canonical[i], c2w), self.size)
        return inputs.paste_mask(repaint, keep_above=nose)

    def cut(self, i: int) -> np.ndarray:
        """The render window of avatar frame i, cut from its source frame."""
        return inputs.cut_window(self.source[i], self.window.to_source(self.avatar.pose[i]), self.size)

    def prepare(self, t: int, coeffs: np.ndarray, index: int | None = None) -> Frame:
        """Output frame t for mouth coefficients `coeffs`, on avatar frame `index` [default: by ping-pong]."""
        start = time.perf_counter()
        i = pingpong(t, self.avatar.n_frames) if index is None else int(index)
        c2w, repaint = self._geometry(i)
        win = self.cut(i)
        prompt, sketch, lips = inputs.mouth_prompt(coeffs, self.basis, self.rest, c2w, self.size)
        real_lips = inputs.project(lip_points(self.avatar.canonical[i]), c2w)
        frame = Frame(
            t,
            i,
            win,
            inputs.source_input(win, repaint, prompt, sketch),
            self._paste_mask(i, c2w, repaint),
            (lips, real_lips),
        )
        self._spent("prepare", start)
        return frame

    @torch.inference_mode()
    def render(self, frames: list[Frame]) -> np.ndarray:
        """(B, R, R, 3) uint8 generated windows."""
        start = time.perf_counter()
        x = torch.from_numpy(np.stack([f.source for f in frames])).to(self.device)
        step = len(x) if self.device.type == "cuda" else CPU_RENDER_BATCH
        out = torch.cat([self.runtime(x[k : k + step]) for k in range(0, len(x), step)])
        out = (out.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        self._spent("render", start)
        return out

    def paste(self, frame: Frame, generated: np.ndarray) -> np.ndarray:
        """The full-resolution source frame with the generated window pasted back."""
        start = time.perf_counter()
        try:
            return paste_window(
                np.array(self.source[frame.index]),
                generated,
                frame.window,
                frame.paste_mask,
                self.window.to_source(self.avatar.pose[frame.index]),
                frame.lips,
                self.cfg.colour_match,
            )
        finally:
            self._spent("paste", start)

    def write(self, writer, image: np.ndarray) -> None:
        start = time.perf_counter()
        writer.write(image)
        self._spent("encode", start)

    def frame_mask(self, i: int) -> np.ndarray:
        """(H, W) float paste-back mask of avatar frame i in source pixels (for seam scores)."""
        import cv2

        c2w, repaint = self._geometry(i)
        alpha = self._paste_mask(i, c2w, repaint)
        w, h = self.avatar.source_size
        return cv2.warpAffine(
            alpha, self.window.to_source(self.avatar.pose[i]), (w, h), flags=cv2.INTER_LINEAR, borderValue=0
        )

    def close(self):
        self.source.close()
        self.runtime.close()


def run_threaded(pipe: FramePipeline, batches, writer, progress=None, on_frame=None) -> None:
    """cut (thread) -> render (this thread) -> paste + write (thread), with bounded queues;
    cutting and pasting each spread over cut_paste_workers() threads, frame order kept.

    `batches` yields (t0, coeffs (B, k)) in order; on_frame() is called once per frame
    written. An error or an interrupt in any thread stops all three within POLL_SECONDS
    plus the batch each is working on."""
    with frame_workers(pipe.workers) as cut_pool, frame_workers(pipe.workers) as paste_pool:
        _Run(pipe, writer, cut_pool, paste_pool, progress, on_frame).run(batches)


class _Run:
    """The three threads of one run_threaded call."""

    def __init__(self, pipe, writer, cut_pool, paste_pool, progress, on_frame):
        self.pipe, self.writer, self.progress, self.on_frame = pipe, writer, progress, on_frame
        self.cut_pool, self.paste_pool = cut_pool, paste_pool
        self.prepared, self.rendered = queue.Queue(maxsize=QUEUE_FRAMES), queue.Queue(maxsize=QUEUE_FRAMES)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                pass
        return False

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                pass
        return None

    @staticmethod
    def _each(pool, fn, *args) -> list:
        return list(pool.map(fn, *args) if pool else map(fn, *args))

    def _cutter(self, batches) -> None:
        try:
            for t0, coeffs in batches:
                frames = self._each(self.cut_pool, self.pipe.prepare, range(t0, t0 + len(coeffs)), coeffs)
                if not self._put(self.prepared, frames):
                    return
            self._put(self.prepared, None)
        except BaseException as e:  # surfaced in the main thread
            self.errors.append(e)
            self.stop.set()

    def _paster(self) -> None:
        try:
            while (job := self._get(self.rendered)) is not None:
                frames, generated = job
                for image in self._each(self.paste_pool, self.pipe.paste, frames, generated):
                    self.pipe.write(self.writer, image)
                    if self.on_frame:
                        self.on_frame()
                    if self.progress is not None:
                        self.progress.update(1)
        except BaseException as e:
            self.errors.append(e)
            self.stop.set()

    def run(self, batches) -> None:
        cutter = threading.Thread(target=self._cutter, args=(batches,), daemon=True)
        paster = threading.Thread(target=self._paster, daemon=True)
        cutter.start()
        paster.start()
        try:
            while (frames := self._get(self.prepared)) is not None:
                if not self._put(self.rendered, (frames, self.pipe.render(frames))):
                    break
            if self._put(self.rendered, None):
                while paster.is_alive() and not self.stop.is_set():
                    paster.join(POLL_SECONDS)
        finally:
            self.stop.set()
            for th in (cutter, paster):
                th.join(timeout=5)
        if self.errors:
            raise self.errors[0]
