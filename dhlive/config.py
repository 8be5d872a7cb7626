"""Stage configs are dataclasses; a YAML file in configs/ may override their fields."""

from __future__ import annotations

import dataclasses
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
    return cls(**values)
