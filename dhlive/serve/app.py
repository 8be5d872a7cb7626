"""`dhlive serve`: a local web page over the toolkit. Pick an avatar by its picture; talk to it
live (microphone or typed text in, its face and voice out over WebRTC: live.py), or upload a
recording and get the mp4 `infer` makes of it (jobs.py: one at a time, kept on disk).

    GET  /                               the page (static/, no build step, nothing from a CDN)
    GET  /api/avatars                    the avatars folder: name, frames, own renderer or not
    GET  /api/avatars/NAME/thumbnail.jpg the avatar's first face crop
    POST /api/live                       JSON {sdp, type, avatar}: a WebRTC offer -> the answer and an id
    GET  /api/live/ID                    that session's figures (latency, frames sent, repeated)
    POST /api/live/ID/say                JSON {text, voice}: espeak-ng speech said on the stream
    DELETE /api/live/ID                  end it
    POST /api/jobs                       multipart: avatar=NAME, audio=FILE -> the queued job
    GET  /api/jobs, /api/jobs/ID         the jobs, newest first / one job and its progress
    GET  /api/jobs/ID/video.mp4          the finished video

Every error is JSON {"error": one line} with a 4xx or 503 status. An avatar name is looked up
only as a direct child of the avatars folder; uploads are streamed to a hidden temporary file
under a size limit, checked to decode as audio, and only then moved into a job folder.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
from aiohttp import web

from .. import media
from ..config import number
from ..errors import DhliveError
from ..formats import (
    AVATAR_RENDERER_DIR,
    IMAGE_DIR,
    IMAGE_PATTERN,
    META_FILE,
    RENDER_MODEL_FILE,
    avatars_dir,
    cache_dir,
)
from .jobs import VIDEO_FILE, JobQueue

STATIC = Path(__file__).with_name("static")
AVATAR_NAME = re.compile(r"^[\w][\w.-]*$")  # as `prepare --name` allows: letters of any script, digits, . _ -
THUMBNAIL_WIDTH = 160
CHUNK = 1 << 16
APP_KEY = web.AppKey("dhlive", dict)


@dataclass
class ServeConfig:
    """Where `dhlive serve` listens and what it accepts."""

    host: str = "127.0.0.1"  # localhost only; 0.0.0.0 is an explicit choice
    port: int = 8000
    max_upload_mb: float = 50.0
    max_waiting_jobs: int = 20
    max_viewers: int = 1  # live connections at once (each takes about 2 cores); the next is told the server is busy
    max_say_chars: int = 500

    def __post_init__(self):
        number("port", self.port, low=0, high=65535, integer=True)
        number("max_upload_mb", self.max_upload_mb, low=0, above=True)
        number("max_waiting_jobs", self.max_waiting_jobs, low=1, integer=True)
        number("max_viewers", self.max_viewers, low=0, integer=True)
        number("max_say_chars", self.max_say_chars, low=1, integer=True)


def fail(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def avatar_folder(avatars: Path, name: str) -> Path | None:
    """The avatar called `name`: a prepared folder directly inside `avatars`, or None. A name
    with a slash, a leading dot or `..` never reaches the file system."""
    if not AVATAR_NAME.match(name) or ".." in name:
        return None
    folder = avatars / name
    try:
        inside = folder.resolve().parent == avatars.resolve()
    except OSError:
        return None
    return folder if inside and (folder / META_FILE).is_file() else None


def avatar_summary(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / META_FILE).read_text())
        frames, fps = int(meta["n_frames"]), float(meta["fps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {
        "name": folder.name,
        "frames": frames,
        "seconds": round(frames / fps, 2),
        "own_renderer": (folder / AVATAR_RENDERER_DIR / RENDER_MODEL_FILE).is_file(),
        "thumbnail": f"/api/avatars/{folder.name}/thumbnail.jpg",
    }


def thumbnail(folder: Path) -> bytes:
    image = cv2.imread(str(folder / IMAGE_DIR / IMAGE_PATTERN.format(0)), cv2.IMREAD_COLOR)
    if image is None:
        raise DhliveError(f"{folder.name}: its first face crop is missing (avatar folder incomplete)")
    h, w = image.shape[:2]
    image = cv2.resize(image, (THUMBNAIL_WIDTH, round(h * THUMBNAIL_WIDTH / w)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def list_avatars(request: web.Request) -> web.Response:
    avatars: Path = request.app[APP_KEY]["avatars"]
    rows = []
    if avatars.is_dir():
        for folder in sorted(avatars.iterdir()):
            if avatar_folder(avatars, folder.name) and (row := avatar_summary(folder)):
                rows.append(row)
    return web.json_response({"avatars": rows, "folder": str(avatars)})


async def avatar_thumbnail(request: web.Request) -> web.Response:
    folder = avatar_folder(request.app[APP_KEY]["avatars"], request.match_info["name"])
    if folder is None:
        return fail(404, f"no avatar named {request.match_info['name']!r}")
    try:
        data = await asyncio.get_running_loop().run_in_executor(None, thumbnail, folder)
    except DhliveError as e:
        return fail(404, str(e))
    return web.Response(body=data, content_type="image/jpeg")


async def _receive(field, path: Path, limit: int) -> bool:
    """Stream a multipart file field to `path`; False (and nothing left) past `limit` bytes."""
    size = 0
    with open(path, "wb") as f:
        while chunk := await field.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                break
            f.write(chunk)
    if size > limit:
        path.unlink(missing_ok=True)
        return False
    return True


def _check_audio(path: Path, shown: str) -> None:
    """Refuse an upload that is not audio: the file's own one-line error, under the user's name for it."""
    try:
        media.load_audio(path)
    except DhliveError as e:
        raise DhliveError(str(e).replace(str(path), shown)) from None


async def create_job(request: web.Request) -> web.Response:
    state = request.app[APP_KEY]
    cfg: ServeConfig = state["config"]
    jobs: JobQueue = state["jobs"]
    if not request.content_type.startswith("multipart/"):
        return fail(400, "send the form as multipart/form-data with the fields avatar and audio")
    limit = int(cfg.max_upload_mb * 1024 * 1024)
    reader = await request.multipart()
    name, upload, shown = None, None, "upload"
    try:
        while (field := await reader.next()) is not None:
            if field.name == "avatar":
                name = (await field.text()).strip()
            elif field.name == "audio":
                shown = Path(field.filename or "upload").name
                upload = jobs.root / f".upload-{uuid.uuid4().hex}.part"
                if not await _receive(field, upload, limit):
                    upload = None
                    return fail(413, f"{shown}: larger than the {cfg.max_upload_mb:g} MB limit")
        if name is None or upload is None:
            return fail(400, "the form needs an avatar and an audio file")
        if avatar_folder(state["avatars"], name) is None:
            return fail(404, f"no avatar named {name!r}")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _check_audio, upload, shown)
            job = jobs.submit(name, upload, shown)
        except DhliveError as e:
            return fail(400, str(e))
        upload = None  # moved into the job's folder
        return web.json_response(job.public(), status=201)
    finally:
        if upload is not None:
            upload.unlink(missing_ok=True)


async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response({"jobs": request.app[APP_KEY]["jobs"].listing()})


async def get_job(request: web.Request) -> web.Response:
    job = request.app[APP_KEY]["jobs"].get(request.match_info["id"])
    return web.json_response(job.public()) if job else fail(404, "no such job")


async def job_video(request: web.Request) -> web.StreamResponse:
    jobs: JobQueue = request.app[APP_KEY]["jobs"]
    job = jobs.get(request.match_info["id"])
    if job is None or job.state != "done":
        return fail(404, "no finished video for this job")
    headers = {"Content-Disposition": f'attachment; filename="dhlive-{job.id}.mp4"'}
    return web.FileResponse(jobs.folder(job.id) / VIDEO_FILE, headers=headers)


async def start_live(request: web.Request) -> web.Response:
    """A WebRTC offer from the page -> the answer; the avatar's face and voice start at once."""
    state = request.app[APP_KEY]
    cfg: ServeConfig = state["config"]
    viewers: dict = state["viewers"]
    try:
        body = await request.json()
        sdp, kind, name = str(body["sdp"]), str(body["type"]), str(body["avatar"])
    except (ValueError, KeyError, TypeError):
        return fail(400, "send JSON with sdp, type and avatar")
    if state["live"] is None:
        return fail(503, "live mode is not available on this server")
    folder = avatar_folder(state["avatars"], name)
    if folder is None:
        return fail(404, f"no avatar named {name!r}")
    if len(viewers) + state["starting"] >= cfg.max_viewers:
        return fail(503, f"busy: {len(viewers)} live viewers already (the limit is {cfg.max_viewers}); try again later")
    from .live import Viewer

    state["starting"] += 1  # a slot held while the avatar loads, so two offers cannot both take the last one
    try:
        avatar = await asyncio.get_running_loop().run_in_executor(None, state["live"], folder)
    except DhliveError as e:
        return fail(400, str(e))
    finally:
        state["starting"] -= 1
    viewer = Viewer(avatar)
    viewers[viewer.id] = viewer

    @viewer.pc.on("connectionstatechange")
    async def on_state():
        if viewer.pc.connectionState in ("failed", "closed", "disconnected"):
            viewers.pop(viewer.id, None)
            await viewer.close()

    try:
        answer = await viewer.answer(sdp, kind)
    except Exception as e:  # a malformed offer
        viewers.pop(viewer.id, None)
        await viewer.close()
        return fail(400, f"the WebRTC offer was refused: {e}".splitlines()[0])
    return web.json_response({"id": viewer.id, "sdp": answer.sdp, "type": answer.type})


def _viewer(request: web.Request):
    return request.app[APP_KEY]["viewers"].get(request.match_info["id"])


async def live_stats(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    if viewer is None:
        return fail(404, "no such live session")
    return web.json_response({**viewer.live.report(), "sent_frames": viewer.video.sent})


async def live_say(request: web.Request) -> web.Response:
    """Text the avatar says on its live stream (espeak-ng, offline)."""
    from ..speech import synthesize

    cfg: ServeConfig = request.app[APP_KEY]["config"]
    viewer = _viewer(request)
    if viewer is None:
        return fail(404, "no such live session")
    try:
        body = await request.json()
        text, voice = str(body["text"]).strip(), str(body.get("voice") or "en")
    except (ValueError, KeyError, TypeError):
        return fail(400, "send JSON with the text to say")
    if not text or len(text) > cfg.max_say_chars:
        return fail(400, f"the text must have 1 to {cfg.max_say_chars} characters")
    try:
        speech = await asyncio.get_running_loop().run_in_executor(None, synthesize, text, voice)
    except DhliveError as e:
        return fail(400, str(e))
    viewer.live.say(speech)
    return web.json_response({"seconds": round(len(speech) / 16000, 2)})


async def stop_live(request: web.Request) -> web.Response:
    viewer = request.app[APP_KEY]["viewers"].pop(request.match_info["id"], None)
    if viewer is None:
        return fail(404, "no such live session")
    await viewer.close()
    return web.json_response({"closed": viewer.id})


def make_app(
    cfg: ServeConfig | None = None,
    avatars: Path | None = None,
    work: Path | None = None,
    render=None,
    live=None,
) -> web.Application:
    """The server: `render(job, audio, out, on_frame)` makes one job's video (serve() passes
    `infer` with the chosen models); jobs are kept under `work`; `live(avatar folder)` makes
    a live.LiveAvatar for a viewer (None: no live mode)."""
    cfg = cfg or ServeConfig()
    app = web.Application()
    jobs = JobQueue(Path(work or cache_dir() / "serve_jobs"), render, cfg.max_waiting_jobs)
    viewers: dict = {}
    app[APP_KEY] = {
        "config": cfg,
        "avatars": Path(avatars or avatars_dir()),
        "jobs": jobs,
        "live": live,
        "viewers": viewers,
        "starting": 0,  # viewers whose avatar is still loading
    }
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/api/avatars", list_avatars)
    app.router.add_get("/api/avatars/{name}/thumbnail.jpg", avatar_thumbnail)
    app.router.add_post("/api/jobs", create_job)
    app.router.add_get("/api/jobs", list_jobs)
    app.router.add_get("/api/jobs/{id}", get_job)
    app.router.add_get("/api/jobs/{id}/video.mp4", job_video)
    app.router.add_post("/api/live", start_live)
    app.router.add_get("/api/live/{id}", live_stats)
    app.router.add_post("/api/live/{id}/say", live_say)
    app.router.add_delete("/api/live/{id}", stop_live)

    async def stop_jobs(app):
        jobs.close()
        for viewer in list(viewers.values()):
            await viewer.close()
        viewers.clear()

    app.on_cleanup.append(stop_jobs)
    return app


def serve(cfg: ServeConfig, avatars=None, work=None, audio_model=None, renderer=None, infer_cfg=None) -> None:
    """Run the server until interrupted; prints the page's address."""
    from ..infer import infer

    def render(job, audio, out, on_frame):
        folder = avatar_folder(Path(avatars or avatars_dir()), job.avatar)
        if folder is None:
            raise DhliveError(f"no avatar named {job.avatar!r} any more")
        infer(
            audio,
            folder,
            out,
            audio_model=audio_model,
            renderer=renderer,
            cfg=infer_cfg,
            progress=False,
            on_frame=on_frame,
        )

    def live(folder):
        from .live import LiveAvatar

        return LiveAvatar(folder, audio_model, renderer, infer_cfg)

    app = make_app(cfg, avatars, work, render, live)
    shown = "localhost" if cfg.host in ("127.0.0.1", "::1") else cfg.host
    web.run_app(app, host=cfg.host, port=cfg.port, print=lambda _: print(f"dhlive serve: http://{shown}:{cfg.port}/"))
