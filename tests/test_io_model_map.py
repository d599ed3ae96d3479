"""The one atomic model -> map operator (cryoprior.io.model_map) against the three it replaced.

Frozen references: ``tests/data/model_map/reference_maps.npz`` holds the maps that the three
former operators made of ``tests/data/model_map/tiny_20_atoms.pdb`` (20 atoms; B from 5 to
60 A^2, one atom at occupancy 0.5, one with an anisotropic U, two within 6 A of a face of the
30 A box), computed with the old code at commit 3f986c8 by
``tests/data/model_map/make_reference.py`` (its docstring gives the command):

* ``simulate.density.model_to_map`` (the simulator's truth: oversampled, band-limited), with its
  defaults and with B = 30, file coordinates, oversampling 3;
* ``prior.data.model_density`` (the prior's training targets: direct sampling, every atom at
  B = 15 and occupancy 1, atoms near the faces dropped);
* ``validate.atoms.model_density_map`` (validation: direct sampling, the atoms' own B, U and
  occupancy), with its defaults and with an origin and an extra blur of 12 A^2.

Each former call must give the same map from the options it now passes (relative tolerance
1e-6 of the map's maximum; the maps are in fact bit-identical), and the checks can fail: the
options that differ between the uses change the map.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cryoprior.io.atomic_model import atomic_model_from_structure, read_atomic_model, read_structure
from cryoprior.io.model_map import model_to_map
from cryoprior.prior.data import target_map

DATA = Path(__file__).parent / "data" / "model_map"
MODEL = DATA / "tiny_20_atoms.pdb"
GRID = dict(box_size=20, voxel_size_angstrom=1.5)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "reference_maps.npz") as frozen:
        return {key: frozen[key].astype(np.float64) for key in frozen.files}


@pytest.fixture(scope="module")
def all_atoms():
    """The simulator's reading: hydrogens and waters kept (the tiny model has neither)."""
    structure = read_structure(MODEL, remove_hydrogens=False, remove_waters=False)
    return atomic_model_from_structure(structure)


def _assert_same(new: np.ndarray, old: np.ndarray) -> None:
    assert new.shape == old.shape == (20, 20, 20) and new.dtype == np.float64
    assert np.abs(new - old).max() <= 1e-6 * np.abs(old).max()


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a - b).max() > 1e-3 * np.abs(b).max())


def test_model_has_occupancies_and_anisou(all_atoms):
    assert all_atoms.n_atoms == 20
    assert all_atoms.occupancies is not None and all_atoms.occupancies[3] == 0.5
    assert all_atoms.anisou_angstrom2 is not None
    np.testing.assert_allclose(all_atoms.anisou_angstrom2[7], [0.3, 0.2, 0.25, 0.05, -0.02, 0.01])
    assert not all_atoms.anisou_angstrom2[[0, 1, 2, 3, 4, 5, 6, 8]].any()


def test_simulator_truth_is_unchanged(reference, all_atoms):
    """Former ``simulate.density.model_to_map(structure, ...)``."""
    new = model_to_map(all_atoms, **GRID, centre=True, band_limited=True)
    _assert_same(new, reference["simulate_default"])
    new = model_to_map(
        all_atoms, **GRID, b_factor_angstrom2=30.0, band_limited=True, oversampling=3
    )
    _assert_same(new, reference["simulate_b30_uncentred_x3"])
    # the band limit and the centring matter
    assert _differs(model_to_map(all_atoms, **GRID, centre=True), reference["simulate_default"])
    assert _differs(
        model_to_map(all_atoms, **GRID, band_limited=True), reference["simulate_default"]
    )


def test_prior_training_target_is_unchanged(reference):
    """Former ``prior.data.model_density(positions, elements, ..., b_factor_angstrom2=15)``.

    The training targets take every atom at occupancy 1 (the prior never read occupancies);
    ``prior.data.target_map`` is this call.
    """
    model = read_atomic_model(MODEL)
    kw = dict(**GRID, b_factor_angstrom2=15.0)
    new = model_to_map(model, **kw, use_occupancies=False, edge_margin_angstrom=6.0)
    _assert_same(new, reference["prior_b15"])
    _assert_same(target_map(model, **kw), reference["prior_b15"])
    # dropping the atoms near the faces and ignoring occupancies matter
    assert _differs(model_to_map(model, **kw, use_occupancies=False), reference["prior_b15"])
    assert _differs(model_to_map(model, **kw, edge_margin_angstrom=6.0), reference["prior_b15"])


def test_validation_model_map_is_unchanged(reference):
    """Former ``validate.atoms.model_density_map(structure or path, ...)``."""
    model = atomic_model_from_structure(read_structure(MODEL))
    _assert_same(model_to_map(model, **GRID), reference["validate_default"])
    new = model_to_map(MODEL, **GRID, origin_angstrom=(1.0, -2.0, 0.5), blur_angstrom2=12.0)
    _assert_same(new, reference["validate_origin_blur12"])
    # the anisotropic U and the occupancy are used
    isotropic = dataclasses.replace(model, anisou_angstrom2=None, occupancies=None)
    assert _differs(model_to_map(isotropic, **GRID), reference["validate_default"])


def test_bad_options_are_refused(all_atoms):
    with pytest.raises(ValueError, match="oversampling"):
        model_to_map(all_atoms, **GRID, band_limited=True, oversampling=1)
    with pytest.raises(ValueError, match="B = 0"):
        model_to_map(all_atoms, **GRID, b_factor_angstrom2=0.0)
    with pytest.raises(ValueError, match="not both"):
        model_to_map(all_atoms, **GRID, centre=True, origin_angstrom=(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="box_size"):
        model_to_map(all_atoms, box_size=1, voxel_size_angstrom=1.5)


def test_model_is_not_modified_and_wrapping_warns(all_atoms, caplog):
    before = all_atoms.positions_angstrom.copy()
    with caplog.at_level("WARNING", logger="cryoprior.io.model_map"):
        model_to_map(all_atoms, **GRID)
    assert "wraps around" not in caplog.text  # the nearest atom lies 3.5 A from a face
    with caplog.at_level("WARNING", logger="cryoprior.io.model_map"):
        model_to_map(all_atoms, **GRID, origin_angstrom=(3.0, 0.0, 0.0))  # one at x = 1 A
    assert "wraps around" in caplog.text
    np.testing.assert_array_equal(all_atoms.positions_angstrom, before)
