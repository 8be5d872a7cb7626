"""dhlive serve over real HTTP on a local port: the page, avatars and thumbnails, a video job
from upload to a downloadable mp4 (real infer with small models), and bad input refused with
one line and nothing left on disk, the server serving on after each."""

import asyncio
import io
import shutil
import time

import av
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from dhlive.serve import ServeConfig, make_app
from dhlive.serve.app import avatar_folder
from dhlive.serve.jobs import JobQueue


@pytest.fixture()
def served(serve_parts):
    """(avatars folder, jobs folder, render function) with one avatar called anna."""
    return serve_parts.avatars, serve_parts.work, serve_parts.render


def run(served, cfg, scenario):
    """Serve on a free local port and run `scenario(client)`."""
    avatars, work, render = served

    async def main():
        async with TestClient(TestServer(make_app(cfg or ServeConfig(), avatars, work, render))) as client:
            return await scenario(client)

    return asyncio.run(main())


def form(avatar, data: bytes, filename="speech.wav"):
    f = FormData()
    if avatar is not None:
        f.add_field("avatar", avatar)
    f.add_field("audio", data, filename=filename, content_type="application/octet-stream")
    return f


def leftovers(work):
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


def test_a_job_goes_from_upload_to_a_downloadable_mp4_and_outlives_a_restart(served, speech_wav):
    async def scenario(client):
        page = await client.get("/")
        assert page.status == 200 and "dhlive" in await page.text()
        assert (await client.get("/static/app.js")).status == 200
        listing = await (await client.get("/api/avatars")).json()
        assert [a["name"] for a in listing["avatars"]] == ["anna"]
        thumb = await client.get(listing["avatars"][0]["thumbnail"])
        assert thumb.status == 200 and thumb.content_type == "image/jpeg" and (await thumb.read())[:2] == b"\xff\xd8"

        res = await client.post("/api/jobs", data=form("anna", speech_wav.read_bytes()))
        assert res.status == 201, await res.text()
        job = await res.json()
        deadline = time.time() + 120
        while job["state"] in ("queued", "running") and time.time() < deadline:
            await asyncio.sleep(0.2)
            job = await (await client.get(f"/api/jobs/{job['id']}")).json()
        assert job["state"] == "done", job
        assert job["progress"] == 1.0 and job["done"] == job["total"] > 0
        video = await client.get(job["video"])
        assert video.status == 200 and "attachment" in video.headers["Content-Disposition"]
        return job, await video.read()

    job, data = run(served, None, scenario)
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video and c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) == job["total"]
    # a new server on the same folder knows the job (a page reload or a restart)
    avatars, work, render = served
    again = JobQueue(work, render)
    try:
        assert again.get(job["id"]).state == "done"
    finally:
        again.close()


@pytest.mark.parametrize(
    "avatar, data, status, message",
    [
        ("../anna", None, 404, "no avatar named '../anna'"),
        ("..", None, 404, "no avatar named '..'"),
        ("anna/../anna", None, 404, "no avatar named"),
        (".hidden", None, 404, "no avatar named"),
        ("bob", None, 404, "no avatar named 'bob'"),
        (None, None, 400, "needs an avatar and an audio file"),
        ("anna", b"not a recording at all " * 40, 400, "noise.bin:"),
        ("anna", b"", 400, "noise.bin:"),
        ("anna", b"x" * 30000, 413, "larger than the 0.02 MB limit"),
    ],
)
def test_bad_uploads_are_one_line_and_leave_nothing(served, speech_wav, avatar, data, status, message):
    async def scenario(client):
        body = data if data is not None else speech_wav.read_bytes()[:20000]
        res = await client.post("/api/jobs", data=form(avatar, body, "noise.bin"))
        text = (await res.json())["error"]
        assert res.status == status and message in text and "\n" not in text, text
        assert "Traceback" not in text
        listing = await client.get("/api/avatars")  # still serving
        assert listing.status == 200 and (await client.get("/api/jobs")).status == 200
        return text

    run(served, ServeConfig(max_upload_mb=0.02), scenario)
    assert leftovers(served[1]) == []


def test_paths_outside_the_avatars_folder_are_never_read(served, tmp_path):
    avatars = served[0]
    outside = tmp_path / "outside"
    shutil.copytree(avatars / "anna", outside)
    (avatars / "link").symlink_to(outside)
    for name in ("../outside", "link", "anna/..", "..", ".", "a/b", "", "anna\x00"):
        assert avatar_folder(avatars, name) is None, name
    assert avatar_folder(avatars, "anna") == avatars / "anna"

    async def scenario(client):
        for path in ("/api/avatars/..%2Foutside/thumbnail.jpg", "/api/avatars/link/thumbnail.jpg"):
            res = await client.get(path)
            assert res.status == 404, path
        names = [a["name"] for a in (await (await client.get("/api/avatars")).json())["avatars"]]
        assert names == ["anna"]
        assert (await client.get("/api/jobs/../../etc/passwd")).status == 404
        assert (await client.get("/api/jobs/0123456789ab/video.mp4")).status == 404

    run(served, None, scenario)


def test_a_failing_job_reports_its_error_and_the_queue_goes_on(served, speech_wav, tmp_path):
    avatars, work, render = served
    calls = []

    def flaky(job, audio, out, on_frame):
        calls.append(job.id)
        if len(calls) == 1:
            shutil.rmtree(avatars / "anna" / "image")  # the avatar broke after the job was queued
        render(job, audio, out, on_frame)

    q = JobQueue(work, flaky)
    try:
        upload = tmp_path / "a.wav"
        shutil.copy(speech_wav, upload)
        job = q.submit("anna", upload, "a.wav")
        deadline = time.time() + 60
        while q.get(job.id).state in ("queued", "running") and time.time() < deadline:
            time.sleep(0.1)
        failed = q.get(job.id)
        assert failed.state == "failed" and failed.error and "\n" not in failed.error
        assert not (work / job.id / "video.mp4").exists()
        assert not [p for p in (work / job.id).iterdir() if p.name.startswith(".")]
    finally:
        q.close()


def test_serve_config_is_checked():
    with pytest.raises(Exception, match="port"):
        ServeConfig(port=70000)
    with pytest.raises(Exception, match="max_upload_mb"):
        ServeConfig(max_upload_mb=0)
