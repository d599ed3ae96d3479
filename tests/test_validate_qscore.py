"""Q-score: the published method's pieces, maps computed from a real model fragment (sharp,
blurred, noise), and the published expectation of Q against resolution."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.spatial

from cryoprior.fourier import apply_filter, bfactor_filter, soft_sphere
from cryoprior.io.atomic_model import read_atomic_model
from cryoprior.io.model_map import model_to_map
from cryoprior.validate.fsc import gold_standard_fsc
from cryoprior.validate.qscore import (
    accepted_points,
    expected_q_score,
    neighbour_offsets,
    q_scores,
    reference_gaussian_parameters,
    spiral_points,
)

FRAGMENT = Path(__file__).parent / "data" / "validate" / "6bdf_chainA_fragment.pdb"
BOX, VOXEL = 64, 0.75
# the fragment's atoms are centred at (32, 32, 32) A: this origin centres them in the box
ORIGIN = (32.0 - BOX * VOXEL / 2,) * 3


@pytest.fixture(scope="module")
def fragment():
    model = read_atomic_model(FRAGMENT)
    sharp = model_to_map(model, box_size=BOX, voxel_size_angstrom=VOXEL, origin_angstrom=ORIGIN)
    return model, sharp


def _q(volume, model, **kwargs):
    return q_scores(
        volume,
        model.positions_angstrom,
        voxel_size_angstrom=VOXEL,
        origin_angstrom=ORIGIN,
        residue_index=model.residue_index,
        residue_labels=model.residue_labels,
        **kwargs,
    )


def test_expected_q_score_is_the_published_line():
    assert expected_q_score(2.0) == pytest.approx(-0.1775 * 2 + 1.1192)
    assert np.allclose(expected_q_score(np.array([1.5, 4.0])), [0.85295, 0.4092])


def test_spiral_points_follow_saff_kuijlaars():
    p = spiral_points(8)
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0)
    assert np.allclose(p[0], [0, 0, -1]) and np.allclose(p[-1], [0, 0, 1])
    # evenly spread: the nearest-neighbour distances of 100 points vary little
    q = spiral_points(100)
    d, _ = scipy.spatial.cKDTree(q).query(q, k=2)
    assert d[:, 1].std() / d[:, 1].mean() < 0.15


def test_reference_gaussian_parameters_follow_mapq():
    v = np.random.default_rng(0).normal(size=(16, 16, 16))
    a, b = reference_gaussian_parameters(v)
    mean, sd = v.mean(), v.std()
    assert b == pytest.approx(max(mean - sd, v.min()))
    assert a + b == pytest.approx(min(mean + 10 * sd, v.max()))


def test_point_exclusion_equals_a_brute_force_search(fragment):
    model, _ = fragment
    xyz = model.positions_angstrom
    tree = scipy.spatial.cKDTree(xyz)
    offsets, distances = neighbour_offsets(tree, xyz, 1.9 * 2.0)
    directions = spiral_points(14)
    for r in (0.5, 1.2, 2.0):
        near = distances < 1.9 * r
        k = int(near.sum(axis=1).max())
        limit = (0.19 * r * r + distances[:, :k] ** 2) / (2.0 * r)
        fast = accepted_points(offsets[:, :k], limit, directions)
        points = xyz[:, None, :] + r * directions[None]
        # brute force: a point is excluded when any other atom is closer than 0.9 r
        d_all, idx = tree.query(points.reshape(-1, 3), k=2)
        own = np.repeat(np.arange(len(xyz)), len(directions))
        other = np.where(idx[:, 0] == own, d_all[:, 1], d_all[:, 0])
        slow = (other >= 0.9 * r).reshape(fast.shape)
        assert np.array_equal(fast, slow)


def test_a_sharp_model_map_scores_high_and_blur_lowers_it_in_order(fragment):
    model, sharp = fragment
    q_sharp = _q(sharp, model)
    assert q_sharp.mean > 0.9
    means = [q_sharp.mean]
    for b in (30.0, 80.0, 160.0, 320.0):
        blurred = apply_filter(
            sharp, bfactor_filter(BOX, b_factor_angstrom2=b, voxel_size_angstrom=VOXEL)
        )
        means.append(_q(blurred, model).mean)
    assert all(x > y for x, y in itertools.pairwise(means)), means
    assert means[-1] < 0.6


def test_noise_scores_about_zero_and_scale_and_offset_do_not_matter(fragment):
    model, sharp = fragment
    noise = np.random.default_rng(1).normal(size=sharp.shape)
    q_noise = _q(noise, model)
    assert abs(q_noise.mean) < 0.05
    q = _q(sharp, model)
    q_affine = _q(3.0 * sharp + 1.0e4, model)
    assert np.allclose(q.per_atom, q_affine.per_atom)


def test_per_residue_is_the_mean_of_its_atoms_and_outside_atoms_are_nan(fragment):
    model, sharp = fragment
    q = _q(sharp, model)
    first = model.residue_index == 0
    assert q.per_residue[0] == pytest.approx(q.per_atom[first].mean())
    assert len(q.residue_labels) == 63 and q.residue_labels[0] == "A:31:VAL"
    outside = np.vstack([model.positions_angstrom, [[500.0, 500.0, 500.0]]])
    q_out = q_scores(sharp, outside, voxel_size_angstrom=VOXEL, origin_angstrom=ORIGIN)
    assert np.isnan(q_out.per_atom[-1])
    assert np.isfinite(q_out.mean)
    d = q.to_dict(per_atom=False)
    assert "per_atom" not in d and len(d["per_residue"]) == 63


def test_mean_q_follows_the_published_expectation_against_resolution(fragment):
    """Half-maps = model map blurred by B + white noise (SD of the sharp map); the resolution
    is the masked gold-standard FSC at 0.143 and Q is scored on the average of the halves.
    Simulated maps lack model error and heterogeneity, so they sit on the upper side of the
    EMDB cloud; the tolerance, 0.15, is our reading of that cloud's spread around the line."""
    model, sharp = fragment
    rng = np.random.default_rng(2)
    mask = soft_sphere(BOX, radius_voxels=24, edge_width_voxels=6)
    sd = sharp.std()
    results = []
    for b in (50.0, 100.0, 150.0, 200.0):
        signal = apply_filter(
            sharp, bfactor_filter(BOX, b_factor_angstrom2=b, voxel_size_angstrom=VOXEL)
        )
        h1 = signal + rng.normal(scale=sd, size=signal.shape)
        h2 = signal + rng.normal(scale=sd, size=signal.shape)
        resolution = gold_standard_fsc(
            h1, h2, mask=mask, voxel_size_angstrom=VOXEL
        ).resolution_0143_angstrom
        q = _q(0.5 * (h1 + h2), model).mean
        results.append((resolution, q))
    resolutions, qs = np.array(results).T
    assert resolutions.min() > 2.3 and resolutions.max() < 4.8, results  # the fitted range
    assert np.all(np.diff(resolutions) > 0) and np.all(np.diff(qs) < 0), results
    assert np.abs(qs - expected_q_score(resolutions)).max() < 0.15, results
