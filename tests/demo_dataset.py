"""Test support: a tiny phantom dataset made with RELION's own ``relion_project`` (the test
suite's parity runs; was ``cryoprior.refine.demo``).

Makes an atom-like phantom, projects it with ``relion_project`` and adds noise: a dataset
whose images come from RELION itself, independent of ``cryoprior.simulate``'s projector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.simulate.noise import add_white_noise
from cryoprior.simulate.phantom import atom_like_phantom, gaussian_lowpass
from relion_project import relion_project_uniform

__all__ = ["DemoDataset", "make_demo_dataset"]

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
