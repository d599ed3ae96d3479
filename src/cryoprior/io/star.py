"""STAR files through starfile: read with clear errors, write atomically."""

from __future__ import annotations

import linecache
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from cryoprior.errors import InputFileError
from cryoprior.io._atomic import atomic_path

__all__ = ["read_star", "write_star_atomic", "star_version", "require_block"]


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
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
    """The ``# version NNNNN`` number RELION writes before its blocks (30001, 50001), if any."""
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
    path: str | Path, blocks: dict[str, pd.DataFrame | dict[str, Any]], *, overwrite: bool = True
) -> Path:
    """Write blocks (as ``read_star`` returns them) to ``path`` atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    with atomic_path(path, suffix=".star") as tmp:
        starfile.write(blocks, tmp, overwrite=True)
    return path
