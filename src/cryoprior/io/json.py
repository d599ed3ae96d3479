"""JSON files of the package (run records, validation results, manifests).

One reader, one atomic writer, one conversion of numpy and non-finite values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.io._atomic import write_text_atomic

__all__ = ["json_ready", "read_json", "write_json_atomic"]


def json_ready(value: Any) -> Any:
    """Convert non-finite floats to None, numpy scalars and arrays to Python, paths to strings.

    Recursively; the input is not modified.

    Examples
    --------
    >>> json_ready({"a": np.float64("nan"), "b": np.arange(2), "c": Path("x")})
    {'a': None, 'b': [0, 1], 'c': 'x'}
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_json(path: str | Path) -> dict | None:
    """Return a JSON file's content, or None when it is missing or not complete JSON.

    Not complete: e.g. a run that was stopped before writing it.
    """
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json_atomic(path: str | Path, data: dict) -> None:
    """Write ``data`` as JSON, atomically (non-finite floats as null, see :func:`json_ready`)."""
    write_text_atomic(path, json.dumps(json_ready(data), indent=1, allow_nan=False))
