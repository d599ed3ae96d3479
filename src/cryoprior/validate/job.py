"""A finished (or interrupted) RELION auto-refine as validation input.

Finds a job's half-maps, final map, particles, model and sampling STAR files, and loads
them with the optional ground truth and atomic model into :class:`ValidationInputs`. Used by
``cryoprior validate`` and by the experiment runner; reads files only (no processes).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.io.atomic_model import read_atomic_model
from cryoprior.io.model_map import model_to_map
from cryoprior.io.mrc import read_map, read_map_header
from cryoprior.io.relion import (
    RelionJobFiles,
    find_relion_job_files,
    poses_from_star,
    read_model_star,
    read_sampling_star,
)
from cryoprior.validate.summary import ValidationInputs
from cryoprior.validate.symmetry import validate_symmetry_name

__all__ = [
    "LoadedInputs",
    "load_validation_inputs",
    "maps_voxel_size",
    "read_checked_map",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedInputs:
    """Validation inputs with where they came from.

    Attributes
    ----------
    inputs: the arrays.
    symmetry: point group (given, else the job's sampling STAR, else C1).
    paths: name -> path (or None) of every file read, for the record.
    warnings: what looked wrong in the inputs but did not stop validation (also logged).
    """

    inputs: ValidationInputs
    symmetry: str
    paths: dict[str, str | None]
    warnings: tuple[str, ...] = ()


def load_validation_inputs(
    job: str | Path | None = None,
    *,
    half_map_1: str | Path | None = None,
    half_map_2: str | Path | None = None,
    full_map: str | Path | None = None,
    mask: str | Path | None = None,
    truth_map: str | Path | None = None,
    truth_star: str | Path | None = None,
    particles_star: str | Path | None = None,
    model: str | Path | None = None,
    model_map: str | Path | None = None,
    voxel_size_angstrom: float | None = None,
    symmetry: str | None = None,
) -> LoadedInputs:
    """Read everything validation needs; explicit paths win over the job's files.

    Parameters
    ----------
    job: a RELION auto-refine folder or ``--o`` root (see :func:`find_relion_job_files`).
    half_map_1, half_map_2, full_map, particles_star: override the job's files.
    mask: soft mask (MRC, 0..1).
    truth_map, truth_star: the true map and true poses of a simulation.
    model, model_map: an atomic model in the maps' frame, and its map (made from the model
        on the half-maps' grid when not given).
    voxel_size_angstrom: default: the job's model STAR, else the half-map header.
    symmetry: default: the job's sampling STAR, else C1.

    Raises
    ------
    ValueError: neither a job nor both half-maps, an invalid voxel size or symmetry, or no
        voxel size anywhere.
    FileNotFoundError, InputFileError: missing or unreadable files; maps whose headers give
        different voxel sizes; maps with NaN or infinite voxels; constant half-maps or true
        map (no FSC can be computed).
    """
    if voxel_size_angstrom is not None and not (
        math.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0
    ):
        raise ValueError(
            f"voxel size {voxel_size_angstrom:g} is not valid: give a positive number of Angstrom"
        )
    given_symmetry = validate_symmetry_name(symmetry) if symmetry is not None else None
    files = find_relion_job_files(job) if job is not None else None
    h1_path = half_map_1 or (files.half_map_1 if files else None)
    h2_path = half_map_2 or (files.half_map_2 if files else None)
    if h1_path is None or h2_path is None:
        raise ValueError("give a RELION job, or both half-maps")
    full_path = full_map or (files.full_map if files else None)
    particles_path = particles_star or (files.particles_star if files else None)
    warnings: list[str] = []

    def warn(message: str) -> None:
        logger.warning("%s", message)
        warnings.append(message)

    maps = [h1_path, h2_path, full_path, mask, truth_map, model_map]
    voxel, mismatch = maps_voxel_size(
        [Path(p) for p in maps if p is not None], voxel_size_angstrom, files
    )
    if mismatch:
        warn(mismatch)
    sym = given_symmetry
    if sym is None and files is not None and files.sampling_star is not None:
        sym = read_sampling_star(files.sampling_star).symmetry_group
        try:
            sym = validate_symmetry_name(sym)
        except ValueError as exc:
            if truth_star is not None:
                raise InputFileError(files.sampling_star, str(exc)) from exc
            warn(f"{files.sampling_star}: {exc}; pose errors could not use it")
    sym = sym or "C1"

    def load(path, *, constant_ok: bool = True):
        return None if path is None else read_checked_map(path, constant_ok=constant_ok)

    def poses(path):
        if path is None:
            return None
        read = poses_from_star(path)
        if read.image_names is None:
            raise InputFileError(path, "no _rlnImageName column: its particles cannot be matched")
        return read

    h1 = load(h1_path, constant_ok=False)
    atoms = read_atomic_model(model) if model is not None else None
    model_grid = load(model_map)
    if atoms is not None and model_grid is None:
        model_grid = model_to_map(atoms, box_size=h1.shape[-1], voxel_size_angstrom=voxel)
    refined_poses = poses(particles_path)
    true_poses = poses(truth_star)
    if refined_poses is not None and true_poses is not None:
        shared = np.isin(refined_poses.image_names, true_poses.image_names)
        if not shared.any():
            warn(
                f"{particles_path} and {truth_star} share no particle (no rlnImageName in "
                "common): no pose errors can be computed"
            )
    inputs = ValidationInputs(
        half_map_1=h1,
        half_map_2=load(h2_path, constant_ok=False),
        voxel_size_angstrom=float(voxel),
        full_map=load(full_path),
        mask=load(mask),
        truth_map=load(truth_map, constant_ok=False),
        model=atoms,
        model_map=model_grid,
        refined_poses=refined_poses,
        true_poses=true_poses,
    )
    paths = {
        "job": job,
        "half_map_1": h1_path,
        "half_map_2": h2_path,
        "full_map": full_path,
        "mask": mask,
        "truth_map": truth_map,
        "truth_star": truth_star,
        "particles_star": particles_path,
        "model": model,
        "model_map": model_map,
    }
    return LoadedInputs(
        inputs=inputs,
        symmetry=sym,
        paths={k: (None if v is None else str(v)) for k, v in paths.items()},
        warnings=tuple(warnings),
    )


_VOXEL_TOLERANCE = 1e-3  # relative; RELION writes the pixel size as a float32


def maps_voxel_size(
    paths: list[Path], given_angstrom: float | None, files: RelionJobFiles | None
) -> tuple[float, str | None]:
    """Return the voxel size of a job's maps: as given, else its model STAR, else the headers.

    Returns it with a warning (None when there is none) when a given or STAR value differs
    from what the headers agree on.

    Raises InputFileError for maps whose headers differ (:func:`_common_header_voxel_size`),
    ValueError when no voxel size is found anywhere.
    """
    header_voxel = _common_header_voxel_size(paths)
    voxel = given_angstrom
    if voxel is None and files is not None and files.model_star is not None:
        voxel = read_model_star(files.model_star).pixel_size_angstrom
    warning = None
    if voxel is None:
        voxel = header_voxel
    elif header_voxel and abs(voxel - header_voxel) > _VOXEL_TOLERANCE * header_voxel:
        warning = f"using {voxel:g} A per voxel although the map headers give {header_voxel:g} A"
    if not voxel or not math.isfinite(voxel) or voxel <= 0:
        raise ValueError(f"{paths[0]} has no voxel size in its header: give the voxel size")
    return float(voxel), warning


def read_checked_map(path: str | Path, *, constant_ok: bool = True) -> np.ndarray:
    """Read a map as float64, refusing NaN or infinite voxels.

    And a constant map unless ``constant_ok`` (no FSC can be computed from one). Raises InputFileError naming the file.
    """
    array = read_map(path, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        raise InputFileError(path, f"{bad} voxel(s) are not finite (NaN or infinite)")
    if not constant_ok and array.size and array.min() == array.max():
        raise InputFileError(
            path, f"the map is constant (every voxel {array.flat[0]:g}): no FSC can be computed"
        )
    return array


def _common_header_voxel_size(paths: list[Path]) -> float | None:
    """Return the voxel size the maps' headers agree on (headers without one skipped), or None.

    Raises InputFileError for a missing or unreadable file, or a header whose voxel size
    differs from the first map's (by more than 0.1 %).
    """
    reference: tuple[Path, float] | None = None
    for path in paths:
        if not path.is_file():
            raise InputFileError(path, "file does not exist")
        size = read_map_header(path).voxel_size_angstrom
        if not size or not math.isfinite(size) or size <= 0:
            continue
        if reference is None:
            reference = (path, size)
        elif abs(size - reference[1]) > _VOXEL_TOLERANCE * reference[1]:
            raise InputFileError(
                path,
                f"voxel size {size:g} A in the header, but {reference[0]} has "
                f"{reference[1]:g} A: the maps must be on one grid",
            )
    return None if reference is None else reference[1]
