"""Tests of orientation sets and shifts (cryoprior.simulate.poses).

Closed forms: directions uniform on the sphere have cos(tilt) uniform (mean 0, variance 1/3)
and a uniform rot; a grid at step d has neighbours about d apart and about 4 pi / d^2
directions; a cone over-represented by a factor f holds f times the density of directions;
shifts drawn with SD s have SD s. The pose type and its STAR reader: tests/test_poses.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from cryoprior.poses import Poses
from cryoprior.simulate.poses import (
    cone_fraction,
    grid_poses,
    over_represent_cone,
    uniform_poses,
    with_random_shifts,
)


def _directions(poses: Poses) -> np.ndarray:
    """Unit viewing directions, the third row of RELION's matrix, (n, 3)."""
    return poses.matrices()[:, 2, :]


def test_uniform_poses_are_uniform_and_seeded():
    poses = uniform_poses(20000, seed=1)
    assert len(poses) == 20000
    cos_tilt = np.cos(np.radians(poses.tilt_degrees))
    assert abs(cos_tilt.mean()) < 0.02 and abs(cos_tilt.var() - 1 / 3) < 0.01
    assert abs(_directions(poses).mean(axis=0)).max() < 0.02
    assert poses.rot_degrees.min() >= -180 and poses.psi_degrees.max() < 180
    np.testing.assert_array_equal(uniform_poses(50, seed=3).rot_degrees,
                                  uniform_poses(50, seed=3).rot_degrees)  # fmt: skip
    assert not np.array_equal(uniform_poses(50, seed=3).rot_degrees,
                              uniform_poses(50, seed=4).rot_degrees)  # fmt: skip
    np.testing.assert_array_equal(poses.origin_x_angstrom, 0.0)
    with pytest.raises(ValueError):
        poses.rot_degrees[0] = 1.0  # read-only


@pytest.mark.parametrize("step", [1.5, 5.0, 15.0])
def test_grid_is_even_at_the_step(step):
    poses = grid_poses(step, seed=0)
    n = len(poses)
    expected = 4 * np.pi / np.radians(step) ** 2
    assert abs(n - expected) / expected < 0.02
    if step == 1.5:
        assert n == 18338  # the paper's Xmipp 1.5-degree sampling gave 18,309
    directions = _directions(poses)
    distances, _ = cKDTree(directions).query(directions, k=2)
    nearest = np.degrees(2 * np.arcsin(distances[:, 1] / 2))
    assert np.median(nearest) == pytest.approx(step, rel=0.1)
    assert nearest.max() < 1.5 * step
    assert poses.tilt_degrees.min() == 0 and poses.tilt_degrees.max() == 180
    fixed = grid_poses(step, psi_degrees=0.0)
    np.testing.assert_array_equal(fixed.psi_degrees, 0.0)


def test_cone_over_representation_factor():
    base = grid_poses(3.0, seed=0)
    poses = over_represent_cone(base, factor=4.0, tilt_max_degrees=40.0, seed=2)
    inside_base = int((base.tilt_degrees <= 40).sum())
    assert len(poses) == len(base) + round(3.0 * inside_base)
    np.testing.assert_array_equal(poses.rot_degrees[: len(base)], base.rot_degrees)
    extra = poses.take(slice(len(base), None))
    assert extra.tilt_degrees.max() <= 40.0
    # density (directions per solid angle) inside the cone / outside = the factor
    inside = (poses.tilt_degrees <= 40).sum() / cone_fraction(0, 40)
    outside = (poses.tilt_degrees > 40).sum() / (1 - cone_fraction(0, 40))
    assert inside / outside == pytest.approx(4.0, rel=0.03)
    # within the cone the extra views are uniform in cos(tilt)
    cos_extra = np.cos(np.radians(extra.tilt_degrees))
    assert cos_extra.mean() == pytest.approx((1 + np.cos(np.radians(40))) / 2, abs=0.01)
    assert len(over_represent_cone(base, factor=1.0, seed=0)) == len(base)
    with pytest.raises(ValueError):
        over_represent_cone(base, factor=0.5, seed=0)


def test_paper_proteasome_set_size():
    """Grid at 1.5 degrees plus the tilt cone 0-40 at factor 3.8401: the paper's 24,359."""
    poses = over_represent_cone(grid_poses(1.5, seed=0), factor=3.8401, seed=1)
    assert len(poses) == 24359


def test_random_shifts_and_relion_sign():
    poses = with_random_shifts(uniform_poses(5000, seed=0), sd_angstrom=3.0, seed=1)
    assert poses.origin_x_angstrom.std() == pytest.approx(3.0, rel=0.05)
    assert poses.origin_y_angstrom.std() == pytest.approx(3.0, rel=0.05)
    shifts = poses.shifts_pixels(1.5)
    np.testing.assert_allclose(shifts[:, 0], -poses.origin_y_angstrom / 1.5)
    np.testing.assert_allclose(shifts[:, 1], -poses.origin_x_angstrom / 1.5)
    with pytest.raises(ValueError):
        with_random_shifts(poses, sd_angstrom=-1.0, seed=0)
