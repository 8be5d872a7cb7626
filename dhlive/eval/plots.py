"""The pictures of an evaluation: aperture over time with speech shading, and a strip of mouths."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..formats import atomic_write_bytes

LABEL_WIDTH = 96  # px left of each strip row for its name


def aperture_plot(
    path: str | os.PathLike,
    series: dict[str, np.ndarray],
    speech: np.ndarray,
    fps: float,
    open_level: float | None = None,
    title: str = "",
) -> None:
    """Mouth aperture over time, one line per series, silence shaded grey, the open level dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speech = np.asarray(speech, bool)
    t = np.arange(len(speech)) / fps
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    quiet = np.r_[False, ~speech, False].astype(np.int8)
    edges = np.diff(quiet)
    for k, (a, b) in enumerate(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))):
        ax.axvspan(a / fps, b / fps, color="0.88", lw=0, label="silence (VAD)" if k == 0 else None)
    for label, values in series.items():
        ax.plot(t[: len(values)], values[: len(t)], lw=1.2, label=label)
    if open_level is not None:
        ax.axhline(open_level, color="k", ls="--", lw=0.8, label="open above")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("aperture |p13-p14| / |p78-p308|")
    ax.set_xlim(0, max(t[-1], 1 / fps) if len(t) else 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def mouth_strip(path: str | os.PathLike, rows: dict[str, list[np.ndarray]]) -> None:
    """Rows of equal-size RGB crops, each row named at its left (e.g. real above generated)."""
    lines = []
    for label, crops in rows.items():
        if not crops:
            continue
        row = np.concatenate(crops, 1)
        name = np.full((row.shape[0], LABEL_WIDTH, 3), 255, np.uint8)
        cv2.putText(
            name, label[:12], (4, row.shape[0] // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA
        )
        lines.append(np.concatenate([name, row], 1))
    if not lines:
        return
    width = max(r.shape[1] for r in lines)
    img = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in lines], 0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    atomic_write_bytes(path, png.tobytes())


def save_series(path: str | os.PathLike, **series: np.ndarray) -> None:
    """Per-frame series of an evaluation (aperture, speech...) as an npz, for plots of one's own."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in series.items()})
    atomic_write_bytes(path, buf.getvalue())


def spread(indices, n: int) -> list[int]:
    """Up to n entries of `indices`, evenly spaced."""
    indices = list(indices)
    if len(indices) <= n:
        return indices
    return [indices[int(round(k))] for k in np.linspace(0, len(indices) - 1, n)]
