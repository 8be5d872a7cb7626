"""What the benchmark scripts share: the machine's name, and prepared avatars of the talking
clips in ../shared/data, built once and reused."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.errors import DhliveError
from dhlive.formats import META_FILE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_CACHE = Path(os.environ.get("DHLIVE_CACHE_DIR", Path.home() / ".cache" / "dhlive")) / "bench_avatars"
CROP_SIZE = 256  # the mouth image and landmarks do not need larger crops


TALKING_DIRS = ("talking", "more/talking", "more/talking_doubtful")  # real people talking, with their own sound
VERIFIED_ONLY = ("more/talking_doubtful",)  # used only where scripts/av_offsets.tsv lists a checked offset
OFFSETS_FILE = Path(__file__).with_name("av_offsets.tsv")


def av_offsets(path: Path = OFFSETS_FILE) -> dict[str, float | None]:
    """Clip name -> seconds its sound lags its picture (scripts/check_offsets.py), None: left out."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, frames = line.split("\t")[:2]
            out[name] = None if frames == "-" else int(frames) / 25
    return out


def talking_avatars(
    data: Path = DEFAULT_DATA, cache: Path = DEFAULT_CACHE, progress: bool = True, dirs: tuple = ("talking",)
) -> list[Path]:
    """Prepare (or reuse) one avatar per clip in data/DIR for each of `dirs`, its sound moved by
    its checked offset; returns their folders, sorted by name. Clips left out by the offset
    check, and clips prepare refuses, are skipped."""
    offsets = av_offsets()
    clips = []
    for d in dirs:
        for clip in sorted((Path(data) / d).glob("*")):
            listed = clip.stem in offsets
            if (
                clip.suffix in (".mp4", ".mpg")
                and (listed or d not in VERIFIED_ONLY)
                and offsets.get(clip.stem, 0) is not None
            ):
                clips.append(clip)
    if not clips:
        raise SystemExit(f"no talking clips under {Path(data)} {dirs} (pass --data)")
    out = []
    for clip in clips:
        folder = Path(cache) / clip.stem
        offset = offsets.get(clip.stem) or 0.0
        ready = folder / META_FILE
        if ready.exists() and (json.loads(ready.read_text()).get("audio") or {}).get("offset", 0.0) != offset:
            ready.unlink()  # prepared with another offset
        if not ready.exists():
            wav = clip.with_suffix(".wav")
            cfg = PrepareConfig(size=CROP_SIZE, audio_offset=offset, audio=str(wav) if wav.exists() else None)
            try:
                prepare(clip, clip.stem, cache, cfg, force=True, progress=progress)
            except DhliveError as e:
                print(f"skipped {clip.name}: {e}", file=sys.stderr)
                continue
        out.append(folder)
    return sorted(out, key=lambda p: p.name)


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


AS_IS_CACHE = DEFAULT_CACHE.with_name("offset_check_avatars")  # clips prepared with no offset, to check them


def as_is_avatar(clip: Path, cache: Path = AS_IS_CACHE, min_seconds: float = 1.0) -> Path:
    """The clip prepared as it is (no offset; a NAME.wav beside it is its sound), once."""
    folder = cache / f"{clip.stem}-as-is"
    if not (folder / META_FILE).exists():
        wav = clip.with_suffix(".wav")
        cfg = PrepareConfig(size=CROP_SIZE, audio=str(wav) if wav.exists() and clip.suffix != ".wav" else None)
        prepare(clip, folder.name, cache, cfg, force=True, progress=False)
    return folder


def accepted_avatars(data: Path, listing: Path, folder: str = "more/faces_lrw_ar") -> list[Path]:
    """Training-only avatars: the clips of data/folder named in `listing` (scripts/check_offsets.py
    --accepted), prepared as they are."""
    names = [n.strip() for n in Path(listing).read_text().splitlines() if n.strip()]
    return [as_is_avatar(Path(data) / folder / f"{n}.mp4") for n in names]


def cpu_info() -> tuple[str, list[str]]:
    """The CPU's model name and which of ISA_FLAGS it reports (/proc/cpuinfo)."""
    name, flags = platform.processor(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, [f for f in ISA_FLAGS if f in flags]


def machine() -> dict:
    """The machine a figure was measured on: CPU model and ISA flags, cores, Python, torch."""
    import torch

    name, flags = cpu_info()
    return {
        "cpu": name,
        "isa": flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
