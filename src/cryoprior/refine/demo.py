"""The small end-to-end run behind ``cryoprior demo`` (until the full benchmark demo lands).

Makes an atom-like phantom, projects it with ``relion_project``, adds noise, and runs a
real gold-standard ``relion_refine_mpi`` auto-refine that calls ``cryoprior-extrec`` at
every iteration; returns a summary read from RELION's files and the hook's log.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryoprior.extrec.protocol import LOG_FILE_NAME
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.refine.relion import (
    AutoRefineSettings,
    RefineResult,
    relion_project_uniform,
    run_auto_refine,
)
from cryoprior.simulate.noise import add_white_noise
from cryoprior.simulate.phantom import atom_like_phantom, gaussian_lowpass

__all__ = ["DemoDataset", "make_demo_dataset", "hook_log_records", "DemoSummary", "run_hook_demo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoDataset:
    """A tiny particle dataset in a RELION project folder (paths relative to ``workdir``)."""

    workdir: Path
    particles_star: str
    reference_map: str
    truth_map: str
    box_size: int
    voxel_size_angstrom: float


def make_demo_dataset(
    workdir: str | Path,
    *,
    box_size: int = 32,
    voxel_size_angstrom: float = 4.0,
    n_particles: int = 400,
    snr: float = 0.3,
    seed: int = 0,
) -> DemoDataset:
    """Phantom -> ``relion_project`` (random uniform views) -> white noise at ``snr``.

    The initial reference is the phantom blurred (Gaussian SD 2 voxels, about 30 A at 4 A/px).
    ``relion_project`` draws its own angles (it takes no seed), so datasets differ between
    calls; noise and phantom follow ``seed``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    truth = atom_like_phantom(box_size, n_atoms=150, sigma_voxels=1.0, seed=seed)
    write_map_atomic(workdir / "truth.mrc", truth, voxel_size_angstrom=voxel_size_angstrom)
    write_map_atomic(
        workdir / "reference.mrc",
        gaussian_lowpass(truth, sigma_voxels=2.0),
        voxel_size_angstrom=voxel_size_angstrom,
    )
    stack, star = relion_project_uniform(
        "truth.mrc",
        output_root="projections_clean",
        n_particles=n_particles,
        voxel_size_angstrom=voxel_size_angstrom,
        workdir=workdir,
    )
    noisy = add_white_noise(read_map(stack), snr=snr, seed=seed + 1)
    write_map_atomic(workdir / "particles.mrcs", noisy, voxel_size_angstrom=voxel_size_angstrom)
    import starfile

    blocks = starfile.read(star, always_dict=True)
    blocks["particles"]["rlnImageName"] = blocks["particles"]["rlnImageName"].str.replace(
        "projections_clean.mrcs", "particles.mrcs", regex=False
    )
    starfile.write(blocks, workdir / "particles.star", overwrite=True)
    return DemoDataset(
        workdir=workdir,
        particles_star="particles.star",
        reference_map="reference.mrc",
        truth_map="truth.mrc",
        box_size=box_size,
        voxel_size_angstrom=voxel_size_angstrom,
    )


def hook_log_records(output_root: str | Path) -> list[dict]:
    """The JSON lines ``cryoprior-extrec`` appended beside an output root."""
    log = Path(output_root).parent / LOG_FILE_NAME
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class DemoSummary:
    """What the demo measured."""

    refine: RefineResult
    hook_calls: int
    regularized_calls: int
    fallbacks: int
    correlation_with_truth: float | None


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def run_hook_demo(
    workdir: str | Path,
    *,
    hook_command: str,
    n_particles: int = 400,
    seed: int = 0,
    timeout_seconds: float | None = 1800,
) -> DemoSummary:
    """Simulate a tiny dataset and refine it with ``hook_command`` as the external program."""
    data = make_demo_dataset(workdir, n_particles=n_particles, seed=seed)
    settings = AutoRefineSettings(
        particles_star=data.particles_star,
        reference_map=data.reference_map,
        output_root="Refine3D/demo/run",
        particle_diameter_angstrom=0.8 * data.box_size * data.voxel_size_angstrom,
        random_seed=seed,
    )
    job_dir = data.workdir / Path(settings.output_root).parent
    if job_dir.exists():  # a previous demo: start afresh so the hook log counts only this run
        shutil.rmtree(job_dir)
    result = run_auto_refine(
        settings, workdir=data.workdir, hook_command=hook_command, timeout_seconds=timeout_seconds
    )
    records = hook_log_records(result.output_root)
    cc = None
    if result.final_map is not None:
        final = mrcfile.read(result.final_map).astype(np.float64)
        truth = read_map(data.workdir / data.truth_map, dtype=np.float64)
        cc = _correlation(final, truth)
    return DemoSummary(
        refine=result,
        hook_calls=len(records),
        regularized_calls=sum(bool(r.get("applied")) for r in records),
        fallbacks=sum(bool(r.get("fallback")) for r in records),
        correlation_with_truth=cc,
    )
