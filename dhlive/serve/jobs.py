"""Video jobs of `dhlive serve`: an uploaded recording and an avatar in, an mp4 out, one job at
a time, kept on disk so that a page reload or a server restart finds them again.

    ROOT/ID/job.json    what the job is and how far it got (JOB_FORMAT)
    ROOT/ID/audio.EXT   the upload, put in place only once it is complete and decodes
    ROOT/ID/video.mp4   the result, written by `infer` under a temporary name first
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import DhliveError
from ..formats import write_json

JOB_FORMAT = "dhlive-serve-job/1"
JOB_FILE = "job.json"
VIDEO_FILE = "video.mp4"
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
STATES = ("queued", "running", "done", "failed")
SAVE_EVERY = 25  # frames between progress writes to job.json


@dataclass
class Job:
    """One video job as the page sees it."""

    id: str
    avatar: str
    audio: str  # the upload's file name in the job folder
    upload_name: str  # the name the user's file had
    state: str = "queued"
    done: int = 0  # frames written
    total: int = 0
    error: str | None = None
    created: float = 0.0
    seconds: float | None = None  # how long the job ran

    def public(self) -> dict:
        out = asdict(self)
        out["progress"] = self.done / self.total if self.total else (1.0 if self.state == "done" else 0.0)
        out["video"] = f"/api/jobs/{self.id}/video.mp4" if self.state == "done" else None
        return out


def load_job(folder: Path) -> Job:
    """A job folder's record, validated; a broken one is a DhliveError naming the file."""
    try:
        data = json.loads((folder / JOB_FILE).read_text())
    except (OSError, ValueError) as e:
        raise DhliveError(f"{folder / JOB_FILE}: unreadable ({e})") from None
    if not isinstance(data, dict) or data.get("format") != JOB_FORMAT:
        raise DhliveError(f"{folder / JOB_FILE}: not a {JOB_FORMAT} record")
    try:
        job = Job(**{k: v for k, v in data.items() if k != "format"})
    except TypeError as e:
        raise DhliveError(f"{folder / JOB_FILE}: {e}") from None
    if job.state not in STATES or job.id != folder.name:
        raise DhliveError(f"{folder / JOB_FILE}: bad state or id")
    return job


class JobQueue:
    """Jobs under `root`, run one at a time on a worker thread by `run(job, audio, out, on_frame)`."""

    def __init__(self, root: Path, run, max_waiting: int = 20):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.run, self.max_waiting = run, max_waiting
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.waiting: queue.Queue[str | None] = queue.Queue()
        for folder in sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime):
            if folder.is_dir() and JOB_ID.match(folder.name):
                try:
                    job = load_job(folder)
                except DhliveError:
                    continue  # not ours, or written by a newer version: left alone
                if job.state in ("queued", "running"):  # the server stopped before it finished
                    job.state, job.done = "queued", 0
                    self.waiting.put(job.id)
                self.jobs[job.id] = job
        self.worker = threading.Thread(target=self._work, daemon=True, name="dhlive-jobs")
        self.worker.start()

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def submit(self, avatar: str, upload: Path, upload_name: str) -> Job:
        """Queue a job for `upload` (a complete, checked file, moved into the job's folder)."""
        with self.lock:
            if sum(j.state == "queued" for j in self.jobs.values()) >= self.max_waiting:
                raise DhliveError(f"{self.max_waiting} jobs are already waiting; try again later")
            job_id = uuid.uuid4().hex[:12]
            tmp = self.root / f".{job_id}.partial"
            tmp.mkdir()
            audio = "audio" + re.sub(r"[^.a-z0-9]", "", Path(upload_name).suffix.lower())[:8]
            shutil.move(str(upload), tmp / audio)
            job = Job(job_id, avatar, audio, upload_name[:200], created=time.time())
            self._save(job, tmp)
            tmp.rename(self.folder(job_id))
            self.jobs[job_id] = job
        self.waiting.put(job_id)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if JOB_ID.match(job_id) else None

    def listing(self) -> list[dict]:
        with self.lock:
            return [j.public() for j in sorted(self.jobs.values(), key=lambda j: -j.created)]

    def close(self) -> None:
        self.waiting.put(None)

    def _save(self, job: Job, folder: Path | None = None) -> None:
        write_json((folder or self.folder(job.id)) / JOB_FILE, {"format": JOB_FORMAT, **asdict(job)})

    def _work(self) -> None:
        while (job_id := self.waiting.get()) is not None:
            job = self.jobs[job_id]
            folder = self.folder(job_id)
            job.state, job.done, job.error = "running", 0, None
            self._save(job)
            start = time.perf_counter()

            def on_frame(done: int, total: int, job=job) -> None:
                job.done, job.total = done, total
                if done % SAVE_EVERY == 0:
                    self._save(job)

            try:
                self.run(job, folder / job.audio, folder / VIDEO_FILE, on_frame)
                job.state = "done"
            except DhliveError as e:
                job.state, job.error = "failed", str(e).replace(str(folder) + "/", "")
            except Exception as e:  # the worker keeps serving the next job
                job.state, job.error = "failed", f"{type(e).__name__}: {e}"
            job.seconds = round(time.perf_counter() - start, 2)
            self._save(job)
