"""Atomic models for validation: positions and residue labels read with gemmi, and a map
computed from a model on a given grid (gemmi's electron-scattering density).

Positions are (x, y, z) in Angstrom in the model's frame; a map's voxel (k, j, i) is at
``origin_angstrom + (i, j, k) * voxel_size_angstrom``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoprior.errors import InputFileError

__all__ = ["AtomicModel", "atomic_model_from_structure", "model_density_map", "read_atomic_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AtomicModel:
    """The atoms of the first model of a structure.

    Attributes
    ----------
    positions_angstrom: (n_atoms, 3) float64 (x, y, z).
    elements: (n_atoms,) element symbols.
    b_factors_angstrom2: (n_atoms,) isotropic B.
    residue_index: (n_atoms,) int64 index into ``residue_labels``.
    residue_labels: one ``"chain:number[icode]:name"`` per residue, in file order.
    """

    positions_angstrom: np.ndarray
    elements: tuple[str, ...]
    b_factors_angstrom2: np.ndarray
    residue_index: np.ndarray
    residue_labels: tuple[str, ...]

    @property
    def n_atoms(self) -> int:
        return int(self.positions_angstrom.shape[0])


def atomic_model_from_structure(structure) -> AtomicModel:
    """An :class:`AtomicModel` from the first model of a ``gemmi.Structure`` (not modified)."""
    positions, elements, bfac, residue_index, labels = [], [], [], [], []
    for chain in structure[0]:
        for residue in chain:
            label = f"{chain.name}:{residue.seqid.num}{residue.seqid.icode.strip()}:{residue.name}"
            labels.append(label)
            for atom in residue:
                positions.append((atom.pos.x, atom.pos.y, atom.pos.z))
                elements.append(atom.element.name)
                bfac.append(atom.b_iso)
                residue_index.append(len(labels) - 1)
    return AtomicModel(
        positions_angstrom=np.asarray(positions, dtype=np.float64).reshape(-1, 3),
        elements=tuple(elements),
        b_factors_angstrom2=np.asarray(bfac, dtype=np.float64),
        residue_index=np.asarray(residue_index, dtype=np.int64),
        residue_labels=tuple(labels),
    )


def _read_structure(path: Path, *, remove_hydrogens: bool, remove_waters: bool):
    import gemmi

    if not path.is_file():
        raise InputFileError(path, "file does not exist")
    try:
        structure = gemmi.read_structure(str(path))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError for malformed files
        raise InputFileError(path, f"not a readable PDB/mmCIF model ({exc})") from exc
    if len(structure) == 0:
        raise InputFileError(path, "the file holds no model")
    structure.setup_entities()
    if remove_hydrogens:
        structure.remove_hydrogens()
    if remove_waters:
        structure.remove_waters()
    structure.remove_empty_chains()
    return structure


def read_atomic_model(
    path: str | Path, *, remove_hydrogens: bool = True, remove_waters: bool = True
) -> AtomicModel:
    """Read a PDB or mmCIF model (gzip allowed) with gemmi; hydrogens and waters dropped.

    Raises
    ------
    InputFileError: a missing or unreadable file, or one without atoms.
    """
    path = Path(path)
    structure = _read_structure(
        path, remove_hydrogens=remove_hydrogens, remove_waters=remove_waters
    )
    model = atomic_model_from_structure(structure)
    if model.n_atoms == 0:
        raise InputFileError(path, "the model has no atoms")
    return model


def model_density_map(
    path_or_structure,
    *,
    box_size: int,
    voxel_size_angstrom: float,
    origin_angstrom=(0.0, 0.0, 0.0),
    blur_angstrom2: float = 0.0,
) -> np.ndarray:
    """Map of a model on an (n, n, n) grid: gemmi's ``DensityCalculatorE`` (electron
    scattering factors, the atoms' B-factors plus ``blur_angstrom2``).

    The model is translated by ``-origin_angstrom`` so that voxel (k, j, i) sits at
    ``origin_angstrom + (i, j, k) * voxel_size_angstrom``. gemmi's cell is periodic: atoms
    within a few Angstrom of the box edge spill over to the opposite side.

    Parameters
    ----------
    path_or_structure: a model file or a ``gemmi.Structure`` (not modified).
    box_size: n.
    voxel_size_angstrom: voxel size.
    origin_angstrom: (x, y, z) of voxel (0, 0, 0).
    blur_angstrom2: extra B added to every atom (needed when B-factors are 0).

    Returns
    -------
    float64 array, real space, shape (n, n, n), (z, y, x) order.
    """
    import gemmi

    if isinstance(path_or_structure, str | Path):
        structure = _read_structure(
            Path(path_or_structure), remove_hydrogens=True, remove_waters=True
        )
    else:
        structure = path_or_structure.clone()
    n = int(box_size)
    size = n * float(voxel_size_angstrom)
    shift = -np.asarray(origin_angstrom, dtype=np.float64)
    if np.any(shift != 0):
        structure[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    structure.cell = gemmi.UnitCell(size, size, size, 90.0, 90.0, 90.0)
    structure.spacegroup_hm = "P 1"
    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = 0.0
    calculator.blur = float(blur_angstrom2)
    calculator.set_grid_cell_and_spacegroup(structure)
    calculator.grid.set_size(n, n, n)
    calculator.initialize_grid()
    calculator.add_model_density_to_grid(structure[0])
    calculator.grid.symmetrize_sum()
    return np.ascontiguousarray(np.array(calculator.grid, dtype=np.float64).transpose(2, 1, 0))
