"""Stage configs are dataclasses that check their own values; a YAML file in configs/ may
override their fields.

Each config calls the helpers below from `__post_init__`, so a bad value, whether it comes
from a command-line option, a YAML file or Python, is one DhliveError naming the option.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import yaml

from .errors import DhliveError


def load_config(path, cls, **overrides):
    """An instance of dataclass `cls` from YAML `path` (may be None), then `overrides` (None ones skipped)."""
    values = {}
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise DhliveError(f"{path}: no such config file") from None
        except yaml.YAMLError as e:
            raise DhliveError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise DhliveError(f"{path}: expected a mapping of option: value")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DhliveError(f"{path}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except DhliveError as e:
        raise DhliveError(f"{path}: {e}" if path is not None else str(e)) from None


def number(
    name: str, value, *, low: float | None = None, high: float | None = None, integer: bool = False, above: bool = False
) -> None:
    """Check that option `name` is a finite number (an integer when `integer`) in [low, high]
    (above: strictly greater than `low`)."""
    kind = "a whole number" if integer else "a finite number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if above else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'above' if above else 'at least'} {low:g}")
        if high is not None:
            bounds.append(f"at most {high:g}")
        raise DhliveError(f"{name} must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}, not {value!r}")


def choice(name: str, value, choices) -> None:
    """Check that option `name` is one of `choices`."""
    if value not in choices:
        raise DhliveError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")


def numbers(name: str, values, length: int, **bounds) -> None:
    """Check that option `name` is a list of `length` numbers, each as `number` checks."""
    if not isinstance(values, (list, tuple)) or len(values) != length:
        raise DhliveError(f"{name} must be a list of {length} numbers, not {values!r}")
    for v in values:
        number(name, v, **bounds)


def fields(config, names: str, **bounds) -> None:
    """Check each of a config's fields named in `names` (space-separated) as `number` checks."""
    for name in names.split():
        number(name, getattr(config, name), **bounds)
