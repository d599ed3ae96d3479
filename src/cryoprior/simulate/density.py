"""The simulator's summary of an atomic model: atom count, centre, extent and B-factors.

The model is read by :func:`cryoprior.io.atomic_model.read_atomic_model` (the simulator keeps
hydrogens, and waters unless asked: ``remove_hydrogens=False``) and its map is
:func:`cryoprior.io.model_map.model_to_map` (the simulator's ground truth uses
``band_limited=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoprior.io.atomic_model import AtomicModel

__all__ = ["StructureSummary", "structure_summary"]


@dataclass(frozen=True)
class StructureSummary:
    """Summary of a model's first model.

    Attributes
    ----------
    n_atoms: number of atoms.
    n_chains: number of chains.
    centre_of_mass_angstrom: (x, y, z) centre of mass in the file's coordinates.
    max_radius_angstrom: largest distance of an atom from the centre of mass.
    min_b_factor_angstrom2, mean_b_factor_angstrom2: isotropic B-factors of the atoms.
    farthest_atom: ``chain/residue number/atom`` of the atom at ``max_radius_angstrom``.
    radius_99_angstrom: the 99th percentile of the atoms' distances from the centre of mass
        (far below the largest when a few stray atoms lie far away).
    """

    n_atoms: int
    n_chains: int
    centre_of_mass_angstrom: tuple[float, float, float]
    max_radius_angstrom: float
    min_b_factor_angstrom2: float
    mean_b_factor_angstrom2: float
    farthest_atom: str = ""
    radius_99_angstrom: float = 0.0


def structure_summary(model: AtomicModel) -> StructureSummary:
    """Atom count, centre (as gemmi computes it), extent and B-factors of a model."""
    xyz = model.positions_angstrom
    b = model.b_factors_angstrom2
    com = model.centre_of_mass_angstrom()
    radii = np.sqrt(((xyz - com) ** 2).sum(axis=1))
    far = int(np.argmax(radii))
    return StructureSummary(
        n_atoms=model.n_atoms,
        n_chains=model.n_chains,
        centre_of_mass_angstrom=(float(com[0]), float(com[1]), float(com[2])),
        max_radius_angstrom=float(radii[far]),
        min_b_factor_angstrom2=float(b.min()),
        mean_b_factor_angstrom2=float(b.mean()),
        farthest_atom=model.atom_label(far),
        radius_99_angstrom=float(np.percentile(radii, 99)),
    )
