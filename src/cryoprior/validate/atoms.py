"""Maps computed from an atomic model on a given grid, for validation.

The density is gemmi's electron-scattering density. The model type and its reader are
:mod:`cryoprior.io.atomic_model`'s (re-exported here for validation's callers).

Positions are (x, y, z) in Angstrom in the model's frame; a map's voxel (k, j, i) is at
``origin_angstrom + (i, j, k) * voxel_size_angstrom``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryoprior.io.atomic_model import (
    AtomicModel,
    atomic_model_from_structure,
    read_atomic_model,
    read_structure,
)

__all__ = ["AtomicModel", "atomic_model_from_structure", "model_density_map", "read_atomic_model"]

logger = logging.getLogger(__name__)


def model_density_map(
    path_or_structure,
    *,
    box_size: int,
    voxel_size_angstrom: float,
    origin_angstrom=(0.0, 0.0, 0.0),
    blur_angstrom2: float = 0.0,
) -> np.ndarray:
    """Compute the map of a model on an (n, n, n) grid with gemmi's ``DensityCalculatorE``.

    Electron scattering factors, the atoms' B-factors plus ``blur_angstrom2``.

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
        structure = read_structure(
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
