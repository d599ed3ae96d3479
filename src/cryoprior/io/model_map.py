"""Atomic model -> density map: the package's one operator (gemmi's electron scattering).

gemmi's ``DensityCalculatorE`` sums, for every atom, the real-space form of its electron
scattering factor (Peng's five-Gaussian fit) blurred by the atom's B-factor (or its anisotropic
U), times its occupancy, on a periodic grid. Units are gemmi's (Peng's scattering amplitudes in
Angstrom per cubic Angstrom); a projection of the map (a sum of voxels along z) therefore scales
with the voxel size.

Frames: positions are (x, y, z) in Angstrom in the model's frame; the map is (N, N, N), axis
order (z, y, x), and its voxel (k, j, i) is at ``origin_angstrom + (i, j, k) *
voxel_size_angstrom``, as in :mod:`cryoprior.io.atomic_model`.

Two samplings, because the package's uses genuinely differ (:func:`model_to_map`'s
``band_limited``):

* ``band_limited=True`` (the simulator's ground truth): sampling sharp Gaussians directly on
  the grid aliases, so the density is computed as crystallographic programs compute structure
  factors: on a grid ``oversampling`` times finer with an extra blur B_blur (gemmi's
  ``set_refmac_compatible_blur``), Fourier-transformed, de-blurred by ``exp(+B_blur s^2 / 4)``,
  cropped to the target box's frequencies (|k| <= Nyquist of each axis) and transformed back:
  the model's scattering potential band-limited to the grid's Nyquist frequency.
* ``band_limited=False`` (the default; the prior's training targets and validation's model
  maps): gemmi's density sampled directly at the voxels. Exact for atoms that are wide on the
  grid (B of a few voxels^2 or more), aliased for sharper ones.

The box is periodic: atoms closer to a face than the atomic radius wrap around to the opposite
face (a warning is logged), unless ``edge_margin_angstrom`` drops them (the prior's training
targets: a crop of a large model must not wrap).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.fft

from cryoprior.io.atomic_model import AtomicModel, read_atomic_model

__all__ = ["model_to_map"]

logger = logging.getLogger(__name__)

_WRAP_MARGIN_ANGSTROM = 2.0  # about the reach of an atom's density


def model_to_map(
    model: AtomicModel | str | Path,
    *,
    box_size: int,
    voxel_size_angstrom: float,
    origin_angstrom: Sequence[float] = (0.0, 0.0, 0.0),
    centre: bool = False,
    b_factor_angstrom2: float | None = None,
    blur_angstrom2: float = 0.0,
    use_occupancies: bool = True,
    band_limited: bool = False,
    oversampling: int = 2,
    edge_margin_angstrom: float | None = None,
) -> np.ndarray:
    """Electron-scattering density map of an atomic model on an (N, N, N) grid.

    Parameters
    ----------
    model : AtomicModel or path
        The atoms (not modified); a path is read with
        :func:`~cryoprior.io.atomic_model.read_atomic_model` (hydrogens and waters dropped).
    box_size : int
        N, the box in voxels.
    voxel_size_angstrom : float
        Voxel size in Angstrom.
    origin_angstrom : sequence of 3 float
        (x, y, z) position of voxel (0, 0, 0) in the model's frame.
    centre : bool
        Put the model's centre of mass (atoms weighted by element mass times occupancy, as
        gemmi computes it) at voxel N//2 on every axis; ``origin_angstrom`` must then be 0.
    b_factor_angstrom2 : float or None
        None keeps each atom's own B-factor (and anisotropic U); a number gives every atom this
        isotropic B-factor (0 = the bare scattering factors; must be > 0 unless band-limited).
    blur_angstrom2 : float
        Extra B added to every atom (validation's maps of models with B-factors near 0).
    use_occupancies : bool
        False puts every atom at occupancy 1 (the prior's training targets, which count both
        copies of an atom with alternative conformations).
    band_limited : bool
        True: computed on a finer grid and band-limited to the box's Nyquist frequency (the
        simulator's ground truth); False: sampled directly on the grid (see the module
        docstring).
    oversampling : int
        How many times finer the band-limited map's grid is (integer >= 2; at 2 the map differs
        from one made at 3 by about 0.2% of its maximum). Unused when not band-limited.
    edge_margin_angstrom : float or None
        None: the box is periodic. A number: atoms closer than this to a face of the box are
        dropped (the prior's training targets use 6 A), so no density wraps around.

    Returns
    -------
    numpy.ndarray
        float64, real space, shape (N, N, N), (z, y, x).

    Raises
    ------
    ValueError
        A box below 2 voxels, a non-positive voxel size, an oversampling that is not an integer
        >= 2, ``centre`` with an origin, or ``b_factor_angstrom2 <= 0`` on a directly sampled
        grid (B = 0 atoms alias).

    Examples
    --------
    >>> import numpy as np
    >>> from cryoprior.io.atomic_model import AtomicModel
    >>> carbon = AtomicModel(np.array([[12.0, 18.0, 27.0]]), ("C",), np.array([20.0]),
    ...                      np.zeros(1, dtype=np.int64), ("A:1:GLY",))
    >>> volume = model_to_map(carbon, box_size=32, voxel_size_angstrom=1.5)
    >>> tuple(int(i) for i in np.unravel_index(np.argmax(volume), volume.shape))  # (z, y, x)
    (18, 12, 8)
    """
    if box_size < 2 or voxel_size_angstrom <= 0:
        raise ValueError("box_size must be >= 2 and voxel_size_angstrom positive")
    if band_limited and (int(oversampling) != oversampling or oversampling < 2):
        raise ValueError(f"oversampling must be an integer >= 2, not {oversampling}")
    if not band_limited and b_factor_angstrom2 is not None and b_factor_angstrom2 <= 0:
        raise ValueError(
            "b_factor_angstrom2 must be > 0 on a directly sampled grid (B = 0 atoms alias); "
            "use band_limited=True for the bare scattering factors"
        )
    origin = np.asarray(origin_angstrom, dtype=np.float64)
    if centre and np.any(origin != 0):
        raise ValueError("give either centre=True or an origin_angstrom, not both")
    if isinstance(model, str | Path):
        model = read_atomic_model(model)
    n = int(box_size)
    voxel = float(voxel_size_angstrom)
    length = n * voxel
    if centre:
        gemmi_model = _gemmi_model(model, model.positions_angstrom)
        com = np.array(gemmi_model.calculate_center_of_mass().tolist())
        # pos + (target - com), as gemmi's translation computes it
        positions = model.positions_angstrom + ((n // 2) * voxel - com)
    else:
        positions = model.positions_angstrom - origin
    keep = None
    if edge_margin_angstrom is not None:
        margin = float(edge_margin_angstrom)
        keep = np.all((positions > margin) & (positions < length - margin), axis=1)
    else:
        _warn_if_outside(positions, n, voxel)
    atoms = _gemmi_model(
        model,
        positions,
        keep=keep,
        b_factor_angstrom2=b_factor_angstrom2,
        use_occupancies=use_occupancies,
    )
    if band_limited:
        return _band_limited_map(atoms, n, length, int(oversampling), float(blur_angstrom2))
    calculator = _calculator(n, length)
    calculator.blur = float(blur_angstrom2)
    calculator.initialize_grid()
    calculator.add_model_density_to_grid(atoms)
    calculator.grid.symmetrize_sum()
    return np.ascontiguousarray(np.array(calculator.grid, dtype=np.float64).transpose(2, 1, 0))


def _calculator(m: int, length: float):
    """Return a ``DensityCalculatorE`` on an (m, m, m) P1 grid of a cubic cell of side ``length``."""
    import gemmi

    calculator = gemmi.DensityCalculatorE()
    calculator.grid.set_unit_cell(gemmi.UnitCell(length, length, length, 90, 90, 90))
    calculator.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    calculator.grid.set_size(m, m, m)
    return calculator


def _gemmi_model(
    model: AtomicModel,
    positions: np.ndarray,
    *,
    keep: np.ndarray | None = None,
    b_factor_angstrom2: float | None = None,
    use_occupancies: bool = True,
):
    """Build a ``gemmi.Model`` of the atoms at ``positions`` ((n_atoms, 3)), in the model's order.

    ``keep`` ((n_atoms,) bool) selects atoms; a B-factor replaces every atom's B and drops its
    anisotropic U. Occupancies are the model's if ``use_occupancies`` and it has them, else 1.
    """
    import gemmi

    n_atoms = model.n_atoms
    occupancies = model.occupancies
    if occupancies is None or not use_occupancies:
        occupancies = np.ones(n_atoms)
    anisou = None if b_factor_angstrom2 is not None else model.anisou_angstrom2
    b_factors = (
        model.b_factors_angstrom2
        if b_factor_angstrom2 is None
        else np.full(n_atoms, float(b_factor_angstrom2))
    )
    selected = np.arange(n_atoms) if keep is None else np.flatnonzero(keep)
    residue = gemmi.Residue()
    atom = gemmi.Atom()
    elements: dict[str, gemmi.Element] = {}
    for i in selected.tolist():
        symbol = model.elements[i]
        atom.element = elements.setdefault(symbol, gemmi.Element(symbol))
        atom.pos = gemmi.Position(*positions[i].tolist())
        atom.b_iso = float(b_factors[i])
        atom.occ = float(occupancies[i])
        atom.aniso = gemmi.SMat33f(*(anisou[i].tolist() if anisou is not None else (0.0,) * 6))
        residue.add_atom(atom)
    chain = gemmi.Chain("A")
    chain.add_residue(residue)
    result = gemmi.Model(1)
    result.add_chain(chain)
    return result


def _band_limited_map(atoms, n: int, length: float, oversampling: int, extra_blur: float):
    """Map of a ``gemmi.Model`` on an (n, n, n) grid, band-limited to its Nyquist frequency."""
    m = n * oversampling
    calculator = _calculator(m, length)
    calculator.set_refmac_compatible_blur(atoms)
    blur = float(calculator.blur)
    calculator.blur = blur + extra_blur
    calculator.put_model_density_on_grid(atoms)
    fine = np.array(calculator.grid, copy=True).astype(np.float64).transpose(2, 1, 0)  # (z, y, x)
    logger.debug(
        "gemmi density: %d atoms on %d^3 grid at %.4g A, blur %.4g A^2",
        atoms.count_atom_sites(),
        m,
        length / m,
        blur,
    )
    return _band_limit(fine, n, length, blur)


def _band_limit(fine: np.ndarray, n: int, length: float, blur: float) -> np.ndarray:
    """Sample a periodic (m, m, m) map, m = n * k, on the (n, n, n) grid of the same cell.

    The map is first de-blurred by exp(+blur s^2 / 4) and only its frequencies |k_axis| <= n/2
    are kept. The coarse grid's points are every k-th fine point (both start at the origin), so
    taking them from the band-limited fine map is exact sampling, Nyquist aliases included.
    The arithmetic is float32 (the values are float32 numbers in a float64 array).
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
    return np.ascontiguousarray(band_limited[::step, ::step, ::step], dtype=np.float64)


def _warn_if_outside(positions: np.ndarray, n: int, voxel: float) -> None:
    """Log a warning when atoms lie within 2 A of the box's faces (their density wraps)."""
    if positions.size == 0:
        return
    low, high = positions.min(axis=0), positions.max(axis=0)
    margin = _WRAP_MARGIN_ANGSTROM
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
