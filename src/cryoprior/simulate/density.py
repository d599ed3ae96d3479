"""Atomic model -> density map, through gemmi's electron-scattering density calculation.

gemmi's ``DensityCalculatorE`` sums, for every atom, the real-space form of its electron
scattering factor (Peng's five-Gaussian fit) blurred by the atom's B-factor, on a periodic grid.
Sampling such sharp Gaussians directly on the grid aliases, so the map is computed as
crystallographic programs compute structure factors: the density is computed on a grid
``oversampling`` times finer than the target with an extra blur B_blur (gemmi's
``set_refmac_compatible_blur``), Fourier-transformed, de-blurred by ``exp(+B_blur s^2 / 4)``,
cropped to the target box's frequencies (|k| <= Nyquist of each axis) and transformed back. The
result is the model's scattering potential, band-limited to the target grid's Nyquist
frequency. Units are gemmi's (Peng's scattering amplitudes in Angstrom per cubic Angstrom);
a projection of the map (a sum of voxels along z) therefore scales with the voxel size.

The map is periodic in its box: atoms closer to the edge than the atomic radius wrap around;
:func:`model_to_map` warns when the model does not fit in the box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
import scipy.fft

from cryoprior.errors import InputFileError
from cryoprior.io.atomic_model import read_structure

__all__ = ["StructureSummary", "model_to_map", "read_model", "structure_summary"]

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


def model_to_map(
    structure,
    *,
    box_size: int,
    voxel_size_angstrom: float,
    b_factor_angstrom2: float | None = None,
    centre: bool = True,
    oversampling: int = 2,
) -> np.ndarray:
    """Electron-scattering density map of an atomic model on an (N, N, N) grid.

    Parameters
    ----------
    structure: a ``gemmi.Structure`` (see :func:`read_model`) or a path to a model file;
        not modified.
    box_size: N, the box in voxels.
    voxel_size_angstrom: voxel size in Angstrom.
    b_factor_angstrom2: None keeps each atom's own B-factor; a number gives every atom this
        isotropic B-factor (0 = the bare scattering factors).
    centre: put the model's centre of mass at the box centre (voxel N//2 on every axis);
        otherwise keep the file's coordinates (voxel (i, j, k) of the (z, y, x) array is at
        x = k, y = j, z = i times the voxel size, as in a map whose origin is 0).
    oversampling: the density is computed on a grid this many times finer (integer >= 2)
        before the band limit; at 2 the map differs from one made at 3 by about 0.2% of its
        maximum (correlation 0.999999).

    Returns
    -------
    float32 array, real space, shape (N, N, N), (z, y, x).

    Example
    -------
    >>> from cryoprior.simulate.models import shipped_model_path
    >>> v = model_to_map(shipped_model_path("beta-galactosidase"), box_size=48,
    ...                  voxel_size_angstrom=5.0)  # doctest: +SKIP
    """
    if box_size < 2 or voxel_size_angstrom <= 0:
        raise ValueError("box_size must be >= 2 and voxel_size_angstrom positive")
    if int(oversampling) != oversampling or oversampling < 2:
        raise ValueError(f"oversampling must be an integer >= 2, not {oversampling}")
    oversampling = int(oversampling)
    if isinstance(structure, str | Path):
        structure = read_model(structure)
    structure = structure.clone()
    model = structure[0]
    n = int(box_size)
    length = n * float(voxel_size_angstrom)
    if centre:
        com = np.array(model.calculate_center_of_mass().tolist())
        target = (n // 2) * float(voxel_size_angstrom)
        translation = gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(target - com)))
        model.transform_pos_and_adp(translation)
    if b_factor_angstrom2 is not None:
        for chain in model:
            for residue in chain:
                for atom in residue:
                    atom.b_iso = float(b_factor_angstrom2)
                    atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    _warn_if_outside(model, n, float(voxel_size_angstrom))

    m = n * oversampling
    calc = gemmi.DensityCalculatorE()
    calc.grid.set_unit_cell(gemmi.UnitCell(length, length, length, 90, 90, 90))
    calc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    calc.grid.set_size(m, m, m)
    calc.set_refmac_compatible_blur(model)
    blur = float(calc.blur)
    calc.put_model_density_on_grid(model)
    fine = np.array(calc.grid, copy=True).astype(np.float64).transpose(2, 1, 0)  # -> (z, y, x)
    logger.debug(
        "gemmi density: %d atoms on %d^3 grid at %.4g A, blur %.4g A^2",
        _atom_count(model),
        m,
        length / m,
        blur,
    )
    return _band_limit(fine, n, length, blur).astype(np.float32)


def _band_limit(fine: np.ndarray, n: int, length: float, blur: float) -> np.ndarray:
    """Sample a periodic (m, m, m) map, m = n * k, on the (n, n, n) grid of the same cell.

    The map is first de-blurred by exp(+blur s^2 / 4) and only its frequencies |k_axis| <= n/2
    are kept.

    The coarse grid's points are every k-th fine point (both start at the origin), so taking
    them from the band-limited fine map is exact sampling, Nyquist aliases included.
    """
    m = fine.shape[0]
    step = m // n
    spectrum = scipy.fft.rfftn(fine.astype(np.float32))
    k_full = np.where(np.arange(m) < m // 2 + 1, np.arange(m), np.arange(m) - m)
    k_half = np.arange(m // 2 + 1)
    inside_full = np.abs(k_full) <= n / 2
    inside_half = k_half <= n / 2
    deblur_full = np.exp(blur * (k_full / length) ** 2 / 4.0) * inside_full
    deblur_half = np.exp(blur * (k_half / length) ** 2 / 4.0) * inside_half
    spectrum *= deblur_full[:, None, None].astype(np.float32)
    spectrum *= deblur_full[None, :, None].astype(np.float32)
    spectrum *= deblur_half[None, None, :].astype(np.float32)
    band_limited = scipy.fft.irfftn(spectrum, s=(m, m, m))
    return np.asarray(band_limited[::step, ::step, ::step], dtype=np.float64)


def _coordinates(model) -> np.ndarray:
    return np.array([atom.pos.tolist() for chain in model for res in chain for atom in res])


def _atom_count(model) -> int:
    return sum(len(res) for chain in model for res in chain)


def _warn_if_outside(model, n: int, voxel: float) -> None:
    xyz = _coordinates(model)
    margin = 2.0  # Angstrom: about the reach of an atom's density
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    if (low < margin).any() or (high > n * voxel - margin).any():
        logger.warning(
            "the model (extent %s to %s A) does not fit in the %d^3 box of %.4g A voxels "
            "(%.4g A): its density wraps around the box edges",
            np.round(low, 1).tolist(),
            np.round(high, 1).tolist(),
            n,
            voxel,
            n * voxel,
        )
