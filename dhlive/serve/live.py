"""The live mode of `dhlive serve`: a browser's microphone in over WebRTC, the avatar's face and
the voice it says out, on one peer connection per viewer.

    microphone (48 kHz) -> 16 kHz ring buffer --\
    text -> espeak-ng speech ------------------- + -> every 40 ms, one chunk -> LiveSession
                                                        (audio model look-ahead, render, paste)
    LiveSession's frames, each with its own 40 ms of sound -> AvatarVideo (25 fps) + AvatarVoice

A worker thread ticks at 25 chunks a second whether or not sound comes in, so with nobody
speaking the avatar idles (its frames loop, the mouth closed on silence). The voice a frame
says is sent when the frame is, so sound and picture keep together; behind real time
LiveSession repeats frames instead of drifting, and a microphone backlog past
MAX_BACKLOG_SECONDS is dropped.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
import uuid
from collections import deque

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from .. import media
from ..constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from ..infer import RECORD_FRAMES, LiveSession
from ..models import DEFAULT_STREAM_AUDIO_MODEL, load_models
from ..render.frames import FramePipeline, InferConfig

VIDEO_CLOCK = 90000  # RTP video clock rate
VOICE_RATE = 48000  # what WebRTC's Opus carries
VOICE_FRAME = 960  # 20 ms at VOICE_RATE
MAX_BACKLOG_SECONDS = 0.2
FRAME_QUEUE = 4  # finished frames waiting for the video track; older ones are dropped


class LiveAvatar:
    """One viewer's avatar: sound in, (frame, its 40 ms of sound, when that sound arrived) out."""

    def __init__(self, avatar_dir, audio_model=None, renderer=None, cfg: InferConfig | None = None):
        cfg = cfg or InferConfig()
        model, basis, renderer = load_models(audio_model, renderer, DEFAULT_STREAM_AUDIO_MODEL, avatar=avatar_dir)
        self.pipe = FramePipeline(avatar_dir, renderer, basis, cfg)
        self.session = LiveSession(self.pipe, model, cfg, live=True)
        self.lock = threading.Lock()
        self.mic = np.zeros(0, np.float32)  # 16 kHz samples not yet taken
        self.said = np.zeros(0, np.float32)  # synthetic speech still to say
        self.heard: deque[np.ndarray] = deque()  # chunks pushed whose frames are not out yet
        self.out: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=FRAME_QUEUE)
        self.dropped = 0
        # (loudness of its sound, mouth opening) of the last RECORD_FRAMES frames
        self.spoken: deque[tuple[float, float]] = deque(maxlen=RECORD_FRAMES)
        self.stop = threading.Event()
        self.worker = threading.Thread(target=self._tick, daemon=True, name="dhlive-live")
        self.worker.start()

    def hear(self, samples: np.ndarray) -> None:
        """Microphone samples, 16 kHz mono float32."""
        with self.lock:
            self.mic = np.concatenate([self.mic, samples])
            excess = len(self.mic) - int(MAX_BACKLOG_SECONDS * SAMPLE_RATE)
            if excess > 0:
                self.mic = self.mic[excess:]

    def say(self, samples: np.ndarray) -> None:
        """Speech to say after what is still queued (16 kHz mono float32)."""
        with self.lock:
            self.said = np.concatenate([self.said, samples.astype(np.float32)])

    def take(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The newest finished frame (older ones waiting are skipped, their sound kept), or None."""
        with self.lock:
            if not self.out:
                return None
            skipped = [self.out.popleft() for _ in range(len(self.out) - 1)]
            frame, sound, arrived = self.out.popleft()
        if skipped:
            sound = np.concatenate([s for _, s, _ in skipped] + [sound])
        self.session.delivered(arrived)
        return frame, sound, arrived

    def _chunk(self) -> np.ndarray:
        with self.lock:
            chunk = np.zeros(SAMPLES_PER_FRAME, np.float32)
            n = min(len(self.mic), SAMPLES_PER_FRAME)
            chunk[:n] += self.mic[:n]
            self.mic = self.mic[n:]
            k = min(len(self.said), SAMPLES_PER_FRAME)
            chunk[:k] += self.said[:k]
            self.said = self.said[k:]
        return np.clip(chunk, -1, 1)

    def _tick(self) -> None:
        start = time.perf_counter()
        k = 0
        while not self.stop.is_set():
            k += 1
            wait = start + k / FPS - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -1.0:  # the machine stalled: start the clock again
                start, k = time.perf_counter(), 0
            chunk = self._chunk()
            self.heard.append(chunk)
            for frame, arrived in self.session.push(chunk, time.perf_counter()):
                sound = self.heard.popleft()
                self.spoken.append((float(np.sqrt(np.mean(sound**2))), self.session.opening))
                with self.lock:
                    if len(self.out) == self.out.maxlen:
                        self.dropped += 1
                    self.out.append((frame, sound, arrived))

    def report(self) -> dict:
        return {**self.session.report(), "dropped_frames": self.dropped}

    def close(self) -> None:
        self.stop.set()
        self.worker.join(timeout=5)
        self.pipe.close()


class AvatarVoice(MediaStreamTrack):
    """The sound of the frames sent, 20 ms at a time at 48 kHz; silence when there is none."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.buffer = np.zeros(0, np.float32)
        self.start: float | None = None
        self.n = 0

    def add(self, sound16k: np.ndarray) -> None:
        up = np.interp(np.arange(len(sound16k) * 3) / 3, np.arange(len(sound16k)), sound16k)
        self.buffer = np.concatenate([self.buffer, up.astype(np.float32)])[-VOICE_RATE:]

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.perf_counter()
        wait = self.start + self.n * VOICE_FRAME / VOICE_RATE - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        piece = np.zeros(VOICE_FRAME, np.float32)
        m = min(VOICE_FRAME, len(self.buffer))
        piece[:m], self.buffer = self.buffer[:m], self.buffer[m:]
        frame = av.AudioFrame.from_ndarray((piece * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = (
            VOICE_RATE,
            self.n * VOICE_FRAME,
            fractions.Fraction(1, VOICE_RATE),
        )
        self.n += 1
        return frame


class AvatarVideo(MediaStreamTrack):
    """The avatar at 25 fps: the newest finished frame each 40 ms (the last one again if none)."""

    kind = "video"

    def __init__(self, live: LiveAvatar, voice: AvatarVoice):
        super().__init__()
        self.live, self.voice = live, voice
        self.start: float | None = None
        self.n = 0
        self.last: np.ndarray | None = None
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        if self.start is None:
            self.start = time.perf_counter()
        wait = self.start + self.n / FPS - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        got = self.live.take()
        while got is None and self.last is None:  # nothing to show yet: wait for the first frame
            await asyncio.sleep(0.01)
            got = self.live.take()
        if got is not None:
            self.last, sound, _ = got
            self.voice.add(sound)
        frame = media.rgb_to_frame(self.last)  # yuv420p: the encoder takes it without a conversion
        frame.pts, frame.time_base = self.n * VIDEO_CLOCK // FPS, fractions.Fraction(1, VIDEO_CLOCK)
        self.n += 1
        self.sent += 1
        return frame


class Viewer:
    """One browser's peer connection and its avatar."""

    def __init__(self, live: LiveAvatar):
        self.id = uuid.uuid4().hex[:12]
        self.live = live
        self.pc = RTCPeerConnection()
        self.voice = AvatarVoice()
        self.video = AvatarVideo(live, self.voice)
        self.tasks: list[asyncio.Task] = []
        self.closed = False

    async def answer(self, sdp: str, kind: str) -> RTCSessionDescription:
        pc = self.pc

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio":
                self.tasks.append(asyncio.ensure_future(self._listen(track)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        pc.addTrack(self.video)
        pc.addTrack(self.voice)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription

    async def _listen(self, track) -> None:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            while True:
                frame = await track.recv()
                for piece in resampler.resample(frame):
                    self.live.hear(piece.to_ndarray().reshape(-1).astype(np.float32))
        except Exception:  # the track ended: the browser left
            return

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self.tasks:
            task.cancel()
        await self.pc.close()
        await asyncio.get_running_loop().run_in_executor(None, self.live.close)
