"""Benchmark the live mode of `dhlive serve`: frames/s each viewer receives and the latency
from a chunk of sound arriving to its frame being sent, with 1 viewer and with the limit.

    .venv/bin/python scripts/bench_serve.py [--avatar DIR] [--speech WAV] [--seconds 15] \\
        [--viewers 2] [--json bench_serve.json]

Each viewer is an aiortc peer (what a browser does, without the browser) that sends a
speech file as its microphone and receives the avatar's video and voice; the server is the
real `dhlive serve` app with the shipped models (`checkpoints/audio_live`, the avatar's
renderer or the shipped one) on this machine's cores, on a local port. The latency is the
server's part (LiveSession: sound arrived -> frame handed to WebRTC); the browser's jitter
buffer adds its own. Frames are sent at 25 a second always; behind real time some repeat the
one before, so the frames/s newly rendered are reported too. The avatar defaults to one
made from the astronaut photo, the speech to espeak-ng. Targets (the serve issue): one
viewer 25 frames/s and mean latency <= 250 ms; at the viewer limit >= 20 frames/s each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from bench_infer import astronaut_avatar, espeak_speech
from benchlib import machine

from dhlive import __version__
from dhlive.render.frames import InferConfig
from dhlive.render.runtime import BACKENDS
from dhlive.serve import ServeConfig, make_app
from dhlive.serve.app import APP_KEY
from dhlive.serve.live import LiveAvatar


async def viewer(client, avatar: str, speech: Path, seconds: float) -> dict:
    pc = RTCPeerConnection()
    pc.addTrack(MediaPlayer(str(speech), loop=True).audio)
    pc.addTransceiver("video", direction="recvonly")
    tracks = {}
    pc.on("track", lambda t: tracks.__setitem__(t.kind, t))
    await pc.setLocalDescription(await pc.createOffer())
    res = await client.post("/api/live", json={"sdp": pc.localDescription.sdp, "type": "offer", "avatar": avatar})
    body = await res.json()
    if res.status != 200:
        await pc.close()
        return {"refused": body["error"]}
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
    while "video" not in tracks:
        await asyncio.sleep(0.02)
    await tracks["video"].recv()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        await tracks["video"].recv()
        n += 1
    stats = await (await client.get(f"/api/live/{body['id']}")).json()
    await client.delete(f"/api/live/{body['id']}")
    await pc.close()
    rendered = (stats["frames"] - stats["repeated_frames"]) / max(stats["audio_seconds"], 1e-9)
    return {"frames_per_second": round(n / (time.perf_counter() - start), 2), "rendered_per_second": rendered, **stats}


async def run(
    avatars: Path, avatar: str, speech: Path, seconds: float, viewers: int, work: Path, backend: str = "auto"
) -> dict:
    cfg = InferConfig(backend=backend)
    app = make_app(ServeConfig(max_viewers=viewers), avatars, work, live=lambda folder: LiveAvatar(folder, cfg=cfg))
    report = {}
    async with TestClient(TestServer(app)) as client:
        for n in sorted({1, viewers}):

            async def one_more():  # while the others are connected: over the limit
                await asyncio.sleep(seconds / 2)
                return await viewer(client, avatar, speech, 0.1)

            *rows, extra = await asyncio.gather(
                *(viewer(client, avatar, speech, seconds) for _ in range(n)),
                one_more() if n == viewers else asyncio.sleep(0),
            )
            while client.app[APP_KEY]["viewers"]:
                await asyncio.sleep(0.1)
            report[f"{n}_viewers"] = {"viewers": rows, "one_more": extra}
            if extra:
                print(f"one viewer more: {extra.get('refused', 'served')}", flush=True)
            for k, r in enumerate(rows):
                lat = r.get("latency_ms", {})
                print(
                    f"{n} viewer(s), #{k + 1}: {r.get('frames_per_second')} frames/s sent, "
                    f"{r.get('rendered_per_second', 0):.1f} of them new, latency mean {lat.get('mean')} "
                    f"ms, p95 {lat.get('p95')} ms",
                    flush=True,
                )
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--avatar", type=Path, help="a prepared avatar [default: made from the astronaut photo]")
    ap.add_argument("--speech", type=Path, help="speech for the microphone [default: espeak-ng]")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument(
        "--viewers", type=int, default=2, help="the viewer limit to measure at (the server's own: --max-viewers)"
    )
    ap.add_argument("--backend", default="auto", choices=BACKENDS, help="what runs the renderer on a CPU")
    ap.add_argument("--json", type=Path, default=Path("bench_serve.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        avatar = args.avatar or astronaut_avatar(tmp)
        speech = args.speech or espeak_speech(tmp / "speech.wav", 10)
        report = {
            "dhlive": __version__,
            "machine": machine(),
            "avatar": str(args.avatar or "skimage astronaut photo, 512x512"),
            "seconds": args.seconds,
            "backend": args.backend,
            **asyncio.run(
                run(avatar.parent, avatar.name, speech, args.seconds, args.viewers, tmp / "jobs", args.backend)
            ),
            "targets": {"one_viewer_fps": ">= 25", "latency_ms_mean": "<= 250", "at_limit_fps": ">= 20"},
        }
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
