"""The training loop both trainers share, so that each of them reads as its data and its
loss step:

    run = TrainRun(out, STATE_FORMAT, cfg, inputs, resume=..., stop_at=...)
    ... build data and networks; load run.state when resuming ...
    for step in run.steps("distill-audio"):      # seeded per step; resumes where it stopped
        ... one training step ...
        if run.due(step + 1, cfg.log_every): run.log.write(...)
        if run.due(step + 1, cfg.checkpoint_every): run.save(step + 1, {...})
    if run.stopped: return run.stopped_result()

A run folder holds the state to resume from (train_state.pt), a CSV log and its plot, and
the results the trainer writes when all steps are done. A resumed run must be the run it
continues: the same config (only `steps` may grow) and the same training inputs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import DhliveError
from ..formats import MOUTH_PCA_FILE, file_sha256, load_checkpoint, save_checkpoint
from ..mouth import MouthBasis, load_basis, save_basis

STATE_FILE = "train_state.pt"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"
EVAL_FILE = "eval.json"


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


def write_plot(
    log_path: Path, png_path: Path, keys: tuple, ylabel: str, right_key: str | None = None, right_label: str = ""
) -> None:
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


def _plain(x):
    """JSON-shaped data (tuples become lists), so a config read back compares equal."""
    return json.loads(json.dumps(x))


class TrainRun:
    """One training run in its folder: fresh or resumed, the steps of this slice, its log and state."""

    def __init__(
        self,
        out,
        state_format: str,
        cfg,
        inputs: dict,
        *,
        resume: bool,
        stop_at: int | None,
        results: tuple = (),
        log_columns: list[str] = (),
        main: bool = True,
        progress: bool = True,
    ):
        """`inputs`: what the run trains on (avatars and their versions, a starting model...), as
        JSON-able data; `results`: the files a finished run writes, removed when a fresh run
        starts; `main`: this process writes (the first of several GPUs)."""
        self.out, self.cfg, self.format, self.main = Path(out), cfg, state_format, main
        self.progress = progress and main
        self.config, self.inputs = _plain(asdict(cfg)), _plain(inputs)
        self.state_path = self.out / STATE_FILE
        self.notes: list[str] = []
        self.state = load_checkpoint(self.state_path, state_format) if resume and self.state_path.exists() else None
        if self.state is not None:
            self._check_resumable()
        elif main:
            clear_results(self.out, results)
        self.start = int(self.state["step"]) if self.state is not None else 0
        self.end = cfg.steps if stop_at is None else max(self.start, min(cfg.steps, stop_at))
        self.log = CsvLog(self.out / LOG_FILE, list(log_columns), self.start) if main and log_columns else None
        self.t0 = time.time()
        self.step_seconds = 0.0  # mean time of one step of this slice once warmed up (see steps)

    def _check_resumable(self) -> None:
        saved, now = self.state.get("config", {}), self.config
        changed = sorted(k for k in set(saved) | set(now) if k != "steps" and saved.get(k) != now.get(k))
        if "inputs" in self.state:
            changed += sorted(
                f"training {k}"
                for k in set(self.state["inputs"]) | set(self.inputs)
                if self.state["inputs"].get(k) != self.inputs.get(k)
            )
        if changed:
            what = "; ".join(
                f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" if k in now or k in saved else k for k in changed
            )
            raise DhliveError(
                f"{self.out}: cannot resume, the run it continues had other settings ({what}); "
                "start a fresh run in another folder"
            )
        done, planned = int(self.state["step"]), int(saved.get("steps", now["steps"]))
        if now["steps"] < done:
            raise DhliveError(f"{self.out}: cannot resume with {now['steps']} steps, the run is at step {done} already")
        if now["steps"] != planned:
            self.notes.append(
                f"the run was planned for {planned} steps and now goes to {now['steps']}: "
                "the learning rate schedule stretches from here"
            )

    def mouth_basis(self, given, fit, save: bool = True) -> tuple[Path, MouthBasis]:
        """(path, basis) of the run's mouth PCA, OUT/pca.pkl: kept from the state being resumed
        (refused if the file changed since), else the `given` file, else `fit()`; written when
        `save` (the main process)."""
        path = self.out / MOUTH_PCA_FILE
        if self.state is not None:
            if self.state.get("mouth_pca_sha256") != file_sha256(path):
                raise DhliveError(f"{self.out}: {MOUTH_PCA_FILE} changed since the state was written; cannot resume")
            return path, load_basis(path)
        basis = load_basis(given) if given else fit()
        if save:
            save_basis(path, basis)
        return path, basis

    def steps(self, desc: str):
        """The steps of this slice, start..end-1, each seeded so that a resumed run takes the
        steps an uninterrupted one would (dropout and noise included)."""
        bar = tqdm(
            range(self.start, self.end), desc=desc, initial=self.start, total=self.cfg.steps, disable=not self.progress
        )
        began = []
        for step in bar:
            began.append(time.perf_counter())
            torch.manual_seed(self.cfg.seed * 1_000_003 + step)
            yield step
        began.append(time.perf_counter())
        # the first step also pays for warming up (kernel choice, first allocations) and the
        # last for the slice's checkpoint: counted in, a slice of a few steps timed to plan a
        # budget would make every step look longer than it is
        steady = began[1:-1] if len(began) > 3 else began
        self.step_seconds = (steady[-1] - steady[0]) / max(len(steady) - 1, 1)
        bar.close()

    def due(self, done: int, every: int) -> bool:
        """Whether step `done` (1-based) is one to act on every `every` steps; the slice's last is."""
        return done % every == 0 or done in (self.cfg.steps, self.end)

    def save(self, done: int, payload: dict) -> None:
        """Write the resumable state after step `done` (atomic)."""
        if self.main:
            save_checkpoint(
                self.state_path, self.format, {"step": done, "config": self.config, "inputs": self.inputs, **payload}
            )

    @property
    def stopped(self) -> bool:
        """This slice ended before the run's last step."""
        return self.end < self.cfg.steps

    @property
    def seconds(self) -> float:
        return round(time.time() - self.t0, 1)

    def result(self, **extra) -> dict:
        """The summary a trainer returns: where, how far, how long, and (stopped) that it can resume."""
        out = {
            "out": str(self.out),
            "steps": self.end,
            "seconds": self.seconds,
            "notes": self.notes,
            "step_seconds": round(self.step_seconds, 4),
            **extra,
        }
        if self.stopped:
            out["stopped"] = True
        return out


class RunningMean:
    """The mean of each loss over the steps since the log last read them."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, **values) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.n += 1

    def take(self) -> dict:
        means = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        return means
