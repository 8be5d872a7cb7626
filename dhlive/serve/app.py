"""`dhlive serve`: a local web page over the toolkit. Pick an avatar by its picture, upload a
recording, and get the mp4 `infer` makes of it, with a progress bar; jobs queue one at a time
and outlive a page reload or a restart (jobs.py).

    GET  /                               the page (static/, no build step, nothing from a CDN)
    GET  /api/avatars                    the avatars folder: name, frames, own renderer or not
    GET  /api/avatars/NAME/thumbnail.jpg the avatar's first face crop
    POST /api/jobs                       multipart: avatar=NAME, audio=FILE -> the queued job
    GET  /api/jobs, /api/jobs/ID         the jobs, newest first / one job and its progress
    GET  /api/jobs/ID/video.mp4          the finished video

Every error is JSON {"error": one line} with a 4xx status. An avatar name is looked up only
as a direct child of the avatars folder; uploads are streamed to a hidden temporary file
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
from ..formats import IMAGE_DIR, IMAGE_PATTERN, META_FILE, avatars_dir, cache_dir
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

    def __post_init__(self):
        number("port", self.port, low=0, high=65535, integer=True)
        number("max_upload_mb", self.max_upload_mb, low=0, above=True)
        number("max_waiting_jobs", self.max_waiting_jobs, low=1, integer=True)


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
        "own_renderer": (folder / "renderer" / "render_model.pt").is_file(),
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


def make_app(
    cfg: ServeConfig | None = None,
    avatars: Path | None = None,
    work: Path | None = None,
    render=None,
) -> web.Application:
    """The server: `render(job, audio, out, on_frame)` makes one job's video (serve() passes
    `infer` with the chosen models); jobs are kept under `work`."""
    cfg = cfg or ServeConfig()
    app = web.Application()
    jobs = JobQueue(Path(work or cache_dir() / "serve_jobs"), render, cfg.max_waiting_jobs)
    app[APP_KEY] = {"config": cfg, "avatars": Path(avatars or avatars_dir()), "jobs": jobs}
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/api/avatars", list_avatars)
    app.router.add_get("/api/avatars/{name}/thumbnail.jpg", avatar_thumbnail)
    app.router.add_post("/api/jobs", create_job)
    app.router.add_get("/api/jobs", list_jobs)
    app.router.add_get("/api/jobs/{id}", get_job)
    app.router.add_get("/api/jobs/{id}/video.mp4", job_video)

    async def stop_jobs(app):
        jobs.close()

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

    app = make_app(cfg, avatars, work, render)
    shown = "localhost" if cfg.host in ("127.0.0.1", "::1") else cfg.host
    web.run_app(app, host=cfg.host, port=cfg.port, print=lambda _: print(f"dhlive serve: http://{shown}:{cfg.port}/"))
