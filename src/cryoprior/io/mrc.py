"""MRC maps through mrcfile: read with clear errors, write atomically.

Arrays are (z, y, x) = (sections, rows, columns), as mrcfile returns them.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.io._atomic import atomic_path
from cryoprior.io._warnings import log_caught_warnings
from cryoprior.io.stacks import set_label

__all__ = ["MapHeader", "read_map", "read_map_header", "write_map_atomic"]


def read_map(path: str | Path, *, dtype: np.dtype | type | None = np.float32) -> np.ndarray:
    """Read the data of an MRC file as a new array (never a view of a memory map).

    Parameters
    ----------
    path: the MRC file.
    dtype: convert to this dtype (``None`` keeps the file's own).

    Returns
    -------
    (z, y, x) or (y, x) array.

    Raises
    ------
    InputFileError: missing file, not an MRC file, or truncated data.
    """
    path = Path(path)
    _require_regular_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.open(path, mode="r", permissive=True) as mrc:
                data = mrc.data
                if data is None:
                    raise InputFileError(path, "not a readable MRC file (bad header or no data)")
                array = np.array(data, dtype=dtype, copy=True)
        log_caught_warnings(path, caught)
    except InputFileError:
        raise
    except Exception as exc:  # mrcfile raises ValueError/OSError/etc. for bad files
        raise InputFileError(path, f"not a readable MRC file ({exc})") from exc
    return array


def _require_regular_file(path: Path) -> None:
    """InputFileError unless ``path`` is a regular file (a FIFO would block, a folder fail)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(path, "file does not exist") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read the file ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(path, "is a folder, not an MRC file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(path, "not a regular file (a FIFO, socket or device)")


@dataclass(frozen=True)
class MapHeader:
    """Shape and voxel size of an MRC map, from its header alone.

    Attributes
    ----------
    path: the file.
    shape: (nz, ny, nx) as the header gives them (nz is 1 for an image).
    voxel_size_angstrom: the header's x voxel size (0 when unset).
    """

    path: Path
    shape: tuple[int, int, int]
    voxel_size_angstrom: float


def read_map_header(path: str | Path) -> MapHeader:
    """Read an MRC file's header (not its data); mrcfile's warnings are logged.

    Raises InputFileError for a missing, non-regular or unreadable file.
    """
    path = Path(path)
    _require_regular_file(path)
    shape, voxel_size = _read_header(path)
    return MapHeader(path=path, shape=shape, voxel_size_angstrom=voxel_size)


def _read_header(path: Path) -> tuple[tuple[int, int, int], float]:
    """(nz, ny, nx) and the x voxel size of an MRC header; mrcfile's warnings logged."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                header = mrc.header
                shape = (int(header.nz), int(header.ny), int(header.nx))
                voxel_size = float(mrc.voxel_size.x)
    except Exception as exc:  # mrcfile raises ValueError/OSError/etc. for bad files
        raise InputFileError(path, f"not a readable MRC file ({exc})") from exc
    log_caught_warnings(path, caught)
    return shape, voxel_size


def write_map_atomic(
    path: str | Path,
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float | None = None,
    label: str | None = None,
) -> Path:
    """Write ``volume`` as float32 MRC to ``path`` atomically (temporary file + rename).

    Parameters
    ----------
    path: destination (its folder must exist).
    volume: (z, y, x) or (y, x) real array; not modified.
    voxel_size_angstrom: recorded in the header when given.
    label: the header's one label, in place of mrcfile's time-stamped one, so the same map
        always gives the same bytes (None keeps mrcfile's).
    """
    path = Path(path)
    data = np.ascontiguousarray(volume, dtype=np.float32)
    with atomic_path(path, suffix=".mrc") as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            if voxel_size_angstrom is not None:
                mrc.voxel_size = float(voxel_size_angstrom)
            mrc.update_header_stats()
            if label is not None:
                set_label(mrc.header, label)
    return path
