"""The live mode of dhlive serve over real WebRTC (an aiortc peer plays a speech file as its
microphone): frames and voice arrive at 25 fps, the mouth opens while the file speaks and
rests in its silences, typed text is said, the viewer limit holds, and connections that come
and go leave no threads behind. A headless Chromium drives the page itself when it is
installed (.ci/run installs it)."""

import asyncio
import os
import threading
import time

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from dhlive.constants import FPS
from dhlive.serve import ServeConfig, make_app
from dhlive.serve.app import APP_KEY


@pytest.fixture()
def live_server(serve_parts):
    return serve_parts.avatars, serve_parts.work, serve_parts.live, serve_parts.made


async def connect(client, avatar="anna", microphone=None):
    """An aiortc browser stand-in: (peer connection, viewer id or error, received tracks)."""
    pc = RTCPeerConnection()
    if microphone is not None:
        pc.addTrack(MediaPlayer(str(microphone)).audio)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    tracks = {}
    pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
    await pc.setLocalDescription(await pc.createOffer())
    res = await client.post("/api/live", json={"sdp": pc.localDescription.sdp, "type": "offer", "avatar": avatar})
    body = await res.json()
    if res.status != 200:
        await pc.close()
        return None, body, res.status
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
    return pc, body["id"], tracks


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(live_server, scenario, cfg=None):
    avatars, work, live, _ = live_server

    async def main():
        app = make_app(cfg or ServeConfig(), avatars, work, render=None, live=live)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_the_mouth_follows_the_microphone_and_the_voice_comes_back(live_server, speech_wav):
    made = live_server[3]

    async def scenario(client):
        pc, viewer, tracks = await connect(client, microphone=speech_wav)
        for _ in range(100):
            if "video" in tracks and "audio" in tracks:
                break
            await asyncio.sleep(0.05)
        video, voice = tracks["video"], tracks["audio"]
        first = await video.recv()
        start, n = time.perf_counter(), 0
        loud = 0.0
        while time.perf_counter() - start < 6.5:  # the file: 2 s of speech, 3 s of silence, speech
            frame = await video.recv()
            n += 1
            sound = (await voice.recv()).to_ndarray().astype(float)
            loud = max(loud, np.abs(sound).max())
        fps = n / (time.perf_counter() - start)
        stats = await (await client.get(f"/api/live/{viewer}")).json()
        said = await client.post(f"/api/live/{viewer}/say", json={"text": "Mama papa"})
        assert said.status == 200 and (await said.json())["seconds"] > 0.3
        empty = await client.post(f"/api/live/{viewer}/say", json={"text": ""})
        assert empty.status == 400 and "characters" in (await empty.json())["error"]
        assert (await client.delete(f"/api/live/{viewer}")).status == 200
        await pc.close()
        return first, frame, fps, loud, stats

    first, frame, fps, loud, stats = run(live_server, scenario)
    assert (first.width, first.height) == (frame.width, frame.height) and first.width > 0
    assert fps > 20, fps
    assert loud > 1000, loud  # the voice comes back (int16)
    assert stats["latency_ms"]["mean"] < 400 and stats["sent_frames"] > 100, stats
    spoken = np.array(made[0].spoken)[FPS:]  # from the second second on
    speaking, silent = spoken[spoken[:, 0] > 0.02, 1], spoken[spoken[:, 0] < 1e-4, 1]
    assert len(speaking) > 10 and len(silent) > 10
    assert np.median(speaking) > np.median(silent) + 0.05 and speaking.std() > 0.03, (speaking, silent)
    assert np.mean(np.abs(silent - np.median(silent)) < 0.01) > 0.9, silent  # at rest in the silence


def test_the_viewer_limit_and_bad_offers(live_server):
    async def scenario(client):
        pc, viewer, _ = await connect(client)
        _, busy, status = await connect(client)
        assert status == 503 and "busy" in busy["error"], busy
        _, missing, status = await connect(client, avatar="../anna")
        assert status == 404 and "no avatar named" in missing["error"]  # named before the limit is counted
        assert (await client.delete(f"/api/live/{viewer}")).status == 200
        await pc.close()
        _, missing, status = await connect(client, avatar="../anna")
        assert status == 404 and "no avatar named" in missing["error"]
        res = await client.post("/api/live", json={"sdp": "nonsense", "type": "offer", "avatar": "anna"})
        assert res.status == 400 and "\n" not in (await res.json())["error"]
        res = await client.post("/api/live", data=b"not json")
        assert res.status == 400
        assert (await client.get("/api/avatars")).status == 200  # still serving

    run(live_server, scenario, ServeConfig(max_viewers=1))


def test_twenty_connections_that_come_and_go_leave_nothing_behind(live_server):
    async def scenario(client):
        counts = []
        for k in range(20):
            pc, viewer, tracks = await connect(client)
            for _ in range(100):
                if "video" in tracks:
                    break
                await asyncio.sleep(0.02)
            await tracks["video"].recv()
            if k % 2:
                assert (await client.delete(f"/api/live/{viewer}")).status == 200
            await pc.close()  # the other half just leave
            for _ in range(100):
                if not client.app[APP_KEY]["viewers"]:
                    break
                await asyncio.sleep(0.05)
            assert not client.app[APP_KEY]["viewers"], k
            counts.append((threading.active_count(), resident_mb()))
        return counts

    counts = run(live_server, scenario)
    threads, memory = zip(*counts)
    assert max(threads[5:]) <= threads[4] + 2, threads
    assert max(memory[5:]) < memory[4] + 150, memory  # MB: no session's buffers kept
    assert all(a.stop.is_set() for a in live_server[3])
