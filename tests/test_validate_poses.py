"""Point groups (against RELION's own operators), angular and shift errors with symmetry,
view distributions and the attraction of misassigned views."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from cryoprior.conventions import euler_to_matrix, matrix_to_euler
from cryoprior.poses import Poses
from cryoprior.validate.poses import (
    attraction,
    match_poses,
    pose_errors,
    rotation_angle_degrees,
    view_directions,
    view_distribution,
)
from cryoprior.validate.symmetry import symmetry_operators

DATA = Path(__file__).parent / "data" / "validate"
GROUP_ORDERS = {"C1": 1, "C7": 7, "D2": 4, "D7": 14, "T": 12, "O": 24, "I": 60, "I1": 60, "I4": 60}


def _same_set(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    if len(a) != len(b):
        return False
    distance = np.abs(a[:, None] - b[None, :]).max(axis=(2, 3))
    return bool((distance.min(axis=1) < atol).all() and (distance.min(axis=0) < atol).all())


# --- point groups --------------------------------------------------------------------------------


@pytest.mark.parametrize("group", sorted(GROUP_ORDERS))
def test_groups_are_closed_orthonormal_rotation_groups(group):
    ops = symmetry_operators(group)
    assert len(ops) == GROUP_ORDERS[group]
    assert np.allclose(ops[0], np.eye(3))
    assert np.allclose(ops @ ops.transpose(0, 2, 1), np.eye(3), atol=1e-10)
    assert np.allclose(np.linalg.det(ops), 1.0)
    products = np.einsum("aij,bjk->abik", ops, ops).reshape(-1, 3, 3)
    distance = np.abs(products[:, None] - ops[None, :]).max(axis=(2, 3))
    assert (distance.min(axis=1) < 1e-9).all()  # closed under products


def test_groups_equal_the_operators_relion_prints():
    stored = json.loads((DATA / "relion_symmetry_ops.json").read_text())
    for group, matrices in stored["groups"].items():
        # RELION prints 5-8 significant digits
        assert _same_set(np.array(matrices), symmetry_operators(group), 1e-4), group


@pytest.mark.relion
@pytest.mark.skipif(shutil.which("relion_refine") is None, reason="relion_refine not on PATH")
@pytest.mark.parametrize("group", ["C5", "D3", "T", "O", "I2", "I3"])
def test_groups_equal_relion_refine_print_symmetry_ops(group, tmp_path):
    proc = subprocess.run(
        ["relion_refine", "--sym", group, "--print_symmetry_ops"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    lines = proc.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("R(")]
    relion = np.array(
        [[[float(v) for v in lines[i + k].split()] for k in (1, 2, 3)] for i in starts]
    )
    assert _same_set(relion, symmetry_operators(group), 1e-4)


def test_dihedral_groups_have_the_axis_along_z_and_a_two_fold_along_x():
    ops = symmetry_operators("D7")
    z_axis = ops @ np.array([0, 0, 1.0])
    assert np.isclose(z_axis[:, 2], 1.0).sum() == 7  # the 7-fold about z keeps z
    assert any(np.allclose(m, np.diag([1.0, -1.0, -1.0])) for m in ops)  # 2-fold about x


def test_unsupported_groups_are_rejected():
    for name in ("C0", "Cs", "D2h", "Oh", "X"):
        with pytest.raises(ValueError):
            symmetry_operators(name)


# --- pose errors ---------------------------------------------------------------------------------


def _table(rot, tilt, psi, x=None, y=None, names=None) -> Poses:
    n = len(rot)
    names = (
        np.array([f"{i + 1:06d}@p.mrcs" for i in range(n)], dtype=object)
        if names is None
        else names
    )
    return Poses(rot, tilt, psi, x, y, image_names=names)


def _random_table(n, seed) -> Poses:
    rng = np.random.default_rng(seed)
    rot, tilt, psi = matrix_to_euler(Rotation.random(n, random_state=rng).as_matrix())
    return _table(rot, tilt, psi, rng.normal(size=n), rng.normal(size=n))


def _with_matrices(table: Poses, matrices: np.ndarray, **changes) -> Poses:
    rot, tilt, psi = matrix_to_euler(matrices)
    fields = {
        "image_names": table.image_names,
        "rot_degrees": rot,
        "tilt_degrees": tilt,
        "psi_degrees": psi,
        "origin_x_angstrom": table.origin_x_angstrom,
        "origin_y_angstrom": table.origin_y_angstrom,
    }
    fields.update(changes)
    return Poses(**fields)


def test_identical_poses_have_no_error():
    t = _random_table(50, 0)
    e = pose_errors(t, t)
    assert np.allclose(e.angular_error_degrees, 0.0, atol=1e-5)
    assert np.allclose(e.direction_error_degrees, 0.0, atol=1e-5)
    assert np.allclose(e.shift_error_angstrom, 0.0)


def test_a_known_rotation_gives_its_angle():
    truth = _random_table(200, 1)
    rng = np.random.default_rng(2)
    angles = rng.uniform(0.5, 170.0, size=200)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    perturbation = Rotation.from_rotvec(np.deg2rad(angles)[:, None] * axes).as_matrix()
    refined = _with_matrices(truth, perturbation @ truth.matrices())
    e = pose_errors(refined, truth)
    assert np.allclose(e.angular_error_degrees, angles, atol=1e-5)
    assert np.all(e.direction_error_degrees <= e.angular_error_degrees + 1e-6)


def test_psi_only_errors_leave_the_viewing_direction_alone():
    truth = _table([10.0, 200.0], [30.0, 100.0], [0.0, 50.0])
    refined = _table([10.0, 200.0], [30.0, 100.0], [7.0, 80.0])
    e = pose_errors(refined, truth)
    assert e.angular_error_degrees == pytest.approx([7.0, 30.0])
    assert e.direction_error_degrees == pytest.approx([0.0, 0.0], abs=1e-5)


@pytest.mark.parametrize("group", ["C4", "D2", "T", "I"])
def test_symmetry_equivalent_poses_have_no_error_under_the_group_only(group):
    truth = _random_table(120, 3)
    ops = symmetry_operators(group)
    pick = np.random.default_rng(4).integers(1, len(ops), size=120)
    refined = _with_matrices(truth, truth.matrices() @ ops[pick])  # A_true @ L
    assert np.allclose(
        pose_errors(refined, truth, symmetry=group).angular_error_degrees, 0, atol=1e-4
    )
    assert np.median(pose_errors(refined, truth).angular_error_degrees) > 30.0


def test_errors_are_the_smallest_over_the_group():
    truth = _random_table(100, 5)
    rng = np.random.default_rng(6)
    small = Rotation.from_rotvec(
        np.deg2rad(3.0) * Rotation.random(100, random_state=rng).as_rotvec() / np.pi
    ).as_matrix()
    ops = symmetry_operators("D7")
    pick = rng.integers(0, len(ops), size=100)
    refined = _with_matrices(truth, small @ truth.matrices() @ ops[pick])
    e = pose_errors(refined, truth, symmetry="D7")
    expected = rotation_angle_degrees(small, np.eye(3))
    assert np.allclose(e.angular_error_degrees, expected, atol=1e-5)


def test_shift_error_is_the_in_plane_distance():
    truth = _table([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, -2.0], [0.0, 3.0])
    refined = _table([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4.0, -2.0], [4.0, 3.0])
    e = pose_errors(refined, truth)
    assert e.shift_error_angstrom == pytest.approx([5.0, 0.0])
    summary = e.summary()
    assert summary["shift_error_angstrom"]["median"] == pytest.approx(2.5)
    assert summary["n_particles"] == 2


def test_particles_are_matched_by_image_name():
    truth = _random_table(30, 7)
    order = np.random.default_rng(8).permutation(30)[:20]
    refined = truth.take(order)  # shuffled subset
    a, b = match_poses(refined, truth)
    assert list(a.image_names) == list(b.image_names) == list(truth.image_names[order])
    assert np.allclose(pose_errors(refined, truth).angular_error_degrees, 0.0, atol=1e-5)
    stranger = _table([0.0], [0.0], [0.0], names=np.array(["999@x.mrcs"], dtype=object))
    assert len(pose_errors(stranger, truth).angular_error_degrees) == 0


@pytest.mark.relion
def test_relion_projects_a_symmetric_map_alike_from_a_and_a_times_l(tmp_path):
    """The convention A ~ A @ L (not L @ A) checked with relion_project on a D2-symmetric map."""
    if shutil.which("relion_project") is None:
        pytest.skip("relion_project (RELION 3.1) is not on PATH")
    import mrcfile
    import starfile

    from cryoprior.io.mrc import write_map_atomic

    n = 32
    rng = np.random.default_rng(9)
    blob = np.zeros((n, n, n))
    points = rng.uniform(-8, 8, size=(12, 3))
    ops = symmetry_operators("D2")
    z, y, x = np.indices((n, n, n)) - n // 2
    for p in points:
        for m in ops:
            q = m @ p  # (x, y, z) point mapped by the group
            blob += np.exp(-((x - q[0]) ** 2 + (y - q[1]) ** 2 + (z - q[2]) ** 2) / 4.0)
    write_map_atomic(tmp_path / "sym.mrc", blob, voxel_size_angstrom=1.0)
    base = euler_to_matrix(37.0, 61.0, -23.0)
    other = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # 2-fold about x, in D2
    rows = []
    for matrix in (base, base @ other, other @ base):
        rot, tilt, psi = matrix_to_euler(matrix)
        rows.append(
            {
                "rlnAngleRot": float(rot),
                "rlnAngleTilt": float(tilt),
                "rlnAnglePsi": float(psi),
                "rlnOriginXAngst": 0.0,
                "rlnOriginYAngst": 0.0,
                "rlnOpticsGroup": 1,
            }
        )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [1.0],
            "rlnImageSize": [n],
            "rlnImageDimensionality": [2],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
        }
    )
    starfile.write(
        {"optics": optics, "particles": pd.DataFrame(rows)},
        tmp_path / "angles.star",
        overwrite=True,
    )
    subprocess.run(
        [
            "relion_project",
            "--i",
            "sym.mrc",
            "--o",
            "proj",
            "--ang",
            "angles.star",
            "--angpix",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    images = mrcfile.read(tmp_path / "proj.mrcs").astype(np.float64)

    def cc(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    assert cc(images[0], images[1]) > 0.999  # A @ L: the same view
    assert cc(images[0], images[2]) < 0.9  # L @ A: another view


# --- views ---------------------------------------------------------------------------------------


def test_view_directions_are_the_third_row_of_the_matrix():
    rot, tilt = np.array([10.0, 120.0]), np.array([30.0, 150.0])
    assert np.allclose(view_directions(rot, tilt), euler_to_matrix(rot, tilt, 77.0)[:, 2, :])


def test_uniform_views_fill_equal_area_bins_evenly():
    rng = np.random.default_rng(10)
    directions = rng.normal(size=(72000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rot = np.rad2deg(np.arctan2(directions[:, 1], directions[:, 0]))
    tilt = np.rad2deg(np.arccos(directions[:, 2]))
    d = view_distribution(rot, tilt, n_rot_bins=12, n_tilt_bins=6)
    expected = 72000 / 72
    chi2 = ((d.counts - expected) ** 2 / expected).sum()
    assert chi2 < 71 + 5 * np.sqrt(2 * 71)
    assert d.occupied_fraction == 1.0
    assert d.max_over_mean < 1.2
    assert d.tilt_edges_degrees[0] == 0.0 and d.tilt_edges_degrees[-1] == 180.0


def test_attraction_detects_views_pulled_towards_the_crowded_direction():
    rng = np.random.default_rng(11)
    n = 2000
    # 60% of particles near the top view (tilt < 25), the rest uniform
    crowded = rng.random(n) < 0.6
    tilt = np.where(crowded, rng.uniform(0, 25, n), np.rad2deg(np.arccos(rng.uniform(-1, 1, n))))
    rot = rng.uniform(-180, 180, n)
    psi = rng.uniform(-180, 180, n)
    truth = _table(rot, tilt, psi)
    # misassign 300 uniform-view particles: move their views into the crowded cap
    wrong = np.nonzero(~crowded & (tilt > 60))[0][:300]
    refined_tilt = tilt.copy()
    refined_tilt[wrong] = rng.uniform(0, 20, wrong.size)
    pulled = attraction(_table(rot, refined_tilt, psi), truth)
    assert pulled["n_misassigned"] == wrong.size
    assert pulled["towards_denser_fraction"] > 0.95
    assert pulled["mean_density_ratio"] > 2.0
    assert pulled["total_variation"] > 0.1
    # misassigned away from the crowd: the opposite
    pushed_tilt = tilt.copy()
    moved = np.nonzero(crowded)[0][:300]
    pushed_tilt[moved] = rng.uniform(120, 180, moved.size)
    pushed = attraction(_table(rot, pushed_tilt, psi), truth)
    assert pushed["towards_denser_fraction"] < 0.05
    none = attraction(truth, truth)
    assert none["n_misassigned"] == 0 and none["towards_denser_fraction"] is None
