"""Pieces every training command shares: the learning-rate schedule, the CSV
log that survives a resume, and its loss plot."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np


def clear_results(out: Path, names: tuple) -> None:
    """A fresh run into a folder that holds an earlier run's results removes them first:
    a run stopped or killed before its end must not leave another run's model beside
    its own state and log, where it would pass for this run's result."""
    for name in names:
        (Path(out) / name).unlink(missing_ok=True)


def cosine_lr(step: int, base: float, warmup: int, total: int, floor: float = 0.02) -> float:
    """Linear warm-up, then cosine decay to floor * base at the last step."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


class CsvLog:
    """A CSV training log. On resume, rows past the resumed step are dropped, so the log
    of a run killed and resumed reads like one that never stopped."""

    def __init__(self, path: Path, columns: list[str], start: int):
        self.path, self.columns = Path(path), columns
        if start == 0 or not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(columns)
        else:
            rows = list(csv.reader(self.path.open()))
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= start])

    def write(self, row: dict) -> None:
        def fmt(v):
            return "" if v is None else f"{v:.5g}" if isinstance(v, float) else str(v)

        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([fmt(row.get(c)) for c in self.columns])


def write_plot(log_path: Path, png_path: Path, keys: tuple, ylabel: str, right_key: str | None = None,
               right_label: str = "") -> None:
    """Plot columns of a CSV log against step (log scale), one optional column on a right axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(Path(log_path).open()))
    if not rows:
        return
    step = [int(r["step"]) for r in rows]

    def column(key):
        return [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in keys:
        vals = column(key)
        if not np.isnan(vals).all():
            ax.plot(step, vals, label=key, marker="o" if key.startswith("eval") else None, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if right_key:
        vals = column(right_key)
        if not np.isnan(vals).all():
            ax2 = ax.twinx()
            ax2.plot(step, vals, "k.--", label=right_label)
            ax2.set_ylabel(right_label)
            ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    tmp = Path(png_path).with_name(f".{Path(png_path).name}.part.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)
