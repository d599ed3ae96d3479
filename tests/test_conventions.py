"""Tests of cryoprior.conventions: rounding, rfft layout, shells, RELION Euler angles.

The Euler convention is checked once against RELION 3.1's own projector: ``relion_project``
projects a small asymmetric phantom at chosen angles, and a real-space projection through
``euler_to_matrix`` must reproduce every image (correlation >= 0.99) while the transposed
matrix must not.
"""

from __future__ import annotations

import shutil
import subprocess

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from cryoprior.conventions import (
    euler_to_matrix,
    frequency_grid_rfft,
    matrix_to_euler,
    relion_round,
    rfft_frequency_indices,
    shell_index,
)


def _random_angles(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    rot = rng.uniform(-180.0, 180.0, size)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, size)))
    psi = rng.uniform(-180.0, 180.0, size)
    return rot, tilt, psi


# --- rounding and layout ---------------------------------------------------------------------


def test_relion_round_is_half_away_from_zero():
    assert relion_round(2.5) == 3
    assert relion_round(-2.5) == -3
    assert relion_round(0.49) == 0
    np.testing.assert_array_equal(relion_round([0.5, 1.5, -0.5, -1.4]), [1, 2, -1, -1])


@pytest.mark.parametrize("n", [7, 8])
@pytest.mark.parametrize("ndim", [2, 3])
def test_frequency_grid_rfft_matches_numpy_layout(n, ndim):
    grid = frequency_grid_rfft(n, ndim=ndim)
    assert grid.shape == (n,) * (ndim - 1) + (n // 2 + 1, ndim)
    assert grid.dtype == np.float64
    # A plane wave exp(2 pi i f.x) has its rfft peak exactly at the voxel whose grid value is f.
    index = (3,) * (ndim - 1) + (2,)
    freq = grid[index]
    coords = np.meshgrid(*([np.arange(n)] * ndim), indexing="ij")
    wave = np.cos(2 * np.pi * sum(f * c for f, c in zip(freq, coords, strict=True)))
    spectrum = np.abs(np.fft.rfftn(wave))
    assert np.unravel_index(np.argmax(spectrum), spectrum.shape) == index
    # The last axis is 0..n//2 and the others follow rfft_frequency_indices.
    np.testing.assert_allclose(grid[(0,) * (ndim - 1)][:, -1], np.arange(n // 2 + 1) / n)
    k0 = rfft_frequency_indices(n, ndim=ndim)[0].ravel()
    np.testing.assert_allclose(grid[(slice(None),) + (0,) * (ndim - 1)][:, 0], k0 / n)


@pytest.mark.parametrize("n", [9, 10])
def test_shell_index_is_relion_round_of_radius(n):
    shells = shell_index(n)
    assert shells.shape == (n, n, n // 2 + 1)
    assert shells.dtype == np.int64
    radius = np.linalg.norm(frequency_grid_rfft(n), axis=-1) * n
    np.testing.assert_array_equal(shells, np.floor(radius + 0.5).astype(np.int64))
    assert shells[0, 0, 0] == 0
    assert shells.max() == relion_round(np.sqrt(3 * (n // 2) ** 2))
    # Every shell 0..n//2 is populated.
    assert set(range(n // 2 + 1)) <= set(np.unique(shells).tolist())
    assert shell_index(n, ndim=2).shape == (n, n // 2 + 1)


# --- Euler angles ----------------------------------------------------------------------------


def test_euler_matrix_closed_forms():
    # Pure rot about z: RELION's matrix rotates the frame, i.e. is R_z(-rot).
    np.testing.assert_allclose(
        euler_to_matrix(90.0, 0.0, 0.0), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-15
    )
    # Pure tilt about y.
    np.testing.assert_allclose(
        euler_to_matrix(0.0, 90.0, 0.0), [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-15
    )
    # The projection direction (third row) is (cos rot sin tilt, sin rot sin tilt, cos tilt).
    rot, tilt = np.radians(30.0), np.radians(50.0)
    np.testing.assert_allclose(
        euler_to_matrix(30.0, 50.0, 77.0)[2],
        [np.cos(rot) * np.sin(tilt), np.sin(rot) * np.sin(tilt), np.cos(tilt)],
    )


def test_euler_matrix_is_a_rotation_and_batched_equals_looped():
    rot, tilt, psi = _random_angles(np.random.default_rng(1), 24)
    batched = euler_to_matrix(rot.reshape(4, 6), tilt.reshape(4, 6), psi.reshape(4, 6))
    assert batched.shape == (4, 6, 3, 3)
    assert batched.dtype == np.float64
    looped = np.stack([euler_to_matrix(*a) for a in zip(rot, tilt, psi, strict=True)])
    np.testing.assert_array_equal(batched.reshape(24, 3, 3), looped)
    eye = np.broadcast_to(np.eye(3), batched.shape)
    np.testing.assert_allclose(batched @ np.swapaxes(batched, -1, -2), eye, atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(batched), 1.0, atol=1e-14)
    # Scalars broadcast against arrays; integer input is accepted.
    assert euler_to_matrix(10, np.zeros(5), 0).shape == (5, 3, 3)


def test_scipy_zyz_is_relion_matrix_transposed():
    rot, tilt, psi = _random_angles(np.random.default_rng(2), 50)
    scipy_matrices = Rotation.from_euler(
        "ZYZ", np.stack([rot, tilt, psi], axis=-1), degrees=True
    ).as_matrix()
    relion = euler_to_matrix(rot, tilt, psi)
    np.testing.assert_allclose(scipy_matrices, np.swapaxes(relion, -1, -2), atol=1e-14)
    # ... and not the matrix itself (the check can fail).
    assert np.abs(scipy_matrices - relion).max() > 0.5


def test_matrix_to_euler_round_trip_compares_matrices():
    rot, tilt, psi = _random_angles(np.random.default_rng(3), 200)
    matrices = euler_to_matrix(rot, tilt, psi)
    back = matrix_to_euler(matrices)
    assert all(a.shape == (200,) and a.dtype == np.float64 for a in back)
    np.testing.assert_allclose(euler_to_matrix(*back), matrices, atol=1e-12)
    # Generic angles come back as they were (tilt in (0, 180), rot and psi in (-180, 180]).
    np.testing.assert_allclose(np.stack(back), np.stack([rot, tilt, psi]), atol=1e-9)
    # Batched == looped, and a single matrix gives scalars.
    single = matrix_to_euler(matrices[5])
    assert all(np.ndim(a) == 0 for a in single)
    np.testing.assert_allclose(single, [b[5] for b in back], atol=0)


def test_matrix_to_euler_input_not_modified():
    matrices = euler_to_matrix(*_random_angles(np.random.default_rng(4), 5))
    copy = matrices.copy()
    matrix_to_euler(matrices)
    np.testing.assert_array_equal(matrices, copy)
    with pytest.raises(ValueError, match="3, 3"):
        matrix_to_euler(np.eye(4))


@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        ((30.0, 0.0, 20.0), (0.0, 0.0, 50.0)),  # tilt 0: rot and psi merge into psi
        ((30.0, 1e-7, 20.0), (0.0, 0.0, 50.0)),  # below RELION's 16 FLT_EPSILON threshold
        ((170.0, 0.0, 40.0), (0.0, 0.0, -150.0)),  # wrapped to (-180, 180]
        ((30.0, 180.0, 20.0), (0.0, 180.0, -10.0)),  # tilt 180: psi - rot
    ],
)
def test_matrix_to_euler_gimbal_case(angles, expected):
    matrix = euler_to_matrix(*angles)
    back = matrix_to_euler(matrix)
    np.testing.assert_allclose(back, expected, atol=1e-5)
    np.testing.assert_allclose(euler_to_matrix(*back), matrix, atol=1e-6)


def test_matrix_to_euler_small_tilt_above_threshold_is_kept():
    back = matrix_to_euler(euler_to_matrix(30.0, 1e-3, 20.0))
    np.testing.assert_allclose(back, (30.0, 1e-3, 20.0), atol=1e-6)


# --- against RELION's own projector -----------------------------------------------------------

BOX = 32
# Generic orientations (tilt away from 0 and 180, where the transposed matrix is also wrong
# but by less), plus one pure in-plane rotation.
RELION_ANGLES = np.array(
    [
        [30.0, 40.0, 50.0],
        [-100.0, 120.0, 10.0],
        [200.0, 75.0, -60.0],
        [63.0, 95.0, 145.0],
        [-35.0, 58.0, -120.0],
        [150.0, 110.0, -20.0],
        [35.0, 0.0, 20.0],
    ]
)


def _phantom(n: int) -> np.ndarray:
    """Asymmetric phantom: four off-centre Gaussians of different widths and heights, (z, y, x)."""
    coords = np.arange(n, dtype=np.float64) - n // 2
    z, y, x = np.meshgrid(coords, coords, coords, indexing="ij")
    volume = np.zeros((n, n, n))
    for cz, cy, cx, sigma, height in [
        (3, -4, 6, 2.0, 1.0),
        (-5, 2, -3, 2.5, 0.7),
        (0, 6, 2, 1.5, 1.3),
        (-2, -6, -6, 1.8, 0.5),
    ]:
        r2 = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2
        volume += height * np.exp(-r2 / (2 * sigma**2))
    return volume


def _project_real_space(volume: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """P(x, y) = sum_z V(A^T (x, y, z)), coordinates (x, y, z) about voxel n//2; (y, x) image."""
    n = volume.shape[-1]
    coords = np.arange(n, dtype=np.float64) - n // 2
    z, y, x = np.meshgrid(coords, coords, coords, indexing="ij")
    image_xyz = np.stack([x, y, z], axis=-1)
    volume_xyz = image_xyz @ matrix  # row vector p @ A == (A^T p)^T
    sample_zyx = np.stack([volume_xyz[..., 2], volume_xyz[..., 1], volume_xyz[..., 0]]) + n // 2
    return map_coordinates(volume, sample_zyx, order=3, mode="constant").sum(axis=0)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def relion_projections(tmp_path_factory):
    """Projections of the phantom made by ``relion_project`` (RELION 3.1) at RELION_ANGLES."""
    if shutil.which("relion_project") is None:
        pytest.skip("relion_project (RELION 3.1) is not on PATH")
    work = tmp_path_factory.mktemp("relion_project")
    volume = _phantom(BOX)
    with mrcfile.new(work / "phantom.mrc") as mrc:
        mrc.set_data(volume.astype(np.float32))
        mrc.voxel_size = 1.0
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [1.0],
            "rlnImageSize": [BOX],
            "rlnImageDimensionality": [2],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
        }
    )
    particles = pd.DataFrame(
        {
            "rlnAngleRot": RELION_ANGLES[:, 0],
            "rlnAngleTilt": RELION_ANGLES[:, 1],
            "rlnAnglePsi": RELION_ANGLES[:, 2],
            "rlnOriginXAngst": 0.0,
            "rlnOriginYAngst": 0.0,
            "rlnOpticsGroup": 1,
        }
    )
    starfile.write({"optics": optics, "particles": particles}, work / "angles.star")
    subprocess.run(
        [
            "relion_project",
            "--i", "phantom.mrc",
            "--o", "proj",
            "--ang", "angles.star",
            "--angpix", "1",
        ],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    images = mrcfile.read(work / "proj.mrcs").astype(np.float64)
    assert images.shape == (len(RELION_ANGLES), BOX, BOX)
    return volume, images


@pytest.mark.relion
def test_euler_convention_reproduces_relion_project(relion_projections):
    volume, images = relion_projections
    matrices = euler_to_matrix(RELION_ANGLES[:, 0], RELION_ANGLES[:, 1], RELION_ANGLES[:, 2])
    for angles, matrix, image in zip(RELION_ANGLES, matrices, images, strict=True):
        right = _correlation(_project_real_space(volume, matrix), image)
        assert right >= 0.99, f"angles {angles}: cc {right:.4f} with RELION's matrix"
        # Wrong conventions must fail the same check: the transposed matrix (= scipy's ZYZ
        # matrix used as if it were RELION's) and RELION's matrix applied to (z, y, x) vectors.
        transposed = _correlation(_project_real_space(volume, matrix.T), image)
        assert transposed < 0.9, f"angles {angles}: transposed matrix gives cc {transposed:.4f}"
        zyx_confused = _correlation(_project_real_space(volume, matrix[::-1, ::-1]), image)
        assert zyx_confused < 0.9, f"angles {angles}: zyx-ordered matrix gives {zyx_confused:.4f}"
