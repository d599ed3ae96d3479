"""The half-map reconstruction of ``relion_external_reconstruct`` (RELION 3.1-5.0), in numpy.

RELION hands the external program the back-projected Fourier data D and weights W of one
half-set (half-complex, FFTW order, on a grid padded by the padding factor pf) and the
FSC-derived spectrum tau2. The map is

1. the MAP (Wiener-like) term ``W += 1 / (pf^3 T tau2[shell])`` (``do_map``);
2. an inverse-weight estimate M, by 10 iterations of blob-kernel gridding
   (Pipe & Menon 1999; Matej 2001) or, with ``skip_gridding``, ``1 / max(W, shell_mean(W)/1000)``;
3. ``F = D M`` windowed to the even padded box, inverse FFT, cropped to N^3 and scaled to
   RELION's greyscale;
4. RELION's soft mask outside the box sphere (radius N/2, 3-voxel cosine edge, filled with
   the background mean) and the trilinear-interpolation gridding correction 1/sinc^2.

Every step follows ``BackProjector::reconstruct`` (src/backprojector.cpp) with the external
program's arguments (10 gridding iterations, normalise 1, minimum MAP shell -1), in double
precision like Debian's RELION build; the result equals the binary's output to float32
rounding (tests compare with ``relion_external_reconstruct`` on files from a real run).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoprior.conventions import relion_round, rfft_frequency_indices
from cryoprior.fourier.filters import gridding_kernel
from cryoprior.fourier.masks import soft_mask_outside_sphere

__all__ = [
    "ReconstructionOptions",
    "blob_fourier_kernel",
    "reconstruct_from_arrays",
]

logger = logging.getLogger(__name__)

#: Kaiser-Bessel blob used by RELION's gridding: radius 1.9 * 2 (fixed since RELION 3.0),
#: alpha 15, order 0, tabulated with 10,000 samples over [0, 0.5).
_BLOB_RADIUS = 3.8
_BLOB_ALPHA = 15.0
_BLOB_TABLE_SIZE = 10000
_BLOB_TABLE_SAMPLING = 0.5 / _BLOB_TABLE_SIZE
_SOFT_EDGE_WIDTH_VOXELS = 3.0


@dataclass(frozen=True)
class ReconstructionOptions:
    """Variants of ``relion_external_reconstruct``.

    Attributes
    ----------
    do_map: add the MAP term 1/(pf^3 T tau2) to the weights (off = ``--no_map``).
    skip_gridding: replace iterative gridding by the shell-mean weight floor
        (``--skip_gridding``).
    gridding_iterations: iterations of the gridding weight estimate (RELION: 10).
    fft_workers: threads for scipy.fft (None: all the process may use).
    """

    do_map: bool = True
    skip_gridding: bool = False
    gridding_iterations: int = 10
    fft_workers: int | None = None


def _workers(options: ReconstructionOptions) -> int:
    if options.fft_workers is not None:
        return max(1, options.fft_workers)
    return max(1, len(os.sched_getaffinity(0)))


def _kaiser_fourier_ratio(w: np.ndarray) -> np.ndarray:
    """FT of the order-0 Kaiser-Bessel blob at frequency ``w`` (cycles/voxel), up to a constant.

    I_{3/2}(s)/s^{3/2} with s = sqrt(alpha^2 - (2 pi a w)^2) below the blob's pole, and
    J_{3/2}(s)/s^{3/2} with s = sqrt((2 pi a w)^2 - alpha^2) beyond it (RELION's
    ``kaiser_Fourier_value``; the constant cancels in the normalised kernel).
    """
    c = 2.0 * np.pi * _BLOB_RADIUS * w
    sigma = np.sqrt(np.abs(_BLOB_ALPHA**2 - c * c))
    out = np.empty_like(sigma)
    below = c <= _BLOB_ALPHA
    s = sigma[below]
    # I_{3/2}(s) = sqrt(2/(pi s)) (cosh s - sinh s / s)
    out[below] = np.sqrt(2.0 / (np.pi * s)) * (np.cosh(s) - np.sinh(s) / s) / s**1.5
    s = sigma[~below]
    with np.errstate(divide="ignore", invalid="ignore"):
        # J_{3/2}(s) = sqrt(2/(pi s)) (sin s / s - cos s)
        vals = np.sqrt(2.0 / (np.pi * s)) * (np.sin(s) / s - np.cos(s)) / s**1.5
    out[~below] = np.where(s > 0, vals, 0.0)
    return out


def _blob_table() -> np.ndarray:
    samples = np.arange(_BLOB_TABLE_SIZE, dtype=np.float64) * _BLOB_TABLE_SAMPLING
    return _kaiser_fourier_ratio(samples)


def blob_fourier_kernel(
    pad_size: int, *, original_image_size: int, padding_factor: float
) -> np.ndarray:
    """Normalised FT of RELION's gridding blob on a real-space grid of ``pad_size``^3.

    Returns (pad, pad, pad) float64, FFTW (uncentred) order, value 1 at the origin.
    Real-space index k has signed coordinate k if k < pad//2 else k - pad (RELION's rule,
    note the strict ``<``); radius rho = |c| / (N pf) looked up in the 10,000-entry table
    by truncation, and 0 beyond it.
    """
    table = _blob_table()
    idx = np.arange(pad_size)
    coord = np.where(idx < pad_size // 2, idx, idx - pad_size).astype(np.float64)
    r2 = coord[:, None, None] ** 2 + coord[None, :, None] ** 2 + coord[None, None, :] ** 2
    rho = np.sqrt(r2) / (original_image_size * padding_factor)
    lookup = (rho / _BLOB_TABLE_SAMPLING).astype(np.int64)
    kernel = np.where(
        lookup < _BLOB_TABLE_SIZE, table[np.minimum(lookup, _BLOB_TABLE_SIZE - 1)], 0.0
    )
    return kernel / table[0]


def _import_to_grid(array: np.ndarray, *, file_size: int, pad_size: int, max_r2: int) -> np.ndarray:
    """Copy voxels with |f|^2 < max_r2 from a file-sized rfft array into a pad-sized one."""
    r_lim = int(np.floor(np.sqrt(max(max_r2 - 1, 0))))  # largest |component| with f^2 < max_r2
    freqs = np.arange(-r_lim, r_lim + 1)
    src = np.mod(freqs, file_size)
    dst = np.mod(freqs, pad_size)
    fx = np.arange(r_lim + 1)
    block = array[np.ix_(src, src, fx)]
    r2 = freqs[:, None, None] ** 2 + freqs[None, :, None] ** 2 + fx[None, None, :] ** 2
    block = np.where(r2 < max_r2, block, 0)
    out = np.zeros((pad_size, pad_size, pad_size // 2 + 1), dtype=array.dtype)
    out[np.ix_(dst, dst, fx)] = block
    return out


def reconstruct_from_arrays(
    data: np.ndarray,
    weight: np.ndarray,
    *,
    tau2: np.ndarray | None,
    original_image_size: int,
    current_image_size: int,
    padding_factor: float,
    tau2_fudge: float = 1.0,
    options: ReconstructionOptions = ReconstructionOptions(),
) -> np.ndarray:
    """Reconstruct a half-map from RELION's Fourier data and weights.

    Parameters
    ----------
    data: (Pd, Pd, Pd//2+1) complex, Fourier space, half-complex FFTW order, on the padded
        grid Pd = ROUND(pf N), as relion_refine writes ``*_external_reconstruct_data_*.mrc``.
    weight: (Pd, Pd, Pd//2+1) real, same layout (``*_external_reconstruct_weight.mrc``).
    tau2: (N//2+1,) signal spectrum per original-box shell (``rlnReferenceTau2``); needed
        when ``options.do_map``.
    original_image_size: box size N.
    current_image_size: RELION's current image size; data are used up to r_max = cur//2.
    padding_factor: pf.
    tau2_fudge: T (``rlnTau2FudgeFactor``).
    options: variants (MAP term, gridding).

    Returns
    -------
    (N, N, N) float64 real-space map on RELION's greyscale, box centre at N//2.
    Inputs are not modified.
    """
    n = int(original_image_size)
    pf = float(padding_factor)
    if data.ndim != 3 or weight.shape != data.shape:
        raise ValueError(
            f"data and weight must be 3D arrays of the same shape, got {data.shape} and {weight.shape}"
        )
    file_size = data.shape[0]
    if data.shape != (file_size, file_size, file_size // 2 + 1):
        raise ValueError(f"data shape {data.shape} is not a half-complex cube")
    if options.do_map and tau2 is None:
        raise ValueError("the MAP term needs tau2 (use do_map=False for the unregularised map)")
    workers = _workers(options)

    # 1. sizes
    r_max = min(int(current_image_size) // 2, n // 2)
    r_pad = relion_round(pf * r_max)
    max_r2 = r_pad * r_pad
    pad = 2 * (r_pad + 1) + 1
    out_size = relion_round(pf * n)
    out_size += out_size % 2

    # 2. import the arrays onto the pad grid, strictly inside max_r2
    data_g = _import_to_grid(
        np.asarray(data, dtype=np.complex128), file_size=file_size, pad_size=pad, max_r2=max_r2
    )
    weight_g = _import_to_grid(
        np.asarray(weight, dtype=np.float64), file_size=file_size, pad_size=pad, max_r2=max_r2
    )
    kz, ky, kx = rfft_frequency_indices(pad)
    r2 = kz * kz + ky * ky + kx * kx
    inside = r2 < max_r2

    # 3. MAP term
    if options.do_map:
        tau2 = np.asarray(tau2, dtype=np.float64)
        shells = relion_round(np.sqrt(r2[inside]) / pf)
        if shells.max(initial=0) >= tau2.size:
            raise ValueError(f"tau2 has {tau2.size} shells, the data need {shells.max() + 1}")
        t = tau2[shells]
        if np.any(t < 0):
            raise ValueError("negative values in the tau2 spectrum")
        w = weight_g[inside]
        oversampling = pf * pf * pf
        with np.errstate(divide="ignore"):
            add_tau = 1.0 / (oversampling * tau2_fudge * t)
            add_zero = np.where(w > 1e-20, 1.0 / (0.001 * w), 0.0)
        weight_g[inside] = w + np.where(t > 0, add_tau, add_zero)

    # 4. inverse-weight estimate
    if options.skip_gridding:
        shell_floor = np.floor(np.sqrt(r2) / pf).astype(np.int64)
        limit = relion_round(r_max * pf * r_max * pf)
        sel = r2 < limit
        sums = np.bincount(shell_floor[sel], weights=weight_g[sel], minlength=r_max)[:r_max]
        counts = np.bincount(shell_floor[sel], minlength=r_max)[:r_max]
        if np.any(counts == 0):
            raise ValueError(
                "empty Fourier shell in the weight array (RELION: 'BUG: zeros in counter')"
            )
        ravg = sums / counts / 1000.0
        w_floor = ravg[np.minimum(shell_floor, r_max - 1)]
        w_eff = np.maximum(weight_g, w_floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            fconv = np.where(w_eff != 0, data_g / w_eff, data_g)
    else:
        blob = blob_fourier_kernel(pad, original_image_size=n, padding_factor=pf)
        inv_weight = inside.astype(np.float64) * np.ones_like(weight_g)
        shape = (pad, pad, pad)
        for _ in range(options.gridding_iterations):
            conv = scipy.fft.irfftn(inv_weight * weight_g, s=shape, workers=workers)
            conv *= blob
            conv_ft = scipy.fft.rfftn(conv, workers=workers)
            inv_weight[inside] /= np.maximum(1e-6, np.abs(conv_ft[inside]))
        fconv = data_g * inv_weight
    del data_g, weight_g

    # 5. window in Fourier space to the even padded size
    fkz, _fky, _fkx = rfft_frequency_indices(out_size)
    if out_size // 2 + 1 > pad // 2 + 1:
        half = pad // 2
        fz = np.arange(-half, half + 1)
        fx = np.arange(half + 1)
        block = fconv[np.ix_(np.mod(fz, pad), np.mod(fz, pad), fx)]
        rr = fz[:, None, None] ** 2 + fz[None, :, None] ** 2 + fx[None, None, :] ** 2
        block = np.where(rr <= half * half, block, 0)
        windowed = np.zeros((out_size, out_size, out_size // 2 + 1), dtype=np.complex128)
        windowed[np.ix_(np.mod(fz, out_size), np.mod(fz, out_size), fx)] = block
    else:
        fz = fkz.ravel()
        windowed = fconv[np.ix_(np.mod(fz, pad), np.mod(fz, pad), np.arange(out_size // 2 + 1))]
    del fconv

    # 6. centre (real-space shift by out_size/2), inverse FFT, crop, scale
    idx = np.arange(out_size)
    sign_zy = np.where((idx[:, None] + idx[None, :]) % 2 == 0, 1.0, -1.0)
    sign_x = np.where(np.arange(out_size // 2 + 1) % 2 == 0, 1.0, -1.0)
    windowed *= sign_zy[:, :, None] * sign_x[None, None, :]
    real = scipy.fft.irfftn(windowed, s=(out_size,) * 3, workers=workers)
    del windowed
    start = out_size // 2 - n // 2
    crop = real[start : start + n, start : start + n, start : start + n]
    volume = crop * (float(out_size) ** 3 / (pf * pf * pf * n))

    # 7-8. soft mask outside the box sphere, gridding correction
    n = volume.shape[0]
    # RELION's softMaskOutsideMap defaults: radius N/2, cosine edge to the weighted mean outside
    volume = soft_mask_outside_sphere(
        volume, radius_voxels=n / 2.0, edge_width_voxels=_SOFT_EDGE_WIDTH_VOXELS
    )
    return volume / gridding_kernel(n, padding_factor=pf)
