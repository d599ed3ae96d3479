"""Frequency grids, Fourier radii and radial shells for full and half-complex (rfft) layouts.

Layouts are described in :mod:`cryoprior.conventions`: arrays are (z, y, x), Fourier arrays are
not centred (FFTW order), half-complex arrays keep x frequencies 0..n//2. Frequencies are in
cycles/voxel; radii and shells in Fourier voxels (cycles per box).
"""

from __future__ import annotations

import numpy as np

from cryoprior.conventions import frequency_grid_rfft, relion_round, shell_index

__all__ = [
    "fourier_radius",
    "frequency_grid",
    "frequency_grid_rfft",
    "radial_average",
    "real_space_radius",
    "resolution_to_shell",
    "shell_counts",
    "shell_index",
    "shell_resolution_angstrom",
]


def frequency_grid(n: int, *, ndim: int = 3) -> np.ndarray:
    """Frequencies of every voxel of a full (complex, ``fftn``) array, in cycles/voxel.

    Parameters
    ----------
    n: logical box size.
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    float64 array, Fourier space, shape (n,)*ndim + (ndim,), components (fz, fy, fx) or
    (fy, fx), FFTW order along every axis with the convention of
    :mod:`cryoprior.conventions` (index i is i/n if i < n//2+1 else (i-n)/n, so for even n the
    index n//2 holds +0.5, unlike ``numpy.fft.fftfreq``). ``frequency_grid(n)[..., :n//2+1, :]``
    equals :func:`frequency_grid_rfft`.

    Example
    -------
    >>> frequency_grid(4, ndim=2)[2, 3]
    array([ 0.5 , -0.25])
    """
    _check_ndim(ndim)
    index = np.arange(n)
    freqs = np.where(index < n // 2 + 1, index, index - n).astype(np.float64) / n
    grids = np.meshgrid(*([freqs] * ndim), indexing="ij")
    return np.stack(grids, axis=-1)


def fourier_radius(n: int, *, ndim: int = 3, rfft: bool = True) -> np.ndarray:
    """Distance |k| of every Fourier voxel from the origin, in Fourier voxels (= n * cycles/voxel).

    Parameters
    ----------
    n: logical box size.
    ndim: 3 for volumes, 2 for images.
    rfft: half-complex layout (n, ..., n//2+1) if True, else the full layout (n,)*ndim.

    Returns
    -------
    float64 array, Fourier space, shape (n, n, n//2+1) / (n, n, n) for ndim 3 (and the 2D
    equivalents).

    Example
    -------
    >>> fourier_radius(4, ndim=2)[1]
    array([1.        , 1.41421356, 2.23606798])
    """
    grid = frequency_grid_rfft(n, ndim=ndim) if rfft else frequency_grid(n, ndim=ndim)
    return np.sqrt(np.sum(grid**2, axis=-1)) * n


def real_space_radius(n: int, *, ndim: int = 3) -> np.ndarray:
    """Distance of every voxel from the box centre (index n//2 on every axis), in voxels.

    Returns
    -------
    float64 array, real space, shape (n,)*ndim.

    Example
    -------
    >>> real_space_radius(4, ndim=2)[2]
    array([2., 1., 0., 1.])
    """
    _check_ndim(ndim)
    coords = np.arange(n, dtype=np.float64) - n // 2
    grids = np.meshgrid(*([coords] * ndim), indexing="ij")
    return np.sqrt(sum(g**2 for g in grids))


def shell_counts(n: int, *, ndim: int = 3) -> np.ndarray:
    """Count the half-complex voxels in each shell ``ROUND(|k|)`` = 0..n//2.

    Counts voxels of the rfft array (each stored voxel once; Hermitian partners with kx > 0 are
    not counted twice), as RELION's shell loops do. Corner voxels beyond shell n//2 are left out.

    Returns
    -------
    int64 array of shape (n//2+1,).

    Example
    -------
    >>> shell_counts(4, ndim=2)
    array([1, 5, 5])
    """
    shells = shell_index(n, ndim=ndim).ravel()
    return np.bincount(shells, minlength=n // 2 + 1)[: n // 2 + 1].astype(np.int64)


def radial_average(values_rfft, *, n: int, ndim: int = 3) -> np.ndarray:
    """Average of a Fourier-space quantity over the shells ``ROUND(|k|)`` = 0..n//2.

    The mean is over the stored voxels of the half-complex array, unweighted (as RELION's
    spectra, e.g. its sigma2 and tau2), voxels beyond shell n//2 (the corners) are ignored.

    Parameters
    ----------
    values_rfft: real or complex array, Fourier space, rfft layout, shape (..., n, n, n//2+1)
        for ndim 3 or (..., n, n//2+1) for ndim 2; leading batch dimensions allowed.
    n: logical (real-space) box size.
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    float64 array (complex128 for complex input) of shape (..., n//2+1).

    Example
    -------
    >>> radial_average(fourier_radius(8) ** 2, n=8)[:3].round(3)
    array([0.   , 1.615, 4.973])
    """
    values = np.asarray(values_rfft)
    shape = (n, n, n // 2 + 1) if ndim == 3 else (n, n // 2 + 1)
    _check_ndim(ndim)
    if values.shape[-ndim:] != shape:
        raise ValueError(f"values_rfft must end in shape {shape} for n={n}, not {values.shape}")
    if np.iscomplexobj(values):
        return radial_average(values.real, n=n, ndim=ndim) + 1j * radial_average(
            values.imag, n=n, ndim=ndim
        )
    n_shells = n // 2 + 1
    shells = shell_index(n, ndim=ndim).ravel()
    inside = shells < n_shells
    batch = values.shape[:-ndim]
    flat = values.astype(np.float64, copy=False).reshape(-1, shells.size)[:, inside]
    # Index shells per batch row with offsets so that one bincount handles the whole batch.
    offsets = np.arange(flat.shape[0])[:, None] * n_shells
    sums = np.bincount(
        (shells[inside][None, :] + offsets).ravel(),
        weights=flat.ravel(),
        minlength=flat.shape[0] * n_shells,
    )
    counts = np.bincount(shells[inside], minlength=n_shells)
    return (sums.reshape(flat.shape[0], n_shells) / counts).reshape(*batch, n_shells)


def shell_resolution_angstrom(n: int, *, voxel_size_angstrom: float) -> np.ndarray:
    """Resolution of shells 0..n//2 in Angstrom: ``n * voxel_size_angstrom / s`` (inf for s = 0).

    Returns
    -------
    float64 array of shape (n//2+1,).

    Example
    -------
    >>> shell_resolution_angstrom(8, voxel_size_angstrom=1.5).tolist()
    [inf, 12.0, 6.0, 4.0, 3.0]
    """
    shells = np.arange(n // 2 + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return n * float(voxel_size_angstrom) / shells


def resolution_to_shell(resolution_angstrom: float, *, n: int, voxel_size_angstrom: float) -> int:
    """Return the shell ``ROUND(n * voxel_size_angstrom / resolution_angstrom)`` of a resolution.

    RELION's rounding, as its ``ires`` values.

    Example
    -------
    >>> resolution_to_shell(4.0, n=64, voxel_size_angstrom=1.0)
    16
    """
    return relion_round(n * float(voxel_size_angstrom) / float(resolution_angstrom))


def _check_ndim(ndim: int) -> None:
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, not {ndim}")
