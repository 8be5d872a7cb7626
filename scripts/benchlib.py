"""What the benchmark scripts share: the machine's name, and prepared avatars of the talking
clips in ../shared/data, built once and reused."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.formats import META_FILE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_CACHE = Path(os.environ.get("DHLIVE_CACHE_DIR", Path.home() / ".cache" / "dhlive")) / "bench_avatars"
CROP_SIZE = 256  # the mouth image and landmarks do not need larger crops


def talking_avatars(data: Path = DEFAULT_DATA, cache: Path = DEFAULT_CACHE, progress: bool = True) -> list[Path]:
    """Prepare (or reuse) one avatar per clip in data/talking; returns their folders, sorted by name."""
    clips = sorted((Path(data) / "talking").glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no talking clips under {Path(data) / 'talking'} (pass --data)")
    out = []
    for clip in clips:
        folder = Path(cache) / clip.stem
        if not (folder / META_FILE).exists():
            prepare(clip, clip.stem, cache, PrepareConfig(size=CROP_SIZE), force=True, progress=progress)
        out.append(folder)
    return out


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()}
