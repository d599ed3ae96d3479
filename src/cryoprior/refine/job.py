"""``cryoprior refine`` as a library: from the user's options and the data to a RELION command.

:func:`plan_refine` reads and checks the inputs (:mod:`cryoprior.refine.inputs`), takes what
the data say (pixel size, box, CTF, a default diameter), applies a sampling preset and the
options passed through to RELION, and returns a :class:`RefinePlan` (the
:class:`~cryoprior.refine.relion.AutoRefineSettings`, the hook command, what was decided and
why). :func:`prepare_job_folder` refuses to start over an earlier run unless asked to continue
or overwrite it. :func:`validate_refinement` validates the finished job. The CLI
(``cli/experiments.py``) only prints, reads the environment and handles signals.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.io.mrc import read_map_header
from cryoprior.io.relion import (
    finished_run_map,
    read_particles_star,
    run_err_path,
    run_out_path,
)
from cryoprior.refine.cases import MODES, hook_command
from cryoprior.refine.inputs import (
    ParticleData,
    RefineInputError,
    check_image_files,
    check_map_against_particles,
    default_particle_diameter_angstrom,
    particle_data,
)
from cryoprior.refine.relion import AutoRefineSettings, RelionVersion, option_names
from cryoprior.validate.symmetry import validate_symmetry_name

__all__ = [
    "PRESETS",
    "RECORD_FILE_NAME",
    "RESERVED_OPTIONS",
    "RefinePlan",
    "RefineRequest",
    "SamplingPreset",
    "existing_run_files",
    "plan_refine",
    "prepare_job_folder",
    "read_record",
    "threads_per_rank",
    "validate_refinement",
    "write_record",
    "write_rescaled_reference",
]

logger = logging.getLogger(__name__)

RECORD_FILE_NAME = "cryoprior_refine.json"
RUN_NAME = "run"
RESCALED_REFERENCE_NAME = "reference_rescaled.mrc"


@dataclass(frozen=True)
class SamplingPreset:
    """Angular and translational sampling of an auto-refine (RELION's option values).

    Attributes
    ----------
    name: the preset's name.
    healpix_order: ``--healpix_order`` of the global searches (2: 15 deg, 7.5 deg with
        oversampling 1).
    auto_local_healpix_order: ``--auto_local_healpix_order`` (4: local searches from 3.75 deg,
        1.8 deg oversampled).
    offset_range_pixels: ``--offset_range``.
    offset_step_pixels: ``--offset_step`` (with oversampling 1 the search steps half of it).
    description: one line for the help and the README.
    """

    name: str
    healpix_order: int
    auto_local_healpix_order: int
    offset_range_pixels: float
    offset_step_pixels: float
    description: str


PRESETS: dict[str, SamplingPreset] = {
    p.name: p
    for p in (
        SamplingPreset(
            "default",
            2,
            4,
            5.0,
            2.0,
            "RELION's GUI defaults for auto-refine: initial sampling 7.5 deg, local searches "
            "from 1.8 deg, offsets 5 px in 1 px steps (--healpix_order 2 "
            "--auto_local_healpix_order 4 --offset_range 5 --offset_step 2, as the GUI passes "
            "them with oversampling 1)",
        ),
        SamplingPreset(
            "fast",
            1,
            3,
            3.0,
            1.5,
            "the benchmark's coarse sampling: 15 deg global searches, local searches from "
            "3.75 deg, offsets 3 px in 0.75 px steps (--healpix_order 1 "
            "--auto_local_healpix_order 3 --offset_range 3 --offset_step 1.5)",
        ),
    )
}

# RELION options cryoprior sets from its own options: passing them after -- is refused with a
# pointer to the cryoprior option (or to the reason)
RESERVED_OPTIONS: dict[str, str] = {
    "--o": "--o",
    "--i": "the PARTICLES argument",
    "--ref": "--ref",
    "--continue": "--continue",
    "--auto_refine": "(always on)",
    "--split_random_halves": "(always on)",
    "--external_reconstruct": "(always on)",
    "--sym": "--sym",
    "--solvent_mask": "--mask",
    "--particle_diameter": "--diameter",
    "--ctf": "--ctf/--no-ctf",
    "--ctf_intact_first_peak": "--ctf-intact-first-peak",
    "--ctf_corrected_ref": "--ref-ctf-corrected/--ref-not-ctf-corrected",
    "--j": "--threads",
    "--random_seed": "--seed",
    "--ini_high": "--ini-high",
}


@dataclass(frozen=True)
class RefineRequest:
    """What the user asked ``cryoprior refine`` for (the CLI's options, unprocessed).

    ``ctf``: None follows the data (on when the particles have defocus columns).
    ``ini_high_angstrom``: None is RELION's GUI default, 60 A.
    ``threads``: None is ``cpu_count // (mpi_ranks - 1)``.
    ``extra_args``: ``relion_refine`` options passed through (after ``--``).
    ``absolute_greyscale``: the reference is on RELION's absolute greyscale (it came from a
    RELION refinement of these particles); otherwise ``--firstiter_cc`` (the GUI's default).
    ``reference_ctf_corrected``: with CTF correction, the reference is free of CTF effects (a
    map from RELION, a model or a database: the usual case; ``--ctf_corrected_ref``).
    """

    particles_star: Path
    reference_map: Path
    mode: str = "prior"
    symmetry: str = "C1"
    diameter_angstrom: float | None = None
    ini_high_angstrom: float | None = None
    preset: str = "default"
    mask: Path | None = None
    ctf: bool | None = None
    ctf_intact_first_peak: bool = False
    reference_ctf_corrected: bool = True
    rescale_reference: bool = False
    absolute_greyscale: bool = False
    output: Path = Path("Refine3D/cryoprior")
    mpi_ranks: int = 3
    threads: int | None = None
    cpu_count: int = 1
    seed: int = 0
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefinePlan:
    """A checked refinement, ready to run.

    Attributes
    ----------
    settings: the auto-refine (paths relative to the project folder).
    hook: the value of RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE.
    particles: what the particles STAR says.
    preset: the sampling preset used (passed-through options may override it).
    diameter_from_data: the diameter was not given (the default of
        :func:`~cryoprior.refine.inputs.default_particle_diameter_angstrom`).
    rescale_reference: the reference must be resampled first (to ``settings.reference_map``);
        the one-line reason.
    notes: one-line decisions for the user (CTF on/off and why, the diameter, ...).
    stacks_checked: image stacks found.
    """

    settings: AutoRefineSettings
    hook: str
    particles: ParticleData
    preset: SamplingPreset
    diameter_from_data: bool
    rescale_reference: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    stacks_checked: int = 0


def threads_per_rank(cpu_count: int, mpi_ranks: int) -> int:
    """Threads for each of the ``mpi_ranks - 1`` working ranks.

    ``cpu_count // (mpi_ranks - 1)``, at least 1 (the leader does no expectation work).
    """
    workers = max(1, mpi_ranks - 1)
    return max(1, int(cpu_count) // workers)


def _check_extra_args(extra: Sequence[str], version: RelionVersion | None, mode: str) -> None:
    if extra and not extra[0].startswith("-"):
        raise RefineInputError(
            f"unexpected argument {extra[0]!r}: relion_refine options go after -- "
            "(e.g. cryoprior refine p.star --ref r.mrc -- --gpu 0)"
        )
    for name in sorted(option_names(extra)):
        if name in RESERVED_OPTIONS:
            raise RefineInputError(
                f"{name} cannot be passed through to relion_refine: cryoprior refine sets it "
                f"(use {RESERVED_OPTIONS[name]})"
            )
    if "--blush" in extra:
        if version is not None and not version.has_blush:
            raise RefineInputError(
                f"--blush needs RELION 5.0 or later; relion_refine_mpi on PATH is {version}"
            )
        if mode != "relion":
            raise RefineInputError(
                "--blush replaces the external reconstruction (RELION then never calls "
                f"cryoprior's hook): use --mode relion -- --blush, or drop --blush for --mode "
                f"{mode}"
            )


def _check_mask(path: Path, particles: ParticleData) -> None:
    from cryoprior.io.mrc import read_map

    problem = check_map_against_particles(read_map_header(path), particles, what="mask")
    if problem is not None:
        raise RefineInputError(problem + " (masks are not resampled: make it on their grid)")
    mask = read_map(path)
    low, high = float(np.nanmin(mask)), float(np.nanmax(mask))
    if not (np.isfinite(mask).all() and low >= -1e-3 and high <= 1.0 + 1e-3):
        raise InputFileError(path, f"a solvent mask holds values 0..1, this one {low:g}..{high:g}")
    if high <= 0.5:
        raise InputFileError(path, "the mask is empty (no value above 0.5)")


def plan_refine(
    request: RefineRequest,
    *,
    workdir: str | Path,
    hook_executable: str,
    version: RelionVersion | None = None,
) -> RefinePlan:
    """Check everything RELION will read and decide the refinement.

    Parameters
    ----------
    request: the user's options.
    workdir: RELION's project folder (image paths resolve relative to it).
    hook_executable: absolute path of ``cryoprior-extrec``.
    version: RELION on PATH (None: not known; version-specific checks are skipped).

    Raises
    ------
    InputFileError: a file missing or malformed (one line naming it).
    RefineInputError: files or options that do not fit together.
    ValueError: an unknown mode, preset or symmetry.
    """
    r = request
    if r.mode not in MODES:
        raise ValueError(f"unknown mode {r.mode!r}; choose one of {', '.join(MODES)}")
    if r.preset not in PRESETS:
        raise ValueError(f"unknown preset {r.preset!r}; choose one of {', '.join(PRESETS)}")
    symmetry = validate_symmetry_name(r.symmetry, rotations_only=False)
    if r.mpi_ranks < 3:
        raise RefineInputError(
            f"--mpi {r.mpi_ranks}: a gold-standard auto-refine needs at least 3 MPI ranks "
            "(a leader and one per half-set)"
        )
    if r.threads is not None and r.threads < 1:
        raise RefineInputError(f"--threads {r.threads}: must be at least 1")
    _check_extra_args(r.extra_args, version, r.mode)
    workdir = Path(workdir)
    notes: list[str] = []

    table = read_particles_star(workdir / r.particles_star)
    particles = particle_data(table)
    stacks = check_image_files(table, workdir)

    reference = read_map_header(workdir / r.reference_map)
    problem = check_map_against_particles(reference, particles)
    reference_path = str(r.reference_map)
    if problem is not None:
        if not r.rescale_reference:
            raise RefineInputError(
                problem + " (give --rescale-ref to resample the reference to the particles)"
            )
        reference_path = str(r.output / RESCALED_REFERENCE_NAME)
        notes.append(f"{problem}: resampled to {reference_path}")

    if r.mask is not None:
        _check_mask(workdir / r.mask, particles)

    if r.ctf is None:
        ctf = particles.has_ctf
        notes.append(
            "CTF correction on (--ctf): the particles have defocus columns"
            if ctf
            else "CTF correction off: the particles have no _rlnDefocusU/_rlnDefocusV"
        )
    else:
        ctf = r.ctf
        if ctf and not particles.has_ctf:
            raise InputFileError(
                particles.star_path,
                "--ctf asked for, but data_particles has no _rlnDefocusU/_rlnDefocusV columns",
            )
        notes.append(f"CTF correction {'on' if ctf else 'off'} (as asked)")
    if r.ctf_intact_first_peak and not ctf:
        raise RefineInputError("--ctf-intact-first-peak needs CTF correction")
    if ctf and not r.reference_ctf_corrected:
        notes.append(
            "the reference is taken as CTF-affected (--ref-not-ctf-corrected): RELION compares "
            "it with the images without their CTFs in the first iteration"
        )

    extent = particles.box_size * particles.pixel_size_angstrom
    if r.diameter_angstrom is None:
        diameter = default_particle_diameter_angstrom(
            particles.box_size, particles.pixel_size_angstrom
        )
        notes.append(f"particle diameter {diameter:g} A (not given: 80 % of the {extent:g} A box)")
    else:
        diameter = float(r.diameter_angstrom)
        if not (math.isfinite(diameter) and 0 < diameter <= extent):
            raise RefineInputError(
                f"--diameter {diameter:g}: must be above 0 and at most the box "
                f"({particles.box_size} px x {particles.pixel_size_angstrom:g} A = {extent:g} A)"
            )

    preset = PRESETS[r.preset]
    threads = r.threads if r.threads is not None else threads_per_rank(r.cpu_count, r.mpi_ranks)
    ini_high = 60.0 if r.ini_high_angstrom is None else float(r.ini_high_angstrom)
    settings = AutoRefineSettings(
        particles_star=str(r.particles_star),
        reference_map=reference_path,
        output_root=str(r.output / RUN_NAME),
        particle_diameter_angstrom=diameter,
        symmetry=symmetry,
        ini_high_angstrom=ini_high,
        padding_factor=2.0,
        healpix_order=preset.healpix_order,
        auto_local_healpix_order=preset.auto_local_healpix_order,
        offset_range_pixels=preset.offset_range_pixels,
        offset_step_pixels=preset.offset_step_pixels,
        low_resol_join_halves_angstrom=40.0,
        oversampling=1,
        flatten_solvent=True,
        zero_mask=True,
        ctf=ctf,
        ctf_intact_first_peak=r.ctf_intact_first_peak,
        ctf_corrected_reference=r.reference_ctf_corrected,
        norm=True,
        scale=True,
        firstiter_cc=not r.absolute_greyscale,
        pool=3,
        solvent_mask=None if r.mask is None else str(r.mask),
        solvent_correct_fsc=r.mask is not None,
        random_seed=r.seed,
        mpi_ranks=r.mpi_ranks,
        threads=threads,
        extra_args=tuple(r.extra_args),
    )
    return RefinePlan(
        settings=settings,
        hook=hook_command(r.mode, hook_executable),
        particles=particles,
        preset=preset,
        diameter_from_data=r.diameter_angstrom is None,
        rescale_reference=problem if problem is not None else None,
        notes=tuple(notes),
        stacks_checked=stacks,
    )


def write_rescaled_reference(plan: RefinePlan, request: RefineRequest, workdir: Path) -> float:
    """Resample the request's reference to the particles' grid; return the pixel size reached.

    Written (atomically) to ``plan.settings.reference_map``.
    """
    from cryoprior.io.mrc import read_map, write_map_atomic
    from cryoprior.refine.inputs import rescaled_reference

    header = read_map_header(workdir / request.reference_map)
    volume = read_map(workdir / request.reference_map)
    voxel = header.voxel_size_angstrom
    if voxel <= 0:
        raise InputFileError(header.path, "no voxel size in the header: cannot resample it")
    out, reached = rescaled_reference(
        volume,
        voxel_size_angstrom=voxel,
        box_size=plan.particles.box_size,
        pixel_size_angstrom=plan.particles.pixel_size_angstrom,
    )
    write_map_atomic(
        workdir / plan.settings.reference_map,
        out,
        voxel_size_angstrom=plan.particles.pixel_size_angstrom,
    )
    return reached


def existing_run_files(job_dir: str | Path, run_name: str = RUN_NAME) -> list[Path]:
    """List the files an earlier ``cryoprior refine`` run left in its job folder.

    RELION's standard output and error files and ``<run>_*`` outputs, the hook's log and
    rendezvous folder, the run record, the validation folder and a resampled reference. Other
    files (a mask, notes) are not listed.
    """
    from cryoprior.io.hook_log import LOG_FILE_NAME

    job = Path(job_dir)
    if not job.is_dir():
        return []
    names = {run_out_path(job / run_name).name, run_err_path(job / run_name).name}
    names |= {LOG_FILE_NAME, RECORD_FILE_NAME, ".cryoprior_pair"}
    names |= {"validation", RESCALED_REFERENCE_NAME}
    found = []
    for path in sorted(job.iterdir()):
        if path.name in names or path.name.startswith(f"{run_name}_"):
            found.append(path)
    return found


def prepare_job_folder(
    job_dir: str | Path, *, resume: bool, overwrite: bool, mode: str
) -> list[Path]:
    """Make sure a run may start in ``job_dir``; returns the files removed (``overwrite``).

    A folder holding an earlier run (see :func:`existing_run_files`) is refused unless
    ``resume`` (continue that run: it must not have finished and must have been run in the same
    ``mode``) or ``overwrite`` (its files are removed first, so that a later ``--continue``
    cannot pick up the old run's iterations).

    Raises RefineInputError with the one-line reason.
    """
    job = Path(job_dir)
    if resume and overwrite:
        raise RefineInputError("--continue and --overwrite exclude each other")
    if job.exists() and not job.is_dir():
        raise RefineInputError(f"{job}: --o must be a folder, this is a file")
    files = existing_run_files(job)
    if not files:
        return []
    if resume:
        done = finished_run_map(job, RUN_NAME)
        if done is not None:
            raise RefineInputError(
                f"{job}: the run has finished ({done.name}); --overwrite starts it again"
            )
        record = read_record(job)
        if record is not None and record.get("mode") not in (None, mode):
            raise RefineInputError(
                f"{job}: this run was started with --mode {record['mode']}; continue it with "
                f"--mode {record['mode']} (or --overwrite to start again in --mode {mode})"
            )
        return []
    if not overwrite:
        listed = ", ".join(p.name for p in files[:3]) + (", ..." if len(files) > 3 else "")
        raise RefineInputError(
            f"{job} already holds a run ({len(files)} files: {listed}): add --continue to "
            "resume it, --overwrite to remove it and start again, or choose another --o"
        )
    for path in files:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    logger.info("removed %d files of the earlier run in %s", len(files), job)
    return files


def write_record(job_dir: str | Path, data: dict[str, Any]) -> Path:
    """Write the run record ``cryoprior_refine.json`` (atomic) in the job folder."""
    from cryoprior.io.json import write_json_atomic

    path = Path(job_dir) / RECORD_FILE_NAME
    write_json_atomic(path, data)
    return path


def read_record(job_dir: str | Path) -> dict[str, Any] | None:
    """Read the run record of a job folder, or None."""
    from cryoprior.io.json import read_json

    return read_json(Path(job_dir) / RECORD_FILE_NAME)


def validate_refinement(
    job_dir: str | Path,
    out_dir: str | Path,
    *,
    truth_map: Path | None = None,
    truth_star: Path | None = None,
    mask: Path | None = None,
    symmetry: str | None = None,
    seed: int = 0,
    local_window_voxels: int = 20,
):
    """Validate a finished job with ``cryoprior validate``'s metrics.

    Writes ``out_dir/validation.json`` and the figures; returns (report, json path, figure
    paths).
    """
    from cryoprior.io.json import write_json_atomic
    from cryoprior.report.figures import write_validation_figures
    from cryoprior.validate.job import load_validation_inputs
    from cryoprior.validate.summary import ValidationSettings, validate_maps

    loaded = load_validation_inputs(
        Path(job_dir), truth_map=truth_map, truth_star=truth_star, mask=mask, symmetry=symmetry
    )
    settings = ValidationSettings(
        symmetry=loaded.symmetry, local_window_voxels=local_window_voxels, seed=seed
    )
    report = validate_maps(loaded.inputs, settings)
    data = report.to_dict(per_atom=False)
    data["inputs"] = loaded.paths
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "validation.json"
    write_json_atomic(json_path, data)
    figures = write_validation_figures(report, out)
    return report, json_path, figures
