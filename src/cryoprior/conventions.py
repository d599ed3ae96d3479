"""Conventions shared by every module: axis order, Fourier layout, shells, RELION Euler angles.

Axis order
    Arrays are (z, y, x) - MRC sections, rows, columns - as mrcfile returns them. A 2D image
    is (y, x). The centre of a box of size n (the rotation centre, RELION's "Xmipp origin") is
    the voxel with index n//2 along every axis.

Fourier layout
    Half-complex "rfft" arrays of a real (n, n, n) volume have shape (n, n, n//2+1), FFTW
    order, not centred (as ``numpy.fft.rfftn`` / ``scipy.fft.rfftn``). Along z and y, index i
    means frequency i if i < n//2+1 else i-n (so for even n the index n//2 is the *positive*
    Nyquist, as RELION's ``FOR_ALL_ELEMENTS_IN_FFTW_TRANSFORM``); along x, index j is
    frequency j = 0..n//2. "Fourier voxels" are these integer frequencies k; in cycles/voxel
    the frequency is k/n, and in 1/Angstrom it is k / (n * voxel_size_angstrom). 2D images use
    the same layout on (n, n//2+1). Forward transforms are unnormalised (numpy's default);
    RELION's ``FourierTransformer`` divides the forward transform by the number of voxels.

Shells
    The shell of a Fourier voxel is ``ROUND(|k|)`` with RELION's ROUND (half away from zero,
    :func:`relion_round`), |k| in Fourier voxels. Shells 0..n//2 lie within Nyquist.

Euler angles (RELION, ZYZ, degrees)
    ``A = euler_to_matrix(rot, tilt, psi)`` is RELION's ``Euler_angles2matrix`` and acts on
    (x, y, z) column vectors. RELION's projection of a volume V with these angles is

        P(x, y) = integral over z of V(A^T (x, y, z)) dz     (real space, origin at n//2),

    and, equivalently, the 2D Fourier component (kx, ky) of the image is the 3D Fourier
    component of V at A^T (kx, ky, 0): ``A`` rotates the volume into the image frame and
    the projection is along z. ``scipy.spatial.transform.Rotation.from_euler("ZYZ",
    [rot, tilt, psi], degrees=True).as_matrix()`` equals ``A.T`` (as do the rotation matrices
    teamtomo's torch-fourier-slice takes). To act on (z, y, x)-ordered vectors use
    ``A[..., ::-1, ::-1]``. Checked against ``relion_project`` (RELION 3.1.3) in
    ``tests/test_conventions.py``.

Rounding
    RELION's ROUND macro rounds half away from zero (:func:`relion_round`), unlike numpy's
    round-half-to-even.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "euler_to_matrix",
    "frequency_grid_rfft",
    "matrix_to_euler",
    "relion_round",
    "rfft_frequency_indices",
    "shell_index",
]

# RELION's Euler_matrix2angles thresholds use single-precision epsilon (FLT_EPSILON).
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def relion_round(x):
    """RELION's ROUND: half away from zero. Scalars give int, arrays give int64 arrays."""
    arr = np.asarray(x, dtype=np.float64)
    out = np.where(arr >= 0, np.floor(arr + 0.5), np.ceil(arr - 0.5)).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def rfft_frequency_indices(n: int, *, ndim: int = 3) -> tuple[np.ndarray, ...]:
    """Signed integer frequency indices of a half-complex array of logical size ``n``.

    Returns broadcastable int64 arrays (kz, ky, kx) for ndim 3, or (ky, kx) for ndim 2,
    with full axes in FFTW order (k if k < n//2+1 else k-n) and the last axis 0..n//2.
    """
    full = np.arange(n, dtype=np.int64)
    full = np.where(full < n // 2 + 1, full, full - n)
    half = np.arange(n // 2 + 1, dtype=np.int64)
    if ndim == 3:
        return full[:, None, None], full[None, :, None], half[None, None, :]
    if ndim == 2:
        return full[:, None], half[None, :]
    raise ValueError(f"ndim must be 2 or 3, not {ndim}")


def frequency_grid_rfft(n: int, *, ndim: int = 3) -> np.ndarray:
    """Frequencies of every voxel of a half-complex (rfft) array, in cycles/voxel.

    Parameters
    ----------
    n: logical (real-space) box size.
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    float64 array, Fourier space, shape (n, n, n//2+1, 3) with components (fz, fy, fx) for
    ndim 3, or (n, n//2+1, 2) with (fy, fx) for ndim 2; values k/n in [-0.5, 0.5].

    Example
    -------
    >>> frequency_grid_rfft(4, ndim=2)[3, 2]
    array([-0.25,  0.5 ])
    """
    indices = rfft_frequency_indices(n, ndim=ndim)
    grids = np.broadcast_arrays(*indices)
    return np.stack(grids, axis=-1).astype(np.float64) / n


def shell_index(n: int, *, ndim: int = 3) -> np.ndarray:
    """Shell ``ROUND(|k|)`` (|k| in Fourier voxels, RELION rounding) of each rfft voxel.

    Parameters
    ----------
    n: logical (real-space) box size.
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    int64 array, Fourier space, shape (n, n, n//2+1) (ndim 3) or (n, n//2+1) (ndim 2).
    Shells 0..n//2 are within Nyquist; corner voxels reach ROUND(sqrt(ndim) * n / 2).

    Example
    -------
    >>> shell_index(4, ndim=2)[1]
    array([1, 1, 2])
    """
    indices = rfft_frequency_indices(n, ndim=ndim)
    radius2 = sum(k.astype(np.float64) ** 2 for k in indices)
    return relion_round(np.sqrt(radius2))


def euler_to_matrix(rot_degrees, tilt_degrees, psi_degrees) -> np.ndarray:
    """RELION's ``Euler_angles2matrix``: ZYZ Euler angles (degrees) to rotation matrices.

    Parameters
    ----------
    rot_degrees, tilt_degrees, psi_degrees: real scalars or arrays (rlnAngleRot,
        rlnAngleTilt, rlnAnglePsi), broadcast together to a batch shape (...).

    Returns
    -------
    float64 array of shape (..., 3, 3), orthonormal with determinant 1, acting on (x, y, z)
    column vectors (see the module docstring for what it means for projections). Equals
    ``Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True).as_matrix()`` transposed.

    Example
    -------
    >>> euler_to_matrix(90.0, 0.0, 0.0).round(12) + 0.0
    array([[ 0.,  1.,  0.],
           [-1.,  0.,  0.],
           [ 0.,  0.,  1.]])
    """
    alpha, beta, gamma = np.broadcast_arrays(
        *(
            np.deg2rad(np.asarray(a, dtype=np.float64))
            for a in (rot_degrees, tilt_degrees, psi_degrees)
        )
    )
    ca, sa = np.cos(alpha), np.sin(alpha)
    cb, sb = np.cos(beta), np.sin(beta)
    cg, sg = np.cos(gamma), np.sin(gamma)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    rows = (
        (cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb),
        (-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb),
        (sc, ss, cb),
    )
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_euler(matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RELION's ``Euler_matrix2angles``: rotation matrices to ZYZ Euler angles (degrees).

    Follows RELION branch for branch, including the gimbal case: when
    ``sqrt(A[0,2]^2 + A[1,2]^2) <= 16 * FLT_EPSILON`` (tilt ~ 0 or ~ 180) it returns rot = 0,
    tilt = 0 (or 180 when ``A[2,2] < 0``) and puts the whole in-plane angle in psi.

    Parameters
    ----------
    matrix: real array of shape (..., 3, 3), rotation matrices in RELION's convention
        (as :func:`euler_to_matrix` returns).

    Returns
    -------
    (rot_degrees, tilt_degrees, psi_degrees): float64 arrays of shape (...) (numpy scalars for
    a single matrix); rot and psi in [-180, 180], tilt in [0, 180] for proper rotations.
    Angles are not unique: compare the matrices, not the angles.

    Example
    -------
    >>> [round(float(a), 6) for a in matrix_to_euler(euler_to_matrix(30.0, 0.0, 20.0))]
    [0.0, 0.0, 50.0]
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), not {a.shape}")
    a02, a12 = a[..., 0, 2], a[..., 1, 2]
    a20, a21, a22 = a[..., 2, 0], a[..., 2, 1], a[..., 2, 2]
    a00, a10 = a[..., 0, 0], a[..., 1, 0]

    abs_sb = np.sqrt(a02 * a02 + a12 * a12)
    regular = abs_sb > 16 * _FLT_EPSILON

    gamma = np.arctan2(a12, -a02)
    alpha = np.arctan2(a21, a20)
    sin_g, cos_g = np.sin(gamma), np.cos(gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        sign_from_cos = _sgn(-a02 / cos_g)
    sign_from_sin = np.where(sin_g > 0, _sgn(a12), -_sgn(a12))
    sign_sb = np.where(np.abs(sin_g) < _FLT_EPSILON, sign_from_cos, sign_from_sin)
    beta = np.arctan2(sign_sb * abs_sb, a22)

    upright = _sgn(a22) > 0
    gimbal_gamma = np.where(upright, np.arctan2(-a10, a00), np.arctan2(a10, -a00))
    gimbal_beta = np.where(upright, 0.0, np.pi)

    rot = np.where(regular, alpha, 0.0)
    tilt = np.where(regular, beta, gimbal_beta)
    psi = np.where(regular, gamma, gimbal_gamma)
    return np.rad2deg(rot)[()], np.rad2deg(tilt)[()], np.rad2deg(psi)[()]


def _sgn(x: np.ndarray) -> np.ndarray:
    """RELION's SGN macro: 1 for x >= 0, else -1 (NaN gives -1, as in C)."""
    return np.where(x >= 0, 1.0, -1.0)
