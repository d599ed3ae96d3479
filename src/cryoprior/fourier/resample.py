"""Resampling of real maps by cropping or zero-padding their Fourier transforms.

Conventions (see :mod:`cryoprior.conventions`): arrays are (z, y, x); the box centre is voxel
n//2 and stays the centre (voxel m//2 of the new box); voxel values are kept (not their sum),
so the mean of the map is unchanged. Even sizes have a Nyquist component shared by +n/2 and
-n/2: padding splits it in two halves at +-n/2, cropping to an even size sums the two
components at +-m/2, so that :func:`fourier_crop` of :func:`fourier_pad` is the identity to
rounding error.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["fourier_crop", "fourier_pad", "resample_fourier", "resampled_size"]


def fourier_crop(volume, *, new_size: int, ndim: int = 3) -> np.ndarray:
    """Downsample a real map to a smaller box by cropping its Fourier transform.

    Keeps frequencies |k| < new_size/2 of every axis (in Fourier voxels of the box); for an even
    ``new_size`` the components at +new_size/2 and -new_size/2 are summed into the Nyquist one.
    The voxel size grows by ``n / new_size``.

    Parameters
    ----------
    volume: real array, real space, shape (..., n, n, n) (ndim 3) or (..., n, n) (ndim 2).
    new_size: new box size, 1 <= new_size <= n.
    ndim: number of spatial (trailing) axes.

    Returns
    -------
    float64 array, real space, shape (..., new_size, ..., new_size). Same mean; centre voxel
    n//2 maps to new_size//2. The input is not modified.

    Example
    -------
    >>> v = np.arange(64.0).reshape(4, 4, 4)
    >>> float(fourier_crop(v, new_size=2).mean()) == float(v.mean())
    True
    """
    vol, n = _check_volume(volume, ndim)
    if not 1 <= new_size <= n:
        raise ValueError(f"new_size must be between 1 and {n}, not {new_size}")
    return _resize(vol, n, int(new_size), ndim)


def fourier_pad(volume, *, new_size: int, ndim: int = 3) -> np.ndarray:
    """Upsample a real map to a larger box by zero-padding its Fourier transform.

    Trigonometric interpolation: frequencies of the old box are kept, new ones are zero; for an
    even ``n`` the old Nyquist component is split in halves at +n/2 and -n/2. The voxel size
    shrinks by ``n / new_size``.

    Parameters
    ----------
    volume: real array, real space, shape (..., n, n, n) (ndim 3) or (..., n, n) (ndim 2).
    new_size: new box size, >= n.
    ndim: number of spatial (trailing) axes.

    Returns
    -------
    float64 array, real space, shape (..., new_size, ..., new_size). Same mean; centre voxel
    n//2 maps to new_size//2. The input is not modified.

    Example
    -------
    >>> v = np.random.default_rng(0).normal(size=(6, 6, 6))
    >>> bool(np.allclose(fourier_crop(fourier_pad(v, new_size=9), new_size=6), v))
    True
    """
    vol, n = _check_volume(volume, ndim)
    if new_size < n:
        raise ValueError(f"new_size must be >= {n}, not {new_size}")
    return _resize(vol, n, int(new_size), ndim)


def resampled_size(
    n: int, *, voxel_size_angstrom: float, new_voxel_size_angstrom: float
) -> tuple[int, float]:
    """Box size closest to a requested voxel size, and the voxel size it gives exactly.

    Returns
    -------
    (new_size, achieved_voxel_size_angstrom) with ``new_size = ROUND(n * voxel_size_angstrom /
    new_voxel_size_angstrom)`` (at least 1) and ``achieved = n * voxel_size_angstrom /
    new_size``.

    Example
    -------
    >>> size, voxel = resampled_size(100, voxel_size_angstrom=1.1, new_voxel_size_angstrom=1.5)
    >>> size, round(voxel, 4)
    (73, 1.5068)
    """
    if voxel_size_angstrom <= 0 or new_voxel_size_angstrom <= 0:
        raise ValueError("voxel sizes must be positive")
    exact = n * float(voxel_size_angstrom) / float(new_voxel_size_angstrom)
    new_size = max(1, int(np.floor(exact + 0.5)))
    return new_size, n * float(voxel_size_angstrom) / new_size


def resample_fourier(
    volume,
    *,
    voxel_size_angstrom: float,
    new_voxel_size_angstrom: float,
    ndim: int = 3,
    rtol: float = 1e-6,
) -> np.ndarray:
    """Resample a real map to a new voxel size by Fourier cropping or padding.

    The new box size is ``n * voxel_size_angstrom / new_voxel_size_angstrom``, which must be an
    integer to within ``rtol`` (relative) - otherwise the map would silently get another voxel
    size; use :func:`resampled_size` to pick an achievable one. The physical box, the map's mean
    and its centre (voxel n//2 -> new_size//2) are kept.

    Parameters
    ----------
    volume: real array, real space, shape (..., n, n, n) (ndim 3) or (..., n, n) (ndim 2).
    voxel_size_angstrom: voxel size of ``volume``.
    new_voxel_size_angstrom: wanted voxel size.
    ndim: number of spatial (trailing) axes.
    rtol: relative tolerance on the new box size being an integer.

    Returns
    -------
    float64 array, real space, shape (..., m, ..., m) with m the new box size.

    Raises
    ------
    ValueError: the new voxel size does not give an integer box.

    Example
    -------
    >>> v = np.zeros((48, 48, 48))
    >>> resample_fourier(v, voxel_size_angstrom=1.0, new_voxel_size_angstrom=1.5).shape
    (32, 32, 32)
    """
    vol, n = _check_volume(volume, ndim)
    new_size, achieved = resampled_size(
        n, voxel_size_angstrom=voxel_size_angstrom, new_voxel_size_angstrom=new_voxel_size_angstrom
    )
    exact = n * float(voxel_size_angstrom) / float(new_voxel_size_angstrom)
    if abs(exact - new_size) > rtol * exact:
        raise ValueError(
            f"a box of {n} voxels of {voxel_size_angstrom} A cannot be resampled to "
            f"{new_voxel_size_angstrom} A voxels (would need {exact:.6g} voxels); the nearest "
            f"achievable voxel size is {achieved:.6g} A ({new_size} voxels)"
        )
    return _resize(vol, n, new_size, ndim)


def _check_volume(volume, ndim: int) -> tuple[np.ndarray, int]:
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, not {ndim}")
    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim < ndim:
        raise ValueError(f"volume must have at least {ndim} dimensions, not shape {vol.shape}")
    n = vol.shape[-1]
    if vol.shape[-ndim:] != (n,) * ndim:
        raise ValueError(f"volume must end in a cubic/square box, not {vol.shape}")
    return vol, n


def _resize(vol: np.ndarray, n: int, m: int, ndim: int) -> np.ndarray:
    """Fourier resize of the last ``ndim`` axes from n to m, centre n//2 -> m//2, mean kept."""
    if m == n:
        return vol.copy()
    axes = tuple(range(-ndim, 0))
    # Put the centre voxel n//2 at index 0, so that it is the origin of the Fourier phases.
    spectrum = scipy.fft.fftn(np.fft.ifftshift(vol, axes=axes), axes=axes)
    for axis in axes:
        spectrum = _resize_axis(spectrum, n, m, axis)
    out = scipy.fft.ifftn(spectrum, axes=axes).real * (m / n) ** ndim
    return np.fft.fftshift(out, axes=axes)


def _resize_axis(spectrum: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Crop (m < n) or zero-pad (m > n) one FFTW-ordered axis, sharing Nyquist terms evenly."""
    src = np.moveaxis(spectrum, axis, -1)
    out = np.zeros((*src.shape[:-1], m), dtype=np.complex128)
    small = min(n, m)
    half = (small - 1) // 2  # frequencies 0..half and -half..-1 are copied unchanged
    out[..., : half + 1] = src[..., : half + 1]
    if half > 0:
        out[..., -half:] = src[..., -half:]
    if small % 2 == 0:
        nyq = small // 2
        if m < n:  # crop to an even box: +nyq and -nyq of the big box alias to one component
            out[..., nyq] = src[..., nyq] + src[..., n - nyq]
        else:  # pad from an even box: split its Nyquist component between +nyq and -nyq
            out[..., nyq] = 0.5 * src[..., nyq]
            out[..., m - nyq] = 0.5 * src[..., nyq]
    return np.moveaxis(out, -1, axis)
