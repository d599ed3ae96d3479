"""Fourier filters as real arrays on the half-complex (rfft) grid, and their application.

Every constructor returns a float64 array of shape (n, n, n//2+1) (or (n, n//2+1) with
``ndim=2``) in the rfft layout of :mod:`cryoprior.conventions`, to be multiplied with
``numpy.fft.rfftn`` of a real map - which :func:`apply_filter` does.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from cryoprior.conventions import frequency_grid_rfft

__all__ = [
    "apply_filter",
    "bfactor_filter",
    "butterworth_lowpass",
    "gridding_kernel",
    "raised_cosine_lowpass",
]


def raised_cosine_lowpass(
    n: int,
    *,
    resolution_angstrom: float,
    voxel_size_angstrom: float,
    width_fourier_voxels: float = 2.0,
    ndim: int = 3,
) -> np.ndarray:
    """Low-pass filter with a raised-cosine edge centred at ``resolution_angstrom``.

    As RELION's ``lowPassFilterMap`` (``relion_image_handler --lowpass``, edge width 2 Fourier
    voxels by default), except that the edge is centred at the exact frequency
    ``k_c = n * voxel_size_angstrom / resolution_angstrom`` instead of RELION's rounded shell:
    1 for |k| <= k_c - w/2, 0 for |k| >= k_c + w/2, and ``0.5 + 0.5 cos(pi (|k| - k_c + w/2) / w)``
    between (0.5 at the cut-off), |k| in Fourier voxels, w = ``width_fourier_voxels``.

    Parameters
    ----------
    n: logical (real-space) box size.
    resolution_angstrom: cut-off resolution (> 0).
    voxel_size_angstrom: voxel size of the map.
    width_fourier_voxels: full width of the cosine edge, in Fourier voxels (> 0).
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    float64 array, Fourier space, rfft layout, shape (n, n, n//2+1) (ndim 3) or (n, n//2+1),
    values in [0, 1].

    Example
    -------
    >>> f = raised_cosine_lowpass(
    ...     32, resolution_angstrom=8.0, voxel_size_angstrom=1.0, width_fourier_voxels=4.0
    ... )
    >>> f[0, 0, 1:8].round(3).tolist()
    [1.0, 1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
    """
    if resolution_angstrom <= 0 or voxel_size_angstrom <= 0 or width_fourier_voxels <= 0:
        raise ValueError(
            "resolution_angstrom, voxel_size_angstrom and width_fourier_voxels must be positive"
        )
    radius = _radius_fourier_voxels(n, ndim)
    cutoff = n * float(voxel_size_angstrom) / float(resolution_angstrom)
    edge_low = cutoff - 0.5 * float(width_fourier_voxels)
    t = np.clip((radius - edge_low) / float(width_fourier_voxels), 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * t)


def butterworth_lowpass(
    n: int, *, cutoff_cycles_per_voxel: float, order: int, ndim: int = 3
) -> np.ndarray:
    """Butterworth amplitude low-pass ``1 / sqrt(1 + (f / cutoff_cycles_per_voxel)^(2 order))``.

    ``f`` and ``cutoff_cycles_per_voxel`` are in cycles/voxel (Nyquist = 0.5). With ``order=8`` this is
    SIDESPLITTER's ``1/sqrt(1 + (f/h)^16)``. The value at the cut-off is 1/sqrt(2).

    Parameters
    ----------
    n: logical (real-space) box size.
    cutoff_cycles_per_voxel: cut-off in cycles/voxel (> 0).
    order: filter order (> 0); higher is steeper.
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    float64 array, Fourier space, rfft layout, shape (n, n, n//2+1) (ndim 3) or (n, n//2+1),
    values in (0, 1].

    Example
    -------
    >>> butterworth_lowpass(16, cutoff_cycles_per_voxel=0.25, order=8)[0, 0, 4].round(6)
    np.float64(0.707107)
    """
    if cutoff_cycles_per_voxel <= 0 or order <= 0:
        raise ValueError("cutoff_cycles_per_voxel and order must be positive")
    ratio = _radius_fourier_voxels(n, ndim) / (n * float(cutoff_cycles_per_voxel))
    return 1.0 / np.sqrt(1.0 + ratio ** (2 * order))


def bfactor_filter(
    n: int, *, b_factor_angstrom2: float, voxel_size_angstrom: float, ndim: int = 3
) -> np.ndarray:
    """Temperature-factor filter ``exp(-B s^2 / 4)``, s = spatial frequency in 1/Angstrom.

    A positive ``b_factor_angstrom2`` blurs, a negative one sharpens (as RELION's
    ``--adhoc_bfac`` / postprocess B-factor, where sharpening is B < 0). Blurring a Gaussian of
    standard deviation sigma gives a Gaussian with variance ``sigma^2 + B / (8 pi^2)``.

    Parameters
    ----------
    n: logical (real-space) box size.
    b_factor_angstrom2: B in Angstrom^2.
    voxel_size_angstrom: voxel size of the map.
    ndim: 3 for volumes, 2 for images.

    Returns
    -------
    float64 array, Fourier space, rfft layout, shape (n, n, n//2+1) (ndim 3) or (n, n//2+1).

    Example
    -------
    >>> bfactor_filter(16, b_factor_angstrom2=100.0, voxel_size_angstrom=2.0)[0, 0, 8].round(6)
    np.float64(0.209611)
    """
    if voxel_size_angstrom <= 0:
        raise ValueError("voxel_size_angstrom must be positive")
    s = _radius_fourier_voxels(n, ndim) / (n * float(voxel_size_angstrom))
    return np.exp(-float(b_factor_angstrom2) * s**2 / 4.0)


def apply_filter(volume, filter_rfft, *, ndim: int | None = None) -> np.ndarray:
    """Multiply a real map's Fourier transform by a filter and transform back (real -> real).

    Parameters
    ----------
    volume: real array, real space, shape (..., n, n, n) (or (..., n, n) for images);
        leading batch dimensions broadcast with the filter's.
    filter_rfft: real or complex array, Fourier space, rfft layout, shape (..., n, n, n//2+1)
        (or (..., n, n//2+1)), e.g. from :func:`raised_cosine_lowpass`.
    ndim: number of spatial dimensions (2 or 3). ``None`` infers it: 2 when either array is
        2D, else 3 when the filter ends in (n, n, n//2+1) matching the volume, else 2.

    Returns
    -------
    float64 array, real space, shape broadcast(volume batch, filter batch) + (n,)*ndim.
    The inputs are not modified.

    Example
    -------
    >>> v = np.random.default_rng(0).normal(size=(8, 8, 8))
    >>> bool(np.allclose(apply_filter(v, np.ones((8, 8, 5))), v))
    True
    """
    vol = np.asarray(volume, dtype=np.float64)
    filt = np.asarray(filter_rfft)
    if ndim is None:
        ndim = _infer_spatial_ndim(vol, filt)
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, not {ndim}")
    shape = vol.shape[-ndim:]
    expected = (*shape[:-1], shape[-1] // 2 + 1)
    if vol.ndim < ndim or filt.shape[-ndim:] != expected:
        raise ValueError(
            f"filter_rfft must end in shape {expected} for a map of shape {vol.shape}, "
            f"not {filt.shape}"
        )
    axes = tuple(range(-ndim, 0))
    spectrum = scipy.fft.rfftn(vol, axes=axes)
    return scipy.fft.irfftn(spectrum * filt, s=shape, axes=axes)


def _infer_spatial_ndim(vol: np.ndarray, filt: np.ndarray) -> int:
    """Spatial dimensions shared by a real map and an rfft filter (2 or 3)."""
    if vol.ndim <= 2 or filt.ndim <= 2:
        return 2
    expected = (vol.shape[-3], vol.shape[-2], vol.shape[-1] // 2 + 1)
    return 3 if filt.shape[-3:] == expected else 2


def _radius_fourier_voxels(n: int, ndim: int) -> np.ndarray:
    """|k| in Fourier voxels on the rfft grid."""
    return np.sqrt(np.sum(frequency_grid_rfft(n, ndim=ndim) ** 2, axis=-1)) * n


def gridding_kernel(n: int, *, padding_factor: float) -> np.ndarray:
    """Real-space attenuation of trilinear interpolation in a Fourier grid padded ``padding_factor``.

    ``sinc^2(r / (n * padding_factor))`` with ``sinc(x) = sin(pi x) / (pi x)`` and r the distance
    from voxel n//2 in voxels (1 at r = 0): RELION divides a reconstruction by it (its
    gridding correction) and a projector of a pre-divided map multiplies it back.

    Parameters
    ----------
    n : int
        Box size.
    padding_factor : float
        Padding of the Fourier grid (RELION's ``--pad``, 1 to 2).

    Returns
    -------
    numpy.ndarray
        float64, real space, shape (n, n, n), values in (0, 1].

    Examples
    --------
    >>> k = gridding_kernel(8, padding_factor=2.0)
    >>> float(k[4, 4, 4]), round(float(k[4, 4, 0]), 4)
    (1.0, 0.8106)
    """
    c = np.arange(n, dtype=np.int64) - n // 2
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    # r^2 is an integer: evaluate the kernel once per distinct value
    table = np.sinc(np.sqrt(np.arange(int(r2.max()) + 1)) / (n * float(padding_factor))) ** 2
    return table[r2]
