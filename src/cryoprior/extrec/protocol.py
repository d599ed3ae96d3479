"""The file side of RELION's external-reconstruction protocol: output checks and writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryoprior.io.mrc import write_map_atomic
from cryoprior.io.relion_extrec import ExternalReconstructJob

__all__ = [
    "ResultWriteError",
    "check_volume",
    "one_line",
    "result_target",
    "write_result",
]

#: One JSON line per call, in the folder of RELION's output root.


class ResultWriteError(Exception):
    """The map for RELION could not be written; the message names the file and the OS error."""

    def __init__(self, path: str | Path, exc: BaseException):
        self.path = Path(path)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        super().__init__(f"{path}: cannot write the map ({one_line(detail)})")


def one_line(text: object, *, limit: int = 500) -> str:
    """``text`` on one line (newlines and runs of blanks become one space), at most ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


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
    if not np.isfinite(volume.astype(np.float32)).all():
        return "values overflow float32"
    return None


def result_target(job: ExternalReconstructJob, base_dir: str | Path = ".") -> Path:
    """Where RELION expects the map (``rlnExtReconsResult``), relative paths under base_dir."""
    return job.result_path if job.result_path.is_absolute() else Path(base_dir) / job.result_path


def write_result(
    job: ExternalReconstructJob,
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float | None = None,
    base_dir: str | Path = ".",
) -> Path:
    """Write ``volume`` as float32 to the job's ``rlnExtReconsResult``, atomically.

    Raises ValueError if the volume is not an acceptable map (see ``check_volume``) and
    ResultWriteError (naming the file) when the file system refuses the write; in both
    cases whatever was at the target before is untouched and no temporary file is left.
    """
    problem = check_volume(volume, box_size=job.original_image_size)
    if problem:
        raise ValueError(problem)
    target = result_target(job, base_dir)
    try:
        return write_map_atomic(target, volume, voxel_size_angstrom=voxel_size_angstrom)
    except (OSError, ValueError) as exc:  # mrcfile raises ValueError for some bad targets
        raise ResultWriteError(target, exc) from exc
