"""FSC-Q on a real model fragment: a right model scores about 0, a displaced part of the model
scores positive where the half-maps still agree, closed forms of the normalised variant."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from cryoprior.fourier import apply_filter, bfactor_filter
from cryoprior.io.atomic_model import atomic_model_from_structure
from cryoprior.io.model_map import model_to_map
from cryoprior.validate.fscq import fsc_q, model_mask

FRAGMENT = Path(__file__).parent / "data" / "validate" / "6bdf_chainA_fragment.pdb"
BOX, VOXEL = 64, 1.0


@pytest.fixture(scope="module")
def maps():
    """Model map, half-maps (model map blurred by B = 60 plus noise of twice its SD), and a model whose atoms
    with x > 38 A are moved 3 A along y."""
    structure = gemmi.read_structure(str(FRAGMENT))
    model = atomic_model_from_structure(structure)
    truth = model_to_map(model, box_size=BOX, voxel_size_angstrom=VOXEL)
    signal = apply_filter(
        truth, bfactor_filter(BOX, b_factor_angstrom2=60.0, voxel_size_angstrom=VOXEL)
    )
    rng = np.random.default_rng(0)
    sd = 2.0 * signal.std()
    h1 = signal + rng.normal(scale=sd, size=truth.shape)
    h2 = signal + rng.normal(scale=sd, size=truth.shape)
    moved = model.positions_angstrom[:, 0] > 38.0
    wrong = structure.clone()
    for residue in wrong[0]["A"]:
        for atom in residue:
            if atom.pos.x > 38.0:
                atom.pos = gemmi.Position(atom.pos.x, atom.pos.y + 3.0, atom.pos.z)
    wrong_map = model_to_map(
        atomic_model_from_structure(wrong), box_size=BOX, voxel_size_angstrom=VOXEL
    )
    return model, truth, h1, h2, wrong_map, moved


def test_a_right_model_scores_about_zero(maps):
    model, truth, h1, h2, _, _ = maps
    result = fsc_q(h1, h2, truth, model.positions_angstrom, voxel_size_angstrom=VOXEL)
    half = result.local_resolution_half_maps_angstrom
    assert 2.8 < np.median(half) < 6.0  # an informative local resolution, not Nyquist
    assert abs(result.mean_angstrom) < 0.6
    assert abs(result.mean_normalised) < 0.15
    assert result.fraction_normalised_above_half < 0.05


def test_a_displaced_part_of_the_model_scores_positive(maps):
    model, _, h1, h2, wrong_map, moved = maps
    assert 0.1 < moved.mean() < 0.3
    result = fsc_q(h1, h2, wrong_map, model.positions_angstrom, voxel_size_angstrom=VOXEL)
    assert result.per_atom_angstrom[moved].mean() > 1.5
    assert result.per_atom_angstrom[moved].mean() > result.per_atom_angstrom[~moved].mean() + 1.0
    assert result.fraction_normalised_above_half > 0.5 * moved.mean()


def test_normalised_values_and_summaries_follow_their_definitions(maps):
    model, truth, h1, h2, _, _ = maps
    r = fsc_q(h1, h2, truth, model.positions_angstrom, voxel_size_angstrom=VOXEL)
    assert np.allclose(
        r.per_atom_angstrom,
        r.local_resolution_map_model_angstrom - r.local_resolution_half_maps_angstrom,
    )
    assert np.allclose(
        r.per_atom_normalised, r.per_atom_angstrom / r.local_resolution_half_maps_angstrom
    )
    assert r.mean_absolute_angstrom == pytest.approx(np.abs(r.per_atom_angstrom).mean())
    assert r.fraction_normalised_below_minus_half == pytest.approx(
        (r.per_atom_normalised < -0.5).mean()
    )
    d = r.to_dict(per_atom=False)
    assert d["n_atoms"] == model.n_atoms and "per_atom_angstrom" not in d


def test_a_model_map_equal_to_the_map_is_at_nyquist_so_fsc_q_is_never_positive(maps):
    model, truth, h1, h2, _, _ = maps
    full = 0.5 * (h1 + h2)
    r = fsc_q(
        h1, h2, full, model.positions_angstrom, mask=model_mask(truth), voxel_size_angstrom=VOXEL
    )
    assert np.allclose(r.local_resolution_map_model_angstrom, 2.0 * VOXEL)
    assert np.all(r.per_atom_angstrom <= 1e-9)


def test_default_mask_is_the_thresholded_dilated_model(maps):
    _, truth, _, _, _, _ = maps
    mask = model_mask(truth)
    seed = truth > 0.02 * truth.max()
    assert mask[seed].all() and mask.sum() > seed.sum()
    assert not model_mask(truth, dilation_voxels=0)[~seed].any()
