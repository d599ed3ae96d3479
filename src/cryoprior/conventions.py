"""Conventions shared by every module.

- Axis order: arrays are (z, y, x) - MRC sections, rows, columns - as mrcfile returns them.
- Fourier layout: half-complex "rfft" arrays of shape (n, n, n//2+1), FFTW order, not
  centred (as ``numpy.fft.rfftn``); along z and y index k means frequency k if
  k < n//2+1 else k-n; along x index j is frequency j.
- Rounding: RELION's ROUND macro rounds half away from zero (``relion_round``), unlike
  numpy's round-half-to-even.
"""

from __future__ import annotations

import numpy as np

__all__ = ["relion_round", "rfft_frequency_indices"]


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
