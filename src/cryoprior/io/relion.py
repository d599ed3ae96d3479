"""An auto-refine's files: everything RELION writes around the external reconstruction.

The per-iteration files relion_refine writes (``<out>_itNNN_sampling.star``,
``_optimiser.star``, ``_half1_model.star`` / ``_model.star`` and ``_data.star``; an external
program sees those of iteration N-1 while iteration N is reconstructed), the particles and
optics tables, ``run.out`` progress, the final maps and job discovery. The job STAR of one
external-reconstruction call is :mod:`cryoprior.io.relion_extrec`'s. RELION 3.1 (``# version
30001``), 4.0 and 5.0 (``# version 50001``); see the design note ``relion_extrec.md``.

Units, as found in files written by RELION 3.1.3 (Debian build):

* ``rlnOffsetRange`` / ``rlnOffsetStep`` in ``_sampling.star`` are in Angstrom (the
  command line ``--offset_range 2 --offset_step 2`` at 4 A/px gives 8.0 in the file).
* ``rlnBestResolutionThusFar`` in ``_optimiser.star`` is a spatial frequency in 1/A
  (0.046875 = 1/21.33 A); iteration 0 holds RELION's placeholder 0.001001 = 1/999 A.
* ``rlnCurrentResolution`` in ``_model.star`` is in Angstrom (21.333333), although the
  label's documentation says 1/A; iteration 0 holds ``inf``.
* ``rlnResolution`` in the ``model_class_N`` tables is in 1/A (shell i: i / (N * pixel)).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryoprior.errors import InputFileError
from cryoprior.io.star import (
    NONE_STRINGS,
    list_block_reader,
    loop_column,
    read_star,
    require_block,
    star_version,
    to_bool,
    to_float,
    to_int,
    to_str,
)
from cryoprior.poses import Poses, poses_from_particles

__all__ = [
    "IterationFiles",
    "ModelInfo",
    "OptimiserInfo",
    "ParticlesTable",
    "RelionJobFiles",
    "RunOutProgress",
    "SamplingInfo",
    "final_half_map_paths",
    "final_map_path",
    "find_iteration_files",
    "find_relion_job_files",
    "finished_run_map",
    "last_iteration",
    "latest_optimiser_star",
    "poses_from_star",
    "read_model_star",
    "read_optimiser_star",
    "read_particles_star",
    "read_run_out",
    "read_sampling_star",
    "run_err_path",
    "run_out_path",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingInfo:
    """``<out>_itNNN_sampling.star``, block ``sampling_general`` (``HealpixSampling::write``).

    Attributes
    ----------
    star_path: the file read.
    healpix_order: ``rlnHealpixOrder``, the order *before* adaptive oversampling (coarse
        angular step 60 / 2**order degrees).
    healpix_order_original: ``rlnHealpixOrderOriginal`` (the ``--healpix_order`` of the
        run), or None if absent.
    psi_step_degrees: ``rlnPsiStep``.
    offset_range_angstrom, offset_step_angstrom: ``rlnOffsetRange`` / ``rlnOffsetStep``
        (Angstrom in RELION 3.1+, although the command line takes pixels).
    symmetry_group: ``rlnSymmetryGroup`` (e.g. ``"C1"``).
    is_3d: ``rlnIs3DSampling``.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.
    """

    star_path: Path
    healpix_order: int
    healpix_order_original: int | None
    psi_step_degrees: float
    offset_range_angstrom: float
    offset_step_angstrom: float
    symmetry_group: str
    is_3d: bool
    version: int | None = None


def read_sampling_star(path: str | Path) -> SamplingInfo:
    """Read ``<out>_itNNN_sampling.star`` (RELION 3.1, 4.0, 5.0).

    Raises InputFileError naming the file for a missing file, block or label, or a
    malformed value.

    Example
    -------
    >>> info = read_sampling_star("Refine3D/job001/run_it004_sampling.star")  # doctest: +SKIP
    >>> info.healpix_order, info.offset_step_angstrom  # doctest: +SKIP
    (1, 8.0)
    """
    path = Path(path)
    label = list_block_reader(read_star(path), "sampling_general", path)
    return SamplingInfo(
        star_path=path,
        healpix_order=label("rlnHealpixOrder", to_int),
        healpix_order_original=label("rlnHealpixOrderOriginal", to_int, required=False),
        psi_step_degrees=label("rlnPsiStep", to_float),
        offset_range_angstrom=label("rlnOffsetRange", to_float),
        offset_step_angstrom=label("rlnOffsetStep", to_float),
        symmetry_group=label("rlnSymmetryGroup", to_str),
        is_3d=label("rlnIs3DSampling", to_bool),
        version=star_version(path),
    )


@dataclass(frozen=True)
class OptimiserInfo:
    """``<out>_itNNN_optimiser.star``, block ``optimiser_general`` (``MlOptimiser::write``).

    Attributes
    ----------
    star_path: the file read.
    current_iteration: ``rlnCurrentIteration``.
    do_auto_refine: ``rlnDoAutoRefine``.
    do_split_random_halves: ``rlnDoSplitRandomHalves`` (gold-standard halves).
    auto_local_searches_healpix_order: ``rlnAutoLocalSearchesHealpixOrder``
        (``--auto_local_healpix_order``); local searches once the sampling's healpix
        order reaches it.
    has_converged: ``rlnHasConverged``.
    particle_diameter_angstrom: ``rlnParticleDiameter``.
    solvent_mask_name: ``rlnSolventMaskName``; None when RELION wrote ``None`` (no mask).
    do_solvent_fsc_correction: ``rlnDoSolventFscCorrection``, None if absent.
    do_external_reconstruct: ``rlnDoExternalReconstruct``, None if absent.
    best_resolution_angstrom: 1 / ``rlnBestResolutionThusFar`` (the file holds a spatial
        frequency in 1/A); None if absent or not positive. Iteration 0 holds RELION's
        placeholder 1/999 A, i.e. 999 A here.
    command_line: relion_refine's arguments from the file's second comment line
        (``--o Refine3D/job001/run --auto_refine ...``, without the leading ``#``), or
        None if the file has no such line.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.
    """

    star_path: Path
    current_iteration: int
    do_auto_refine: bool
    do_split_random_halves: bool
    auto_local_searches_healpix_order: int
    has_converged: bool
    particle_diameter_angstrom: float
    solvent_mask_name: str | None = None
    do_solvent_fsc_correction: bool | None = None
    do_external_reconstruct: bool | None = None
    best_resolution_angstrom: float | None = None
    command_line: str | None = None
    version: int | None = None


def _optimiser_command_line(path: Path) -> str | None:
    """Return the second of the leading comment lines (``# --o ...``), if any.

    The first is ``# RELION optimiser; version ...``, the second the command line.

    This reads comments only; the data blocks are parsed by starfile.
    """
    comments: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("#") or stripped.startswith("# version"):
                break
            comments.append(stripped)
            if len(comments) == 2:
                break
    if len(comments) < 2:
        return None
    command = comments[1].lstrip("#").strip()
    return command or None


def read_optimiser_star(path: str | Path) -> OptimiserInfo:
    """Read ``<out>_itNNN_optimiser.star`` (RELION 3.1, 4.0, 5.0).

    Raises InputFileError naming the file for a missing file, block or label, or a
    malformed value.

    Example
    -------
    >>> info = read_optimiser_star("Refine3D/job001/run_it004_optimiser.star")  # doctest: +SKIP
    >>> info.auto_local_searches_healpix_order, info.best_resolution_angstrom  # doctest: +SKIP
    (4, 21.333...)
    """
    path = Path(path)
    label = list_block_reader(read_star(path), "optimiser_general", path)

    mask = label("rlnSolventMaskName", to_str, required=False)
    best = label("rlnBestResolutionThusFar", to_float, required=False)
    return OptimiserInfo(
        star_path=path,
        current_iteration=label("rlnCurrentIteration", to_int),
        do_auto_refine=label("rlnDoAutoRefine", to_bool),
        do_split_random_halves=label("rlnDoSplitRandomHalves", to_bool),
        auto_local_searches_healpix_order=label("rlnAutoLocalSearchesHealpixOrder", to_int),
        has_converged=label("rlnHasConverged", to_bool),
        particle_diameter_angstrom=label("rlnParticleDiameter", to_float),
        solvent_mask_name=None if mask is None or mask in NONE_STRINGS else mask,
        do_solvent_fsc_correction=label("rlnDoSolventFscCorrection", to_bool, required=False),
        do_external_reconstruct=label("rlnDoExternalReconstruct", to_bool, required=False),
        best_resolution_angstrom=1.0 / best if best is not None and best > 0 else None,
        command_line=_optimiser_command_line(path),
        version=star_version(path),
    )


@dataclass(frozen=True)
class ModelInfo:
    """``<out>_itNNN_half1_model.star`` (or ``_model.star``): general and first class blocks.

    Block ``model_general`` and the first class table ``model_class_1`` (``MlModel::write``).

    Attributes
    ----------
    star_path: the file read.
    current_resolution_angstrom: ``rlnCurrentResolution``; the value is in Angstrom although
        the label's documentation says 1/A (``inf`` at iteration 0).
    current_image_size: ``rlnCurrentImageSize`` (0 at iteration 0).
    pixel_size_angstrom: ``rlnPixelSize``.
    padding_factor: ``rlnPaddingFactor``.
    original_image_size: ``rlnOriginalImageSize`` (box N).
    orientational_prior_mode: ``rlnOrientationalPriorMode`` (0 global, 1 local searches).
    nr_classes: ``rlnNrClasses``.
    spectral_index: (n_shells,) int64 ``rlnSpectralIndex`` of ``model_class_1``.
    resolution_per_angstrom: (n_shells,) float64 ``rlnResolution`` (1/A).
    gold_standard_fsc: (n_shells,) float64 ``rlnGoldStandardFsc``.
    ssnr: (n_shells,) float64 ``rlnSsnrMap``.
    reference_tau2: (n_shells,) float64 ``rlnReferenceTau2``.
    reference_sigma2: (n_shells,) float64 ``rlnReferenceSigma2``.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.

    Each array is None when its column is absent; n_shells = N//2 + 1 in RELION's files.
    """

    star_path: Path
    current_resolution_angstrom: float
    current_image_size: int
    pixel_size_angstrom: float
    padding_factor: float
    original_image_size: int
    orientational_prior_mode: int
    nr_classes: int
    spectral_index: np.ndarray | None = None
    resolution_per_angstrom: np.ndarray | None = None
    gold_standard_fsc: np.ndarray | None = None
    ssnr: np.ndarray | None = None
    reference_tau2: np.ndarray | None = None
    reference_sigma2: np.ndarray | None = None
    version: int | None = None


def read_model_star(path: str | Path) -> ModelInfo:
    """Read ``<out>_itNNN_half1_model.star`` / ``<out>_model.star`` (RELION 3.1, 4.0, 5.0).

    Raises InputFileError naming the file for a missing file, block (``model_general``,
    ``model_class_1``) or label, or a malformed value.

    Example
    -------
    >>> model = read_model_star("Refine3D/job001/run_it004_half1_model.star")  # doctest: +SKIP
    >>> model.current_resolution_angstrom, model.reference_tau2.shape  # doctest: +SKIP
    (21.333333, (17,))
    """
    path = Path(path)
    blocks = read_star(path)
    label = list_block_reader(blocks, "model_general", path)
    table_name = "model_class_1"
    table = require_block(blocks, table_name, path)
    if isinstance(table, dict):  # a single shell written as a simple block
        table = pd.DataFrame([table])

    def col(label: str, dtype=np.float64) -> np.ndarray | None:
        return loop_column(table, label, dtype, path, table_name)

    return ModelInfo(
        star_path=path,
        current_resolution_angstrom=label("rlnCurrentResolution", to_float),
        current_image_size=label("rlnCurrentImageSize", to_int),
        pixel_size_angstrom=label("rlnPixelSize", to_float),
        padding_factor=label("rlnPaddingFactor", to_float),
        original_image_size=label("rlnOriginalImageSize", to_int),
        orientational_prior_mode=label("rlnOrientationalPriorMode", to_int),
        nr_classes=label("rlnNrClasses", to_int),
        spectral_index=col("rlnSpectralIndex", np.int64),
        resolution_per_angstrom=col("rlnResolution"),
        gold_standard_fsc=col("rlnGoldStandardFsc"),
        ssnr=col("rlnSsnrMap"),
        reference_tau2=col("rlnReferenceTau2"),
        reference_sigma2=col("rlnReferenceSigma2"),
        version=star_version(path),
    )


@dataclass(frozen=True)
class ParticlesTable:
    """A RELION 3.1+ particles STAR (e.g. ``<out>_itNNN_data.star``): ``optics`` + ``particles``.

    Attributes
    ----------
    star_path: the file read.
    optics: the ``data_optics`` table (a copy; one row per optics group).
    particles: the ``data_particles`` table (a copy; one row per particle).
    pixel_size_angstrom: (n_particles,) float64, the pixel size of each particle's optics
        group (``rlnImagePixelSize``, else ``rlnPixelSize`` of the optics table).
    image_size: (n_particles,) int64, ``rlnImageSize`` of each particle's optics group.
    version: the ``# version`` comment (30001 for 3.1/4.0, 50001 for 5.0) or None.
    """

    star_path: Path
    optics: pd.DataFrame
    particles: pd.DataFrame
    pixel_size_angstrom: np.ndarray
    image_size: np.ndarray
    version: int | None = None

    @property
    def n_particles(self) -> int:
        """Number of particles (rows of the particles table)."""
        return len(self.particles)

    @property
    def common_pixel_size_angstrom(self) -> float | None:
        """The pixel size if all particles share one, else None."""
        unique = np.unique(self.pixel_size_angstrom)
        return float(unique[0]) if unique.size == 1 else None


def read_particles_star(path: str | Path) -> ParticlesTable:
    """Read a RELION 3.1+ particles STAR with ``data_optics`` and ``data_particles`` blocks.

    A file without an optics block (RELION 3.0 and earlier) is rejected: convert it with
    ``relion_convert_star`` first.

    Raises InputFileError naming the file for a missing file, block or label, an optics
    group used by a particle but absent from the optics table, or a malformed value.

    Example
    -------
    >>> table = read_particles_star("Refine3D/job001/run_it004_data.star")  # doctest: +SKIP
    >>> table.common_pixel_size_angstrom, int(table.image_size[0])  # doctest: +SKIP
    (4.0, 32)
    """
    path = Path(path)
    return _particles_table(path, read_star(path))


def _particles_table(path: Path, blocks: dict) -> ParticlesTable:
    """:func:`read_particles_star` on the blocks ``read_star(path)`` returned."""
    if "optics" not in blocks:
        found = ", ".join(f"data_{b}" for b in blocks) or "none"
        raise InputFileError(
            path,
            "no data_optics block: RELION 3.1+ format is required "
            f"(found: {found}; convert older files with relion_convert_star)",
        )
    optics = require_block(blocks, "optics", path)
    particles = require_block(blocks, "particles", path)
    if isinstance(optics, dict):
        optics = pd.DataFrame([optics])
    if isinstance(particles, dict):
        particles = pd.DataFrame([particles])
    optics = optics.copy()
    particles = particles.copy()

    group_ids = loop_column(optics, "rlnOpticsGroup", np.int64, path, "optics", required=True)
    if "rlnImagePixelSize" in optics.columns:
        pixel_label = "rlnImagePixelSize"
    elif "rlnPixelSize" in optics.columns:
        pixel_label = "rlnPixelSize"
    else:
        raise InputFileError(
            path, "missing column _rlnImagePixelSize (or _rlnPixelSize) in data_optics"
        )
    group_pixel = loop_column(optics, pixel_label, np.float64, path, "optics", required=True)
    group_size = loop_column(optics, "rlnImageSize", np.int64, path, "optics", required=True)
    if len(np.unique(group_ids)) != len(group_ids):
        raise InputFileError(path, "duplicate _rlnOpticsGroup numbers in data_optics")

    if "rlnOpticsGroup" in particles.columns:
        particle_groups = loop_column(
            particles, "rlnOpticsGroup", np.int64, path, "particles", required=True
        )
    elif len(group_ids) == 1:
        particle_groups = np.full(len(particles), group_ids[0], dtype=np.int64)
    else:
        raise InputFileError(
            path, "missing column _rlnOpticsGroup in data_particles (several optics groups)"
        )
    lookup = {int(g): i for i, g in enumerate(group_ids)}
    unknown = sorted({int(g) for g in particle_groups} - lookup.keys())
    if unknown:
        raise InputFileError(
            path, f"particles refer to optics groups {unknown} that data_optics does not define"
        )
    rows = np.array([lookup[int(g)] for g in particle_groups], dtype=np.int64)
    return ParticlesTable(
        star_path=path,
        optics=optics,
        particles=particles,
        pixel_size_angstrom=group_pixel[rows],
        image_size=group_size[rows],
        version=star_version(path),
    )


def poses_from_star(path: str | Path) -> Poses:
    """Read the particle poses of a STAR file.

    A RELION 3.1+ particles file (``data_optics`` + ``data_particles``, read by
    :func:`read_particles_star`; origins in pixels are converted with each particle's optics
    pixel size), or any file with a loop of ``rlnAngleRot``, ``rlnAngleTilt``,
    ``rlnAnglePsi`` (the ``particles`` block if there is one, else the first loop). See
    :func:`cryoprior.poses.poses_from_particles` for the columns read.

    Raises InputFileError naming the file for a missing file, no loop block, a missing angle
    column, a malformed value, or origins in pixels (``rlnOriginX``) without optics.
    """
    path = Path(path)
    blocks = read_star(path)
    if "optics" in blocks:
        table = _particles_table(path, blocks)
        return poses_from_particles(
            table.particles, pixel_size_angstrom=table.pixel_size_angstrom, source=path
        )
    particles = blocks.get("particles")
    if not isinstance(particles, pd.DataFrame):
        loops = [b for b in blocks.values() if isinstance(b, pd.DataFrame)]
        if not loops:
            raise InputFileError(path, "no loop block with particle angles")
        particles = loops[0]
    return poses_from_particles(particles, source=path)


@dataclass(frozen=True)
class IterationFiles:
    """Paths of the per-iteration STAR files of ``relion_refine --o <output_root>``.

    Paths may not exist (e.g. the files of iteration N are written only after its
    maximisation); ``exists()`` checks them when called.

    Attributes
    ----------
    output_root: the ``--o`` root (e.g. ``Refine3D/job001/run``).
    iteration: the iteration number.
    sampling_star: ``<root>_itNNN_sampling.star``.
    optimiser_star: ``<root>_itNNN_optimiser.star``.
    data_star: ``<root>_itNNN_data.star``.
    half1_model_star, half2_model_star: ``<root>_itNNN_half{1,2}_model.star`` (split halves).
    model_star: ``<root>_itNNN_model.star`` (runs without split halves).
    """

    output_root: Path
    iteration: int
    sampling_star: Path
    optimiser_star: Path
    data_star: Path
    half1_model_star: Path
    half2_model_star: Path
    model_star: Path

    def exists(self) -> dict[str, bool]:
        """For each path attribute, whether it is an existing file now."""
        names = (
            "sampling_star",
            "optimiser_star",
            "data_star",
            "half1_model_star",
            "half2_model_star",
            "model_star",
        )
        return {name: getattr(self, name).is_file() for name in names}

    @property
    def existing_model_star(self) -> Path | None:
        """``half1_model_star`` if it exists, else ``model_star`` if it exists, else None."""
        for candidate in (self.half1_model_star, self.model_star):
            if candidate.is_file():
                return candidate
        return None


def find_iteration_files(output_root: str | Path, iteration: int) -> IterationFiles:
    """Return the per-iteration file names relion_refine uses (``%03d`` iteration).

    Never raises for files that do not exist.

    Example
    -------
    >>> files = find_iteration_files("Refine3D/job001/run", 4)
    >>> files.sampling_star.name
    'run_it004_sampling.star'
    """
    iteration = int(iteration)
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, not {iteration}")
    root = str(output_root)
    stem = f"{root}_it{iteration:03d}"
    return IterationFiles(
        output_root=Path(root),
        iteration=iteration,
        sampling_star=Path(f"{stem}_sampling.star"),
        optimiser_star=Path(f"{stem}_optimiser.star"),
        data_star=Path(f"{stem}_data.star"),
        half1_model_star=Path(f"{stem}_half1_model.star"),
        half2_model_star=Path(f"{stem}_half2_model.star"),
        model_star=Path(f"{stem}_model.star"),
    )


def final_map_path(output_root: str | Path) -> Path:
    """Return the final joined map of an auto-refine: ``<root>_class001.mrc`` (may not exist)."""
    return Path(f"{output_root}_class001.mrc")


def final_half_map_paths(output_root: str | Path) -> tuple[Path, Path]:
    """Return the final unfiltered half-maps: ``<root>_half{1,2}_class001_unfil.mrc``."""
    return (
        Path(f"{output_root}_half1_class001_unfil.mrc"),
        Path(f"{output_root}_half2_class001_unfil.mrc"),
    )


def finished_run_map(job_dir: str | Path, run_name: str) -> Path | None:
    """Return the final map of a finished run named ``run_name`` in ``job_dir``, or None.

    A ``_ctN`` continuation of the run counts too; None when no run there has finished yet.
    """
    for path in sorted(Path(job_dir).glob(f"{run_name}*_class001.mrc")):
        suffix = path.name[len(run_name) :]
        if re.fullmatch(r"(_ct\d+)?_class001\.mrc", suffix):
            return path
    return None


def latest_optimiser_star(output_root: str | Path) -> tuple[Path, int] | None:
    """Return the newest ``<root>[_ctN]_itNNN_optimiser.star`` of a run and its iteration.

    None when the run has written none (``--continue`` starts from this file).
    """
    root = Path(output_root)
    best: tuple[Path, int] | None = None
    for path in root.parent.glob(f"{root.name}*_it[0-9][0-9][0-9]_optimiser.star"):
        match = re.fullmatch(r"(_ct\d+)?_it(\d{3,})_optimiser\.star", path.name[len(root.name) :])
        if match is None:
            continue
        number = int(match.group(2))
        if best is None or number > best[1]:
            best = (path, number)
    return best


def last_iteration(output_root: str | Path) -> int:
    """Return the number of the last iteration a run wrote (its ``half1_model`` STAR); 0: none."""
    root = Path(output_root)
    iterations = 0
    for model in root.parent.glob(f"{root.name}_it*_half1_model.star"):
        match = re.fullmatch(r"_it(\d+)_half1_model\.star", model.name[len(root.name) :])
        if match:
            iterations = max(iterations, int(match.group(1)))
    return iterations


def run_out_path(output_root: str | Path) -> Path:
    """``run.out`` of the job whose ``--o`` root is ``output_root`` (RELION's stdout there)."""
    return Path(output_root).parent / "run.out"


def run_err_path(output_root: str | Path) -> Path:
    """``run.err`` of the job whose ``--o`` root is ``output_root`` (RELION's stderr there)."""
    return Path(output_root).parent / "run.err"


@dataclass(frozen=True)
class RunOutProgress:
    """Where an auto-refine stands according to its ``run.out`` (RELION 3.1-5.0 wording).

    Attributes
    ----------
    iteration: the last "Auto-refine: Iteration= N" (None before the first).
    resolution_angstrom: the last "Auto-refine: Resolution= X".
    angular_step_degrees, local_searches: the last "Angular step= X degrees; local
        searches= true|false".
    final_resolution_angstrom: "Final resolution (without masking) is: X", once printed.
    """

    iteration: int | None = None
    resolution_angstrom: float | None = None
    angular_step_degrees: float | None = None
    local_searches: bool | None = None
    final_resolution_angstrom: float | None = None

    @property
    def finished(self) -> bool:
        """RELION printed its final resolution."""
        return self.final_resolution_angstrom is not None


_ITER_RE = re.compile(r"Auto-refine: Iteration=\s*(\d+)")
_RES_RE = re.compile(r"Auto-refine: Resolution=\s*([0-9.]+)")
_STEP_RE = re.compile(r"Angular step=\s*([0-9.eE+-]+) degrees; local searches=\s*(\w+)")
_FINAL_RES_RE = re.compile(r"Final resolution \(without masking\) is:\s*([0-9.]+)")


def read_run_out(path: str | Path) -> RunOutProgress:
    r"""Parse a ``run.out`` (missing or unreadable: nothing known yet).

    Tolerates a file being written while read (a torn last line matches nothing).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.out"
    >>> _ = path.write_text(
    ...     " Auto-refine: Iteration= 7\n"
    ...     " Auto-refine: Angular step= 1.875 degrees; local searches= true\n"
    ... )
    >>> p = read_run_out(path)
    >>> p.iteration, p.angular_step_degrees, p.local_searches, p.finished
    (7, 1.875, True, False)
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return RunOutProgress()
    iters = _ITER_RE.findall(text)
    res = _RES_RE.findall(text)
    steps = _STEP_RE.findall(text)
    final = _FINAL_RES_RE.findall(text)
    return RunOutProgress(
        iteration=int(iters[-1]) if iters else None,
        resolution_angstrom=float(res[-1]) if res else None,
        angular_step_degrees=float(steps[-1][0]) if steps else None,
        local_searches=(steps[-1][1].lower() == "true") if steps else None,
        final_resolution_angstrom=float(final[-1]) if final else None,
    )


@dataclass(frozen=True)
class RelionJobFiles:
    """The outputs of a RELION auto-refine that validation reads.

    Attributes
    ----------
    output_root: the ``--o`` root (``Refine3D/job001/run``).
    half_map_1, half_map_2: ``<root>_half{1,2}_class001_unfil.mrc`` (final), or the last
        iteration's ``<root>_itNNN_half{1,2}_class001.mrc`` for an unfinished run.
    full_map: ``<root>_class001.mrc`` (None for an unfinished run).
    particles_star: ``<root>_data.star`` or the last iteration's ``_data.star``.
    model_star: ``<root>_model.star`` / last ``_half1_model.star`` (pixel size), or None.
    sampling_star: ``<root>_sampling.star`` / last ``_sampling.star`` (symmetry), or None.
    finished: whether the final files were found.
    """

    output_root: Path
    half_map_1: Path
    half_map_2: Path
    full_map: Path | None
    particles_star: Path | None
    model_star: Path | None
    sampling_star: Path | None
    finished: bool


def find_relion_job_files(job: str | Path) -> RelionJobFiles:
    """Locate the maps and STAR files of an auto-refine from its folder or its ``--o`` root.

    A folder holding several roots (``run``, ``run_ct5``...) uses the one whose final half-map
    is newest. Without final maps, the last iteration's half-maps are used.

    Raises
    ------
    FileNotFoundError: no half-maps could be found.
    """
    job = Path(job)
    if job.is_dir():
        finals = sorted(job.glob("*_half1_class001_unfil.mrc"), key=lambda p: p.stat().st_mtime)
        if finals:
            root = Path(str(finals[-1])[: -len("_half1_class001_unfil.mrc")])
        else:
            iterations = sorted(job.glob("*_it[0-9][0-9][0-9]*_half1_class001.mrc"))
            if not iterations:
                raise FileNotFoundError(f"{job}: no RELION half-maps (*_half1_class001*.mrc)")
            root = Path(re.sub(r"_it\d+_half1_class001\.mrc$", "", str(iterations[-1])))
    else:
        root = job
    final_1, final_2 = final_half_map_paths(root)
    if final_1.is_file() and final_2.is_file():
        return RelionJobFiles(
            output_root=root,
            half_map_1=final_1,
            half_map_2=final_2,
            full_map=_existing(final_map_path(root)),
            particles_star=_existing(Path(f"{root}_data.star")),
            model_star=_existing(Path(f"{root}_model.star")),
            sampling_star=_existing(Path(f"{root}_sampling.star")),
            finished=True,
        )
    numbers = []
    for path in root.parent.glob(f"{root.name}_it*_half1_class001.mrc"):
        match = re.search(r"_it(\d+)_half1_class001\.mrc$", path.name)
        if match:
            numbers.append(int(match.group(1)))
    if not numbers:
        raise FileNotFoundError(f"{root}: no final or per-iteration half-maps")
    stem = f"{root}_it{max(numbers):03d}"
    logger.warning("%s has no final maps: using iteration %d", root, max(numbers))
    last = find_iteration_files(root, max(numbers))
    return RelionJobFiles(
        output_root=root,
        half_map_1=Path(f"{stem}_half1_class001.mrc"),
        half_map_2=Path(f"{stem}_half2_class001.mrc"),
        full_map=None,
        particles_star=_existing(last.data_star),
        model_star=_existing(last.half1_model_star),
        sampling_star=_existing(last.sampling_star),
        finished=False,
    )


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None
