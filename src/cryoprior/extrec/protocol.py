"""The file side of RELION's external-reconstruction protocol: output checks and writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.io.mrc import write_map_atomic
from cryoprior.io.relion import ExternalReconstructJob

__all__ = ["check_volume", "write_result", "append_log_line", "LOG_FILE_NAME"]

#: One JSON line per call, in the folder of RELION's output root.
LOG_FILE_NAME = "cryoprior_extrec.log"


def check_volume(volume: np.ndarray, *, box_size: int) -> str | None:
    """None if ``volume`` is an acceptable map for RELION, else the reason.

    RELION accepts any map silently and hangs later on a wrong size, so the shape must be
    exactly (N, N, N) and every value finite.
    """
    volume = np.asarray(volume)
    if volume.shape != (box_size,) * 3:
        return f"wrong shape {volume.shape}, RELION needs {(box_size,) * 3}"
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        return f"wrong dtype {volume.dtype}"
    finite = np.isfinite(volume)
    if not finite.all():
        return f"{int((~finite).sum())} NaN/Inf values"
    return None


def write_result(
    job: ExternalReconstructJob,
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float | None = None,
    base_dir: str | Path = ".",
) -> Path:
    """Write ``volume`` as float32 to the job's ``rlnExtReconsResult``, atomically.

    Raises ValueError if the volume is not an acceptable map (see ``check_volume``).
    """
    problem = check_volume(volume, box_size=job.original_image_size)
    if problem:
        raise ValueError(problem)
    target = job.result_path if job.result_path.is_absolute() else Path(base_dir) / job.result_path
    return write_map_atomic(target, volume, voxel_size_angstrom=voxel_size_angstrom)


def append_log_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write (O_APPEND keeps concurrent lines whole)."""
    line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
