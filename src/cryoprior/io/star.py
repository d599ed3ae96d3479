"""STAR files through starfile: read with clear errors, write atomically."""

from __future__ import annotations

import linecache
import warnings
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
import starfile

from cryoprior.errors import InputFileError
from cryoprior.io._atomic import atomic_path
from cryoprior.io._warnings import log_caught_warnings

__all__ = [
    "NONE_STRINGS",
    "block_label",
    "list_block",
    "list_block_reader",
    "loop_column",
    "read_star",
    "require_block",
    "star_version",
    "to_bool",
    "to_float",
    "to_int",
    "to_str",
    "write_star_atomic",
]


def read_star(path: str | Path) -> dict[str, pd.DataFrame | dict[str, Any]]:
    """Read every data block of a STAR file.

    Returns a dict from block name (without ``data_``) to a DataFrame (loop blocks) or a
    dict of values (simple blocks), as ``starfile.read(..., always_dict=True)``.

    Raises InputFileError naming the file for a missing, empty or unparsable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file does not exist")
    # starfile reads lines through linecache and clears it only after a successful parse:
    # a failed parse would leave stale lines that later reads of the same path get back.
    linecache.clearcache()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            blocks = starfile.read(path, always_dict=True)
        log_caught_warnings(path, caught)
    except Exception as exc:
        raise InputFileError(
            path, f"not a readable STAR file ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from exc
    finally:
        linecache.clearcache()
    if not blocks:
        raise InputFileError(path, "no data block found in the STAR file")
    return dict(blocks)


def star_version(path: str | Path) -> int | None:
    """Return the ``# version NNNNN`` number RELION writes before its blocks (30001, 50001), if any."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped.startswith("# version"):
                parts = stripped.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    return int(parts[2])
            elif stripped.startswith("data_"):
                return None  # the version comment, when present, precedes the first block
    return None


def require_block(
    blocks: dict[str, Any], name: str, path: str | Path
) -> pd.DataFrame | dict[str, Any]:
    """Return ``blocks[name]`` or raise InputFileError naming the file and the block."""
    if name not in blocks:
        found = ", ".join(f"data_{b}" for b in blocks) or "none"
        raise InputFileError(path, f"missing block data_{name} (found: {found})")
    return blocks[name]


def write_star_atomic(
    path: str | Path,
    blocks: dict[str, pd.DataFrame | dict[str, Any]],
    *,
    overwrite: bool = True,
    relion_version: int | None = None,
) -> Path:
    """Write blocks (as ``read_star`` returns them) to ``path`` atomically.

    Parameters
    ----------
    path: destination (its folder must exist).
    blocks: block name (without ``data_``) to a DataFrame (loop) or a dict (simple block).
    overwrite: replace an existing file (FileExistsError otherwise).
    relion_version: when given (30001 for RELION 3.1), the file starts with RELION's
        ``# version NNNNN`` line instead of starfile's time-stamped comment, so the same
        blocks always give the same bytes. Floats are written as ``%.6f`` either way.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    with atomic_path(path, suffix=".star") as tmp:
        if relion_version is None:
            starfile.write(blocks, tmp, overwrite=True)
        else:
            tmp.write_text(_relion_star_text(blocks, int(relion_version)))
    return path


def _relion_star_text(blocks: dict[str, pd.DataFrame | dict[str, Any]], version: int) -> str:
    """Return starfile's text of ``blocks``, RELION's version line in place of its time stamp."""
    lines = starfile.to_string(blocks, float_format="%.6f").splitlines()
    while lines and (lines[0].startswith("# Created by") or not lines[0].strip()):
        lines.pop(0)
    return f"\n# version {version}\n\n" + "\n".join(lines) + "\n"


#: Values RELION writes for an empty string label.
NONE_STRINGS = frozenset({"", "None", "none"})


def list_block(blocks: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """Return a RELION "list" (simple key/value) block as a dict (a one-row loop is accepted)."""
    block = require_block(blocks, name, path)
    if isinstance(block, dict):
        return block
    if len(block) != 1:
        raise InputFileError(path, f"data_{name} is not a simple block ({len(block)} rows)")
    return block.iloc[0].to_dict()


def to_int(value: Any) -> int:
    """Cast a STAR value to int; a float must be integral (ValueError otherwise)."""
    if isinstance(value, str):
        return int(value.strip())
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)


def to_bool(value: Any) -> bool:
    """Cast a STAR 0/1 flag to bool (ValueError for anything else)."""
    number = to_int(value)
    if number not in (0, 1):
        raise ValueError(f"{value!r} is not 0 or 1")
    return bool(number)


def to_float(value: Any) -> float:
    """Cast a STAR value to float."""
    return float(value.strip()) if isinstance(value, str) else float(value)


def to_str(value: Any) -> str:
    """Cast a STAR value to a stripped string."""
    return str(value).strip()


_CAST_NAMES = {to_int: "integer", to_bool: "0/1 flag", to_float: "number", to_str: "string"}


def block_label(
    block: dict[str, Any], label: str, cast, path: Path, block_name: str, *, required: bool = True
):
    """``cast(block[label])``; InputFileError for a missing label (if required) or bad value."""
    if label not in block:
        if required:
            raise InputFileError(path, f"missing label _{label} in data_{block_name}")
        return None
    value = block[label]
    try:
        return cast(value)
    except (TypeError, ValueError, OverflowError) as exc:
        what = _CAST_NAMES.get(cast, "value")
        raise InputFileError(
            path, f"label _{label} in data_{block_name} is not a valid {what}: {value!r}"
        ) from exc


def list_block_reader(blocks: dict[str, Any], name: str, path: Path):
    """Return a reader of the list block ``name``: ``label(rln, cast, *, required=True)``.

    ``label("rlnPixelSize", to_float)`` is :func:`block_label` on that block: the cast value,
    None for a missing optional label. InputFileError naming ``path`` and the block for a
    missing block (at once), or for a missing required label or a bad value (when read).
    """
    block = list_block(blocks, name, path)

    def label(rln: str, cast, *, required: bool = True):
        return block_label(block, rln, cast, path, name, required=required)

    return label


@overload
def loop_column(
    table: pd.DataFrame, label: str, dtype, path: Path, block_name: str, *, required: Literal[True]
) -> np.ndarray: ...


@overload
def loop_column(
    table: pd.DataFrame, label: str, dtype, path: Path, block_name: str, *, required: bool = False
) -> np.ndarray | None: ...


def loop_column(
    table: pd.DataFrame, label: str, dtype, path: Path, block_name: str, *, required: bool = False
) -> np.ndarray | None:
    """Return a loop column as a new numpy array (None when absent and not required).

    Raises InputFileError for a missing required column or non-numeric entries.
    """
    if label not in table.columns:
        if required:
            raise InputFileError(path, f"missing column _{label} in data_{block_name}")
        return None
    column = table[label]
    try:
        if np.dtype(dtype).kind in "iu":
            as_float = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
                raise ValueError("non-integer entries")
            return as_float.astype(dtype)
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=dtype).copy()
    except (TypeError, ValueError) as exc:
        raise InputFileError(
            path, f"column _{label} in data_{block_name} has non-numeric values ({exc})"
        ) from exc
