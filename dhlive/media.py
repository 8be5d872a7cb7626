"""Media I/O on PyAV: probe, decode (rotation honoured, resampled to a fixed fps by
timestamps), audio as 16 kHz mono float32, and H.264 + AAC mp4 encoding.

Everything that touches a container goes through this module, so every stage sees the
same frames for the same file. No system ffmpeg is needed: the `av` wheel bundles it.
"""

from __future__ import annotations

import os
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from .constants import FPS, SAMPLE_RATE
from .errors import DhliveError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}

av.logging.set_level(av.logging.PANIC)  # errors reach the user as DhliveError, not ffmpeg log lines

# colour conversion: limited-range 4:2:0 goes through OpenCV's SIMD converters, much faster
# than swscale as PyAV calls it (docs/prepare.md); other formats through swscale. Both follow
# the frame's colour matrix: BT.601 (also for untagged video, as swscale does) or BT.709.
_BT601 = {2, 5, 6}  # AVCOL_SPC_UNSPECIFIED, BT470BG, SMPTE170M
_BT709 = 1
_LIMITED_RANGE = {0, 1}  # AVCOL_RANGE_UNSPECIFIED, MPEG
_BT601_TO_BT709 = np.array(  # RGB decoded with BT.601 coefficients -> with BT.709's (same Y'CbCr)
    [[1.0864, -0.072349, -0.014051], [0.096546, 0.845052, 0.058402], [-0.014106, -0.027694, 1.0418]], np.float32
)


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    is_image: bool
    has_video: bool
    has_audio: bool
    width: int = 0  # displayed size, after rotation
    height: int = 0
    rotation: int = 0  # degrees counter-clockwise the stored frames are turned for display
    fps: float = 0.0  # the stream's average rate (0 when unknown)
    duration: float = 0.0  # seconds (0 when unknown)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DhliveError(f"{path}: no such file")
    if path.is_dir():
        raise DhliveError(f"{path}: is a folder, not a media file")
    if path.stat().st_size == 0:
        raise DhliveError(f"{path}: file is empty (0 bytes)")


def _open(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise DhliveError(f"{path}: not a readable video, image or audio file ({_short(e)})") from None


def _short(e: Exception) -> str:
    """ffmpeg's reason without the errno and file name it repeats."""
    return (getattr(e, "strerror", None) or str(e)).strip()


def probe(path: str | os.PathLike) -> MediaInfo:
    """What is in a media file. Raises DhliveError for a missing or unreadable file."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        img = read_image(path)
        return MediaInfo(path, True, True, False, img.shape[1], img.shape[0])
    with _open(path) as c:
        has_audio = len(c.streams.audio) > 0
        if not c.streams.video:
            return MediaInfo(path, False, False, has_audio, duration=_duration(c, None))
        s = c.streams.video[0]
        w, h = s.codec_context.width, s.codec_context.height
        rotation = _stream_rotation(c, s)
        if rotation % 180:
            w, h = h, w
        fps = float(s.average_rate) if s.average_rate else 0.0
        return MediaInfo(path, False, True, has_audio, w, h, rotation, fps, _duration(c, s))


def _duration(c, s) -> float:
    if s is not None and s.duration is not None and s.time_base is not None:
        return float(s.duration * s.time_base)
    if c.duration is not None:
        return c.duration / av.time_base
    return 0.0


def _stream_rotation(c, s) -> int:
    """Rotation from the first decoded frame's display matrix (what ffmpeg's autorotate uses)."""
    try:
        for frame in c.decode(s):
            return _norm_rotation(frame.rotation)
    except av.error.FFmpegError:
        pass
    return 0


def _norm_rotation(r) -> int:
    return int(round((r or 0) / 90.0)) * 90 % 360


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A still image as RGB uint8 (H, W, 3)."""
    path = Path(path)
    _check_file(path)
    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise DhliveError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def iter_frames(path: str | os.PathLike, fps: float = FPS, warnings: list | None = None) -> Iterator[np.ndarray]:
    """Decode a video as upright RGB uint8 frames resampled to `fps`.

    Resampling is by presentation timestamps (nearest source frame for each output
    instant k/fps), so variable-frame-rate phone videos keep their real timing.
    A stream that breaks off mid-way (truncated file) ends early; the reason is
    appended to `warnings` when a list is given.
    """
    path = Path(path)
    _check_file(path)
    with _open(path) as c:
        if not c.streams.video:
            if c.streams.audio:
                raise DhliveError(f"{path}: has no video stream (audio only)")
            raise DhliveError(f"{path}: contains no video frames (no streams: an empty recording?)")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        yield from _resample(_timed_frames(c, s, path, warnings), fps)


def _timed_frames(c, s, path: Path, warnings: list | None):
    """(time, rgb, duration) for each decoded frame, in presentation order."""
    tb = s.time_base or Fraction(1, 90000)
    nominal = 1.0 / float(s.average_rate) if s.average_rate else 1.0 / FPS
    last_t = None
    n = 0
    try:
        for frame in c.decode(s):
            if frame.pts is None:
                t = (last_t + nominal) if last_t is not None else 0.0
            else:
                t = float(frame.pts * tb)
            if last_t is not None and t <= last_t:
                continue  # duplicate or out-of-order timestamp: keep the first
            img = frame_to_rgb(frame)
            k = _norm_rotation(frame.rotation) // 90
            if k:
                img = np.ascontiguousarray(np.rot90(img, k))
            dur = float(frame.duration * tb) if frame.duration else nominal
            last_t = t
            n += 1
            yield t, img, dur
    except av.error.FFmpegError as e:
        if n == 0:
            raise DhliveError(f"{path}: cannot decode any video frame ({_short(e)})") from None
        if warnings is not None:
            warnings.append(f"{path}: decoding stopped after {n} frames ({_short(e)}); file truncated or damaged?")
    if n == 0:
        raise DhliveError(f"{path}: video stream has no frames")
    declared = _duration(c, s)
    decoded = last_t - float((s.start_time or 0) * tb) + dur
    if warnings is not None and declared and decoded < declared - max(0.5, 0.1 * declared):
        warnings.append(
            f"{path}: only {decoded:.1f} s of the declared {declared:.1f} s could be decoded; "
            "file truncated or damaged?"
        )


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded video frame as RGB uint8 (H, W, 3), as stored (rotation not applied)."""
    fast = (
        frame.format.name == "yuv420p"
        and frame.color_range in _LIMITED_RANGE
        and frame.colorspace in _BT601 | {_BT709}
        and frame.width % 2 == 0
        and frame.height % 2 == 0
    )
    if not fast:
        return frame.to_ndarray(format="rgb24")
    rgb = cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    if frame.colorspace == _BT709:
        rgb = cv2.transform(rgb, _BT601_TO_BT709)
    return rgb


def rgb_to_frame(rgb: np.ndarray) -> av.VideoFrame:
    """An RGB uint8 image as a video frame: yuv420p (BT.601, limited range, untagged: what
    swscale makes of an RGB frame, and what frame_to_rgb reads back) when its sides are even."""
    if rgb.shape[0] % 2 or rgb.shape[1] % 2:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")


def _resample(timed, fps: float):
    """Nearest-timestamp resampling of (t, frame, duration) to a constant rate."""
    step = 1.0 / fps
    k = 0
    prev = None
    t0 = None
    for t, img, dur in timed:
        if t0 is None:
            t0 = t
        t -= t0
        if prev is not None:
            pt, pimg, _ = prev
            while k * step < (pt + t) / 2:
                yield pimg
                k += 1
        prev = (t, img, dur)
    if prev is None:
        return
    pt, pimg, dur = prev
    end = pt + dur
    while k * step < end - 0.25 * step:
        yield pimg
        k += 1


class FrameStore:
    """The frames of a video (at `fps`) decoded once into a temporary file for random access,
    so memory stays flat however long the video is. Frames keep the first frame's size, or
    are cut to `size` (w, h): what Mp4Writer padded to even sides comes back as written."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = FPS,
        limit: int | None = None,
        size: tuple[int, int] | None = None,
        select: np.ndarray | None = None,
    ):
        """select: increasing frame numbers to keep (the others are decoded and skipped)."""
        self._dir = tempfile.TemporaryDirectory(prefix="dhlive-frames-")
        raw = Path(self._dir.name) / "frames.raw"
        n, shape = 0, None
        wanted = None if select is None else set(np.asarray(select).tolist())
        last = None if select is None or len(select) == 0 else int(np.max(select))
        try:
            with open(raw, "wb") as f:
                for k, frame in enumerate(iter_frames(path, fps)):
                    if (limit is not None and n == limit) or (last is not None and k > last):
                        break
                    if wanted is not None and k not in wanted:
                        continue
                    if size is not None:
                        frame = frame[: size[1], : size[0]]
                    if shape is None:
                        shape = frame.shape
                    elif frame.shape != shape:  # a stream that changes size mid-way: keep the first size
                        frame = cv2.resize(frame, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
                    f.write(np.ascontiguousarray(frame, np.uint8).tobytes())
                    n += 1
        except BaseException:
            self._dir.cleanup()
            raise
        self.frames = np.memmap(raw, np.uint8, "r", shape=(n, *shape)) if n else np.zeros((0, 1, 1, 3), np.uint8)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):
        return self.frames[i]

    def close(self) -> None:
        self.frames = None
        self._dir.cleanup()


class SourceFrames(FrameStore):
    """An avatar's upright source frames (frames 1:1 with the avatar, taken from its source
    video), decoded once into a temporary file: what inference cuts its render windows from
    and pastes into, and what training windows are cut from, so both see the same pixels."""

    def __init__(self, avatar):
        w, h = avatar.source_size
        super().__init__(
            avatar.source_video_path, avatar.fps, limit=avatar.n_frames, size=(w, h), select=avatar.source_video_frames
        )
        if len(self) < avatar.n_frames or self.frames.shape[1:3] != (h, w):
            found = len(self)
            self.close()
            raise DhliveError(
                f"{avatar.source_video_path}: has {found} frames of its size, the avatar {avatar.n_frames} "
                f"(avatar folder incomplete?)"
            )


def _decode_audio(path: Path, sample_rate: int | None, layout: str) -> Iterator[np.ndarray]:
    """(C, n) planar float32 pieces of the first audio stream in `layout` (mono or stereo),
    resampled to `sample_rate` (None: the stream's own rate)."""
    _check_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DhliveError(f"{path}: is an image, it has no audio")
    any_samples = False
    with _open(path) as c:
        if not c.streams.audio:
            raise DhliveError(f"{path}: has no audio stream")
        s = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate or _audio_rate(s))
        try:
            for frame in c.decode(s):
                for out in resampler.resample(frame):
                    piece = np.clip(out.to_ndarray(), -1.0, 1.0).astype(np.float32)
                    any_samples = any_samples or piece.size > 0
                    yield piece
        except av.error.FFmpegError as e:
            if not any_samples:
                raise DhliveError(f"{path}: cannot decode the audio ({_short(e)})") from None
        for out in resampler.resample(None):
            piece = np.clip(out.to_ndarray(), -1.0, 1.0).astype(np.float32)
            any_samples = any_samples or piece.size > 0
            yield piece
    if not any_samples:
        raise DhliveError(f"{path}: audio has no samples")


def _audio_rate(stream) -> int:
    return int(stream.rate or stream.codec_context.sample_rate or SAMPLE_RATE)


def iter_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Decode the first audio stream of any file progressively: mono float32 pieces at `sample_rate`."""
    for piece in _decode_audio(Path(path), sample_rate, "mono"):
        yield piece[0]


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of any file as mono float32 in [-1, 1] at `sample_rate`."""
    return np.concatenate(list(iter_audio(path, sample_rate)))


def load_audio_native(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The first audio stream as it was recorded, for the output track: (C, N) float32 planar
    at the stream's own rate, C = 1 or 2 (more channels are mixed down to stereo)."""
    path = Path(path)
    _check_file(path)
    with _open(path) as c:
        if not c.streams.audio:
            raise DhliveError(f"{path}: has no audio stream")
        s = c.streams.audio[0]
        rate, layout = _audio_rate(s), "stereo" if (s.channels or 1) >= 2 else "mono"
    return np.concatenate(list(_decode_audio(path, rate, layout)), 1), rate


def resample_audio(audio: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio from `rate` to `sample_rate` (ffmpeg's resampler, as load_audio uses)."""
    audio = np.ascontiguousarray(audio, np.float32).reshape(1, -1)
    if rate == sample_rate:
        return audio[0].copy()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    frame = av.AudioFrame.from_ndarray(audio, format="flt", layout="mono")
    frame.sample_rate = rate
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono wav, written under a temporary name and renamed."""
    path = Path(path)
    pcm = (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).round().astype("<i2")
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, with the path named, when an output file cannot be created there."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise DhliveError(f"{path}: is a folder, not a file name")
    if not parent.is_dir():
        raise DhliveError(f"{path}: cannot write here (folder {parent} does not exist)")
    if not os.access(parent, os.W_OK):
        raise DhliveError(f"{path}: cannot write here (folder {parent} is not writable)")
    return path


def _planar(audio) -> np.ndarray:
    a = np.asarray(audio, np.float32)
    a = a.reshape(1, -1) if a.ndim == 1 else a
    if a.ndim != 2 or len(a) not in (1, 2):
        raise ValueError(f"audio must be (N,) or (C, N) with 1 or 2 channels, not {a.shape}")
    return a


class Mp4Writer:
    """H.264 (+ optional AAC) mp4 writer; frames are RGB uint8 of one size.

    The file appears at `path` only when the writer closes without error; until then it
    is written under a temporary name, which is removed on failure. Odd sizes are
    padded by one edge pixel (yuv420p needs even sizes); `size` stays the caller's.
    Audio, when given ((N,) mono or (C, N) with C = 1 or 2, at `sample_rate`), is
    interleaved with the video as frames arrive.
    """

    def __init__(
        self,
        path,
        fps: float,
        width: int,
        height: int,
        *,
        crf: int = 18,
        preset: str = "veryfast",
        audio: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        threads: int = 0,
        live_audio: bool = False,
    ):
        self.path = Path(path)
        self.size = (int(width), int(height))
        self.tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        try:
            self.container = av.open(str(self.tmp), "w", format="mp4")
        except (av.error.FFmpegError, OSError) as e:
            raise DhliveError(f"{self.path}: cannot write here ({_short(e)})") from None
        self.fps = Fraction(fps).limit_denominator(1001)
        self.video = self.container.add_stream("libx264", rate=self.fps)
        self.video.width = width + (width % 2)
        self.video.height = height + (height % 2)
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": preset}
        if threads:
            self.video.codec_context.thread_count = threads
        self.n_frames = 0
        self.audio = None  # samples not yet encoded (None: no audio track)
        if audio is not None or live_audio:
            self.audio = np.zeros((1, 0), np.float32) if audio is None else _planar(audio)
            self.sample_rate = sample_rate
            self.layout = "stereo" if len(self.audio) == 2 else "mono"
            self.astream = self.container.add_stream("aac", rate=sample_rate, layout=self.layout)
            self.audio_pts = 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if (w, h) != self.size:
            raise ValueError(f"frame size {w}x{h} != writer size {self.size[0]}x{self.size[1]}")
        if self.video.width != w or self.video.height != h:
            rgb = cv2.copyMakeBorder(rgb, 0, self.video.height - h, 0, self.video.width - w, cv2.BORDER_REPLICATE)
        frame = rgb_to_frame(np.ascontiguousarray(rgb))
        frame.pts = self.n_frames
        frame.time_base = 1 / self.fps
        self.container.mux(self.video.encode(frame))
        self.n_frames += 1
        if self.audio is not None:
            self._write_audio(int(round(self.n_frames / self.fps * self.sample_rate)))

    def append_audio(self, samples: np.ndarray) -> None:
        """More audio for a writer opened with live_audio=True (streaming)."""
        self.audio = np.concatenate([self.audio, _planar(samples)], 1)

    def _write_audio(self, until: int, final: bool = False) -> None:
        """Encode the pending audio up to sample `until` of the track (all of it when final)."""
        block = 1024  # AAC frame size
        while self.audio.shape[1]:
            n = min(block, self.audio.shape[1])
            if not final and (n < block or self.audio_pts + n > until):
                break
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self.audio[:, :n]), format="fltp", layout=self.layout
            )
            frame.sample_rate = self.sample_rate
            frame.pts = self.audio_pts
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.astream.encode(frame))
            self.audio = self.audio[:, n:]
            self.audio_pts += n

    def close(self) -> None:
        if self.container is None:
            return
        try:
            if self.n_frames == 0:
                raise ValueError(f"{self.path}: no frames were written")
            self.container.mux(self.video.encode(None))
            if self.audio is not None:
                self._write_audio(0, final=True)
                self.container.mux(self.astream.encode(None))
            self.container.close()
            self.container = None
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
