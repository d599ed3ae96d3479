"""The simulator's reading of an atomic model: the first model of a file, and its summary.

The map of a model is :func:`cryoprior.io.model_map.model_to_map` (the simulator's ground truth
uses ``band_limited=True``); this module reads the model the way the simulator does (hydrogens
and waters kept unless asked) and summarises its extent and B-factors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.io.atomic_model import read_structure

__all__ = ["StructureSummary", "read_model", "structure_summary"]

logger = logging.getLogger(__name__)


def read_model(path: str | Path, *, remove_waters: bool = False, remove_hydrogens: bool = False):
    """Read a PDB or mmCIF model (gzip too) with gemmi; only the first model is kept.

    Parameters
    ----------
    path: the coordinate file (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, optionally ``.gz``).
    remove_waters: drop water molecules.
    remove_hydrogens: drop hydrogen atoms.

    Returns
    -------
    gemmi.Structure with one model (a new object).

    Raises
    ------
    InputFileError: missing or unreadable file, no atoms, or atoms with non-finite
        coordinates.
    """
    path = Path(path)
    structure = read_structure(path, remove_hydrogens=remove_hydrogens, remove_waters=remove_waters)
    while len(structure) > 1:
        del structure[len(structure) - 1]
    if _atom_count(structure[0]) == 0:
        raise InputFileError(path, "the model has no atoms")
    bad = [
        (chain.name, residue, atom)
        for chain in structure[0]
        for residue in chain
        for atom in residue
        if not np.isfinite(atom.pos.tolist()).all()
    ]
    if bad:
        chain, residue, atom = bad[0]
        raise InputFileError(
            path,
            f"{len(bad)} atom(s) have non-finite (NaN or infinite) coordinates, the first "
            f"{chain}/{residue.name} {residue.seqid.num}{residue.seqid.icode.strip()}/{atom.name}",
        )
    return structure


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


def structure_summary(structure) -> StructureSummary:
    """Atom count, centre, extent and B-factors of a gemmi structure's first model."""
    model = structure[0]
    xyz = _coordinates(model)
    b = np.array([atom.b_iso for chain in model for res in chain for atom in res])
    com = np.array(model.calculate_center_of_mass().tolist())
    radii = np.sqrt(((xyz - com) ** 2).sum(axis=1))
    far = int(np.argmax(radii))
    labels = [
        f"{chain.name}/{res.name} {res.seqid.num}/{atom.name}"
        for chain in model
        for res in chain
        for atom in res
    ]
    return StructureSummary(
        n_atoms=len(xyz),
        n_chains=len(model),
        centre_of_mass_angstrom=(float(com[0]), float(com[1]), float(com[2])),
        max_radius_angstrom=float(radii[far]),
        min_b_factor_angstrom2=float(b.min()),
        mean_b_factor_angstrom2=float(b.mean()),
        farthest_atom=labels[far],
        radius_99_angstrom=float(np.percentile(radii, 99)),
    )


def _coordinates(model) -> np.ndarray:
    return np.array([atom.pos.tolist() for chain in model for res in chain for atom in res])


def _atom_count(model) -> int:
    return sum(len(res) for chain in model for res in chain)
