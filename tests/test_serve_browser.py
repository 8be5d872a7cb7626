"""The page of dhlive serve in a real browser: headless Chromium, driven over the DevTools
protocol, with a fake microphone that plays a speech file (2 s of speech, 3 s of silence,
speech again). Skipped when no Chromium is installed (.ci/run installs the Debian package)."""

import asyncio
import base64
import io
import json
import shutil
import subprocess
import time

import aiohttp
import av
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from dhlive.constants import FPS
from dhlive.serve import ServeConfig, make_app

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")


class Browser:
    """Headless Chromium and one page of it, over the Chrome DevTools protocol."""

    def __init__(self, profile, microphone):
        self.profile = profile
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # tests run as root in CI containers
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.n = 0

    async def open(self, url: str) -> None:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() and time.time() < deadline:
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        self.http = aiohttp.ClientSession()
        targets = await (await self.http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.navigate", url=url)
        await self.until(f"document.readyState == 'complete' && location.href == {json.dumps(url)}")

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send_str(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def js(self, expression: str):
        res = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def until(self, expression: str, timeout: float = 30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if value := await self.js(expression):
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"not within {timeout} s: {expression}")

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture()
def page(tmp_path, serve_parts, speech_wav):
    """(serve, Browser): the app with one avatar, anna; the browser's microphone plays speech_wav."""

    def serve():
        return TestServer(
            make_app(ServeConfig(), serve_parts.avatars, serve_parts.work, serve_parts.render, serve_parts.live)
        )

    return serve, Browser(tmp_path / "profile", speech_wav), serve_parts.made


def test_talking_to_the_avatar_in_the_browser(page, tmp_path):
    serve, browser, made = page

    async def scenario():
        async with serve() as server:
            try:
                await browser.open(str(server.make_url("/")))
                await browser.until("document.querySelectorAll('.avatar').length == 1")
                await browser.until("!document.getElementById('live-start').disabled")
                await browser.js("document.getElementById('live-start').click()")
                await browser.until("document.getElementById('live').videoWidth > 0", 60)
                start = await browser.js("document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames")
                await asyncio.sleep(6)
                end = await browser.js("document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames")
                latency = await browser.until("document.getElementById('latency').textContent")
                jitter = await browser.until("jitterBuffer()")
                await browser.js("document.getElementById('say-text').value = 'Mama papa'")
                await browser.js("document.getElementById('say').click()")
                said = await browser.until("document.getElementById('live-message').textContent")
                shot = await browser.call("Page.captureScreenshot", format="png")
                (tmp_path / "page.png").write_bytes(base64.b64decode(shot["data"]))
                await browser.js("document.getElementById('live-stop').click()")
                await browser.until("document.getElementById('live-stop').disabled")
                return (end - start) / 6, latency, said, jitter
            finally:
                await browser.close()

    fps, latency, said, jitter = asyncio.run(scenario())
    assert fps > 15, fps  # frames the browser decoded and showed, per second
    assert "latency" in latency and "Saying" in said, (latency, said)
    assert 0 < jitter < 1000, jitter  # the browser's part of the delay, reported beside the server's
    print(f"browser: {fps:.1f} frames/s shown; {latency}")
    spoken = np.array(made[0].spoken)[FPS:]
    speaking, silent = spoken[spoken[:, 0] > 0.02, 1], spoken[spoken[:, 0] < 1e-4, 1]
    assert len(speaking) > 10 and len(silent) > 10
    assert np.median(speaking) > np.median(silent) + 0.05, (speaking, silent)
    assert made[0].stop.is_set()  # Stop freed the session


def test_a_video_job_from_the_page(page, speech_wav):
    serve, browser, _ = page

    async def scenario():
        async with serve() as server:
            try:
                await browser.open(str(server.make_url("/")))
                await browser.until("!document.getElementById('submit').disabled")
                doc = await browser.call("DOM.getDocument")
                node = await browser.call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#audio")
                await browser.call("DOM.setFileInputFiles", files=[str(speech_wav)], nodeId=node["nodeId"])
                await browser.js("document.getElementById('job-form').requestSubmit()")
                href = await browser.until("(document.querySelector('a.download') || {}).href", 120)
                async with aiohttp.ClientSession() as http:
                    return await (await http.get(href)).read()
            finally:
                await browser.close()

    data = asyncio.run(scenario())
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video and c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) > 100
