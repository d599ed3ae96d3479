"""Fourier correlation per shell, and where a correlation curve crosses a threshold.

One kernel and one crossing rule for every FSC in the package: the map-to-map FSC and the
gold-standard FSC (:mod:`cryoprior.validate.fsc`), local and directional resolution, and the
guard's cut-off (:mod:`cryoprior.regularizers.guard`). Shells are ``ROUND(|k|)`` = 0..n//2
(:func:`cryoprior.fourier.grids.shell_index`, RELION's).
"""

from __future__ import annotations

import numpy as np

from cryoprior.fourier.grids import shell_index

__all__ = ["crossing_shell", "fourier_correlation", "shell_sums"]


def shell_sums(values_rfft, *, n: int, fft_mask=None) -> np.ndarray:
    """Sum of a real Fourier-space quantity over each shell ``ROUND(|k|)`` = 0..n//2.

    Parameters
    ----------
    values_rfft : array_like
        Real array, Fourier space, rfft layout, shape (..., n, n, n//2+1); leading batch
        dimensions allowed.
    n : int
        Logical (real-space) box size.
    fft_mask : array_like, optional
        Boolean or 0/1 array, rfft layout, shape (n, n, n//2+1): only voxels where it is true
        count (e.g. a cone for a directional FSC). Voxels beyond shell n//2 never count.

    Returns
    -------
    numpy.ndarray
        float64, shape (..., n//2+1). Inputs are not modified.

    Examples
    --------
    >>> shell_sums(np.ones((4, 4, 3)), n=4)  # the number of rfft voxels per shell
    array([ 1., 13., 25.])
    """
    values = np.asarray(values_rfft, dtype=np.float64)
    shape = (n, n, n // 2 + 1)
    if values.shape[-3:] != shape:
        raise ValueError(f"values_rfft must end in shape {shape} for n={n}, not {values.shape}")
    n_shells = n // 2 + 1
    shells = shell_index(n).ravel()
    keep = shells < n_shells
    if fft_mask is not None:
        mask = np.asarray(fft_mask)
        if mask.shape != shape:
            raise ValueError(f"fft_mask must have shape {shape}, not {mask.shape}")
        keep &= mask.ravel().astype(bool)
    flat = values.reshape(-1, shells.size)[:, keep]
    return _sum_by_shell(flat, shells[keep], n_shells).reshape((*values.shape[:-3], n_shells))


def _sum_by_shell(values: np.ndarray, shells: np.ndarray, n_shells: int) -> np.ndarray:
    """Sum (rows, v) values into (rows, n_shells) by the (v,) shell numbers (one bincount)."""
    rows = values.shape[0]
    index = (shells[None, :] + np.arange(rows)[:, None] * n_shells).ravel()
    sums = np.bincount(index, weights=values.ravel(), minlength=rows * n_shells)
    return sums.reshape(rows, n_shells)


def fourier_correlation(transform_1, transform_2, *, n: int, fft_mask=None) -> np.ndarray:
    """Correlation of two Fourier transforms per shell (the FSC kernel, RELION's ``getFSC``).

    ``FSC(s) = sum Re(F1 conj(F2)) / sqrt(sum |F1|^2 * sum |F2|^2)`` over the half-complex
    voxels of shell s (restricted to ``fft_mask`` when given). Shells whose denominator is
    zero get 0.

    Parameters
    ----------
    transform_1, transform_2 : array_like
        Complex arrays, Fourier space, rfft layout (``scipy.fft.rfftn`` of real maps), shape
        (..., n, n, n//2+1), broadcast together.
    n : int
        Logical (real-space) box size.
    fft_mask : array_like, optional
        As in :func:`shell_sums`: only voxels where it is true count. Several masks at once
        (e.g. the cones of a directional FSC): shape (m, n, n, n//2+1); the products of the
        transforms are then computed once.

    Returns
    -------
    numpy.ndarray
        float64, shape (..., n//2+1), or (m, ..., n//2+1) for m masks.

    Examples
    --------
    >>> f = np.fft.rfftn(np.random.default_rng(0).normal(size=(8, 8, 8)))
    >>> bool(np.allclose(fourier_correlation(f, -2.0 * f, n=8)[1:], -1.0))
    True
    """
    f1, f2 = np.broadcast_arrays(np.asarray(transform_1), np.asarray(transform_2))
    shape = (n, n, n // 2 + 1)
    if f1.shape[-3:] != shape:
        raise ValueError(f"transforms must end in shape {shape} for n={n}, not {f1.shape}")
    masks = None if fft_mask is None else np.asarray(fft_mask, dtype=bool)
    if masks is not None and masks.shape[-3:] != shape:
        raise ValueError(f"fft_mask must end in shape {shape}, not {masks.shape}")
    n_shells = n // 2 + 1
    shells = shell_index(n).ravel()
    inside = shells < n_shells
    shells = shells[inside]
    flat_1 = f1.reshape(-1, inside.size)[:, inside]
    flat_2 = f2.reshape(-1, inside.size)[:, inside]
    products = (
        (flat_1 * flat_2.conj()).real,
        flat_1.real**2 + flat_1.imag**2,
        flat_2.real**2 + flat_2.imag**2,
    )
    batch = f1.shape[:-3]

    def correlation(selected: np.ndarray | None) -> np.ndarray:
        s = shells if selected is None else shells[selected]
        num, power_1, power_2 = (
            _sum_by_shell(p if selected is None else p[:, selected], s, n_shells).reshape(
                (*batch, n_shells)
            )
            for p in products
        )
        den = np.sqrt(power_1 * power_2)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

    if masks is None:
        return correlation(None)
    if masks.ndim == 3:
        return correlation(masks.ravel()[inside])
    return np.stack([correlation(m.ravel()[inside]) for m in masks.reshape(-1, inside.size)])


def crossing_shell(fsc, *, threshold: float) -> np.ndarray:
    """Fractional shell where FSC curves first fall below ``threshold``.

    The first shell s >= 1 with ``fsc[s] < threshold`` is found and the crossing is
    interpolated linearly in frequency between shells s-1 and s. Shell 0 (the mean) counts as
    1.0, and a value above the threshold is taken for shell s-1 (so a curve that is already
    below at shell s-1 crosses at s-1 exactly).

    Parameters
    ----------
    fsc : array_like
        Real array of shape (..., n_shells), shells 0..n_shells-1.
    threshold : float
        FSC threshold (e.g. 0.143, 0.5 or 1/7).

    Returns
    -------
    numpy.ndarray
        float64 of shape (...): the crossing in Fourier voxels (s-1 <= value <= s), NaN where
        the curve never falls below the threshold. A 0-d array for one curve.

    Examples
    --------
    >>> float(crossing_shell(np.array([1.0, 0.9, 0.6, 0.2, 0.1]), threshold=0.5))
    2.25
    >>> float(crossing_shell(np.array([1.0, 0.9, 0.6]), threshold=0.5))
    nan
    """
    values = np.asarray(fsc, dtype=np.float64)
    if values.shape[-1] < 2:
        raise ValueError("an FSC curve needs at least two shells")
    below = values[..., 1:] < threshold
    crosses = below.any(axis=-1)
    s = np.argmax(below, axis=-1) + 1
    upper = np.take_along_axis(values, (s - 1)[..., None], axis=-1)[..., 0]
    upper = np.where(s == 1, 1.0, upper)
    upper = np.maximum(upper, threshold)
    lower = np.take_along_axis(values, s[..., None], axis=-1)[..., 0]
    step = np.where(upper > lower, upper - lower, 1.0)
    return np.where(crosses, s - 1 + (upper - threshold) / step, np.nan)
