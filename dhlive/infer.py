"""`dhlive infer` and `dhlive stream`: speech + avatar -> a lip-synced video.

    audio (any format) -> audio model (MouthStream) -> mouth coefficients, one per 25 fps frame
    -> the frame pipeline (render/frames.py): cut, render, paste back -> H.264 + AAC mp4

`infer` reads the whole recording and runs the pipeline on three threads; `stream` takes
the audio in 40 ms chunks (a file read progressively, or raw PCM on stdin) and writes each
frame as soon as the audio model has heard its look-ahead.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from . import media
from .audio.features import n_video_frames
from .audio.inference import MouthStream
from .constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from .errors import DhliveError
from .facemesh import aperture
from .formats import find_avatar
from .models import DEFAULT_STREAM_AUDIO_MODEL, load_models, renderer_source
from .render.frames import FramePipeline, InferConfig, run_threaded

RECORD_FRAMES = 15000  # a live session's latency and mouth records keep its last 10 minutes


def check_out(out, audio, avatar_dir) -> None:
    """An output may replace an earlier output, but never the input audio or a file of the avatar."""
    media.check_writable(out)
    path = Path(out).resolve()
    if str(audio) != "-" and path == Path(audio).resolve():
        raise DhliveError(f"{out}: is the input audio; pick another --out")
    if Path(avatar_dir).resolve() in path.parents:
        raise DhliveError(f"{out}: is inside the avatar folder {avatar_dir}; pick another --out")


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def infer(
    audio_path,
    avatar_dir,
    out_path,
    *,
    audio_model=None,
    renderer=None,
    cfg: InferConfig | None = None,
    progress: bool = True,
    on_frame=None,
) -> dict:
    """Write `out_path` (mp4): the avatar saying `audio_path`. Returns timings per stage.

    on_frame(done, total) is called after each frame is written."""
    from tqdm import tqdm

    cfg = cfg or InferConfig()
    t_start = time.perf_counter()
    avatar_dir = find_avatar(avatar_dir)
    check_out(out_path, audio_path, avatar_dir)
    audio = media.load_audio(audio_path, SAMPLE_RATE)
    track, rate = media.load_audio_native(audio_path)  # the output keeps the recording's rate and channels
    model, basis, renderer = load_models(audio_model, renderer, avatar=avatar_dir)
    t0 = time.perf_counter()
    stream = MouthStream(model)
    coeffs = np.concatenate([stream.push(audio), stream.finish()])[: n_video_frames(len(audio))]
    t_audio = time.perf_counter() - t0
    pipe = FramePipeline(avatar_dir, renderer, basis, cfg)
    try:
        w, h = pipe.avatar.source_size
        n = len(coeffs)
        batch = cfg.batch * (4 if pipe.device.type == "cuda" else 1)
        t0 = time.perf_counter()
        bar = tqdm(total=n, desc="infer", unit="frame", disable=not progress)
        written = itertools.count(1)
        each = (lambda: on_frame(next(written), n)) if on_frame else None
        with media.Mp4Writer(out_path, FPS, w, h, audio=track, sample_rate=rate, crf=cfg.crf) as writer:
            batches = ((r.start, coeffs[r.start : r.stop]) for r in _batches(n, batch))
            run_threaded(pipe, batches, writer, bar, on_frame=each)
        bar.close()
        t_video = time.perf_counter() - t0
        stages = {"audio_model": round(t_audio, 3), **{k: round(v, 3) for k, v in pipe.seconds.items()}}
    finally:
        pipe.close()
    seconds = len(audio) / SAMPLE_RATE
    total = time.perf_counter() - t_start
    return {
        "out": str(out_path),
        "frames": n,
        "audio_seconds": round(seconds, 3),
        "seconds": round(total, 2),
        "audio_model_seconds": round(t_audio, 3),
        "video_seconds": round(t_video, 2),
        "fps": round(n / max(t_video, 1e-9), 2),
        "real_time_factor": round(total / max(seconds, 1e-9), 3),
        "device": str(pipe.device),
        "precision": pipe.precision,
        "backend": pipe.backend,
        "renderer": renderer_source(renderer, avatar_dir),
        "stage_seconds": stages,
    }


# --- streaming ------------------------------------------------------------------------------


def _stdin_chunks(read, chunk: int = SAMPLES_PER_FRAME):
    """Raw PCM on stdin: signed 16-bit little-endian, mono, 16 kHz, in 40 ms pieces."""
    while True:
        data = read(2 * chunk)
        if not data:
            return
        if len(data) % 2:
            data = data[:-1]
        yield np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def _file_chunks(path, chunk: int = SAMPLES_PER_FRAME):
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


class LiveSession:
    """Audio in 40 ms chunks, finished frames out as soon as the audio model has heard each
    frame's look-ahead: what `stream` and `serve` run.

    Behind real time (a slow CPU, a busy machine), a frame whose sound arrived more than
    cfg.max_latency_ms ago is not rendered: the last frame is shown again, which costs only
    its encoding, so the video never drifts from the sound and the latency stays bounded."""

    def __init__(self, pipe: FramePipeline, model, cfg: InferConfig, live: bool = True):
        """live: the audio comes at the pace of speech (a microphone, a paced file), so frames
        late beyond the bound are repeated; otherwise every frame is rendered."""
        self.pipe, self.mouth, self.cfg, self.live = pipe, MouthStream(model), cfg, live
        pipe.warm_up()  # the first frame is due within the latency bound too
        self.t = 0  # next output frame
        self.samples = 0
        self.arrival: deque[float] = deque()  # when the sound of each frame arrived, from frame arrival_frame on
        self.arrival_frame = 0
        self.last: np.ndarray | None = None
        self.opening = 0.0  # the mouth opening drawn in the last frame (aperture of its lips)
        self.repeated = 0
        # seconds from a frame's sound to the frame written, over the last RECORD_FRAMES frames
        # (a live session may run for hours)
        self.latency: deque[float] = deque(maxlen=RECORD_FRAMES)

    def push(self, chunk: np.ndarray, arrived: float) -> list[tuple[np.ndarray, float]]:
        """(frame, the time its sound arrived) for each frame the chunk completes."""
        self.samples += len(chunk)
        self.arrival.append(arrived)
        return self._frames(self.mouth.push(chunk))

    def finish(self) -> list[tuple[np.ndarray, float]]:
        """The frames of the last look-ahead, as if silence followed."""
        return self._frames(self.mouth.finish())

    def delivered(self, arrived: float) -> None:
        """Record a frame written (or sent) now."""
        self.latency.append(time.perf_counter() - arrived)

    def _frames(self, coeffs) -> list[tuple[np.ndarray, float]]:
        out = []
        for c in coeffs:
            if self.t >= n_video_frames(self.samples) and self.samples:
                break  # the look-ahead's padding past the end of the audio
            while len(self.arrival) > 1 and self.arrival_frame < self.t:  # the last one stands for any later
                self.arrival.popleft()
                self.arrival_frame += 1
            arrived = self.arrival[0]
            late = self.live and time.perf_counter() - arrived > self.cfg.max_latency_ms / 1000
            if late and self.last is not None:
                self.repeated += 1
            else:
                frame = self.pipe.prepare(self.t, c)
                self.last = self.pipe.paste(frame, self.pipe.render([frame])[0])
                self.opening = float(aperture(frame.lips[0]))
            out.append((self.last, arrived))
            self.t += 1
        return out

    def report(self) -> dict:
        lat = np.array(self.latency) * 1000
        summary = (
            {
                "mean": round(float(lat.mean()), 1),
                "p95": round(float(np.percentile(lat, 95)), 1),
                "max": round(float(lat.max()), 1),
            }
            if len(lat)
            else {}
        )
        return {
            "frames": self.t,
            "audio_seconds": round(self.samples / SAMPLE_RATE, 3),
            "latency_ms": summary,
            "repeated_frames": self.repeated,
            "lookahead_ms": self.mouth.lookahead * 1000 // FPS,
            "stage_seconds": {k: round(v, 3) for k, v in self.pipe.seconds.items()},
        }


class LiveClock:
    """When each chunk of a live source arrived: chunks come every 40 ms, so a chunk read
    later than that waited in a buffer while we were busy, and counts from when it was due.
    A source that pauses (more than RESYNC_SECONDS late) starts the count again."""

    RESYNC_SECONDS = 1.0

    def __init__(self):
        self.start: float | None = None
        self.k = 0

    def arrived(self, now: float) -> float:
        due = None if self.start is None else self.start + self.k * SAMPLES_PER_FRAME / SAMPLE_RATE
        if due is None or now - due > self.RESYNC_SECONDS:
            self.start, self.k, due = now, 0, now
        self.k += 1
        return min(now, due)


def stream(
    audio_source,
    avatar_dir,
    out,
    *,
    audio_model=None,
    renderer=None,
    cfg: InferConfig | None = None,
    realtime: bool = False,
    stdin=None,
    on_start=None,
) -> dict:
    """Render while audio arrives in 40 ms chunks.

    audio_source: a file (decoded progressively; realtime=True paces it like a live source)
    or "-" for raw PCM on `stdin` (s16le, mono, 16 kHz). out: an mp4 path, or a binary
    stream for raw rgb24 frames. Latency (a frame's sound arriving -> the frame written) is
    measured and, from a live source, bounded (LiveSession). Ctrl-C stops it: an mp4 then
    keeps what was rendered so far ("interrupted" in the result)."""
    cfg = cfg or InferConfig()
    avatar_dir = find_avatar(avatar_dir)
    to_file = isinstance(out, (str, os.PathLike))
    if to_file:
        check_out(out, audio_source, avatar_dir)
    model, basis, renderer = load_models(audio_model, renderer, DEFAULT_STREAM_AUDIO_MODEL, avatar_dir)
    pipe = FramePipeline(avatar_dir, renderer, basis, cfg)
    w, h = pipe.avatar.source_size
    if on_start:
        on_start(w, h)
    writer = media.Mp4Writer(out, FPS, w, h, crf=cfg.crf, live_audio=True) if to_file else RawWriter(out)
    from_stdin = str(audio_source) == "-"
    live = LiveSession(pipe, model, cfg, live=realtime or from_stdin)
    chunks = _stdin_chunks(stdin.read) if from_stdin else _file_chunks(audio_source)
    clock, interrupted = LiveClock(), False
    t_begin = time.perf_counter()

    def write(frames):
        for image, arrived in frames:
            pipe.write(writer, image)
            live.delivered(arrived)

    try:
        try:
            for k, chunk in enumerate(chunks):
                if realtime:  # a live source delivers chunk k at k * 40 ms
                    time.sleep(max(0.0, t_begin + k * SAMPLES_PER_FRAME / SAMPLE_RATE - time.perf_counter()))
                now = time.perf_counter()
                if to_file:
                    writer.append_audio(chunk)
                write(live.push(chunk, clock.arrived(now) if realtime or from_stdin else now))
            if live.samples == 0:
                raise DhliveError(f"{audio_source}: audio has no samples")
            write(live.finish())
        except KeyboardInterrupt:
            if not to_file or writer.n_frames == 0:
                raise
            interrupted = True  # keep what was rendered: Ctrl-C is how a live stream ends
        if to_file:
            writer.close()
    except BaseException:
        if to_file:
            writer.abort()
        raise
    finally:
        pipe.close()
    return {
        "out": str(out) if to_file else "stdout",
        **live.report(),
        "realtime": realtime,
        "precision": pipe.precision,
        "backend": pipe.backend,
        "renderer": renderer_source(renderer, avatar_dir),
        "seconds": round(time.perf_counter() - t_begin, 2),
        "interrupted": interrupted,
    }
