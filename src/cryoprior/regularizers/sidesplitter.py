"""A SIDESPLITTER-style local-SNR filter over the two half-maps (our own implementation).

Ramlaul, Palmer, Nakane & Aylett, J. Struct. Biol. 211:107545 (2020). The algorithm, as
described in the design note ``regularizers.md`` and checked against the reference outputs
of the C program (V1.2):

0. On the masked halves M_i = FFT(v_i * mask), per half-voxel shell s = round(2|k|): the FSC,
   C_ref = sqrt(2 FSC / (1 + FSC)) and the target spectrum spec_i[s] = C_ref * mean|M_i|;
   the cut-off ``maxres`` is the first shell with FSC < 0.1 (0.475 if none).
1. Pass 1 - adaptive bands with whitening: order-8 Butterworth band-passes of the unmasked
   halves, starting with a low-pass at 0.025 cycles/voxel; each band is weighted by
   step / sqrt(power in the mask) and the next step is |1 - noise/power| * res / 64, until
   the cut-off or until the band's SNR estimate falls to 0.05.
2. Pass 2 - local truncation from high to low resolution: each voxel takes the value of the
   first low-pass (whitened map, or in ``rotfl`` mode the original map) in which it rises
   above the noise threshold max(max d^2, 2 ln(n) <d^2>), d = (r1 - r2)/2 in the mask.
3. Default mode: undo the whitening, mask, and give each shell below the cut-off the target
   spectrum (DC from the masked input). ``rotfl`` mode (the one RELION's wrapper uses) ends
   after pass 2.

The two linear accumulations (pass 1 and the un-whitening) are applied as one Fourier
filter each, so only the per-band statistics and thresholds need real-space transforms.
Everything is float64; inputs are never modified.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = [
    "SidesplitterResult",
    "sidesplitter",
    "default_sidesplitter_mask",
    "particle_sphere_mask",
    "SidesplitterRegularizer",
]

logger = logging.getLogger(__name__)

_MASK_THRESHOLD = 0.99
_FIRST_STEP = 0.025
_FSC_CUTOFF = 0.1
_NO_CUTOFF = 0.475
_MIN_SNR = 0.05


@dataclass(frozen=True)
class SidesplitterResult:
    """Output of ``sidesplitter``.

    half_map_1, half_map_2: (N, N, N) float64 filtered halves.
    cutoff_frequency: final cut-off in cycles/voxel (resolution = voxel size / cutoff).
    n_bands: number of bands of pass 1.
    recovery: fraction of the in-mask voxel count recovered by pass 2 (as the C program reports).
    """

    half_map_1: np.ndarray
    half_map_2: np.ndarray
    cutoff_frequency: float
    n_bands: int
    recovery: float


def default_sidesplitter_mask(box_size: int) -> np.ndarray:
    """The C program's default mask: 1/sqrt(1 + (r/R)^16), R = N/4, centre N/2, float32 values.

    Returns (N, N, N) float64 holding float32-rounded values (the C program stores them as float).
    """
    return particle_sphere_mask(box_size, radius_voxels=box_size / 4.0)


def _butterworth(f2: np.ndarray, edge: float) -> np.ndarray:
    x = f2 / (edge * edge)
    x2 = x * x
    x4 = x2 * x2
    return np.sqrt(1.0 / (1.0 + x4 * x4))


def _half_voxel_shells(n: int) -> np.ndarray:
    k = np.arange(n)
    k = np.where(k < n // 2 + 1, k, k - n).astype(np.float64)
    kx = np.arange(n // 2 + 1, dtype=np.float64)
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return np.floor(radius * 2.0 + 0.5).astype(np.int64)  # C round(): half away from zero


def _spectrum(m1: np.ndarray, m2: np.ndarray, shells: np.ndarray, n: int):
    sel = shells < n
    s = shells[sel]
    a1, a2 = m1[sel], m2[sel]
    count = np.bincount(s, minlength=n)[:n]
    amp1 = np.bincount(s, weights=np.abs(a1), minlength=n)[:n]
    amp2 = np.bincount(s, weights=np.abs(a2), minlength=n)[:n]
    nom = np.bincount(s, weights=(a1 * np.conj(a2)).real, minlength=n)[:n]
    dn1 = np.bincount(s, weights=(a1 * np.conj(a1)).real, minlength=n)[:n]
    dn2 = np.bincount(s, weights=(a2 * np.conj(a2)).real, minlength=n)[:n]
    spec1 = np.zeros(n)
    spec2 = np.zeros(n)
    cut = 0.0
    for i in range(n):
        if count[i] == 0:
            continue
        fsc = abs(abs(nom[i]) / math.sqrt(abs(dn1[i]) * abs(dn2[i])))
        crf = math.sqrt(2.0 * fsc / (1.0 + fsc))
        spec1[i] = crf * (amp1[i] / count[i])
        spec2[i] = crf * (amp2[i] / count[i])
        if cut == 0.0 and fsc < _FSC_CUTOFF:
            cut = i / (n * 2.0)
    spec1[0] = m1[0, 0, 0].real
    spec2[0] = m2[0, 0, 0].real
    return spec1, spec2, (cut if cut != 0.0 else _NO_CUTOFF)


def _apply_spectrum(
    u_ft: np.ndarray, spec: np.ndarray, shells: np.ndarray, cutoff: float, n: int
) -> np.ndarray:
    sel = shells < n
    count = np.bincount(shells[sel], minlength=n)[:n]
    amp = np.bincount(shells[sel], weights=np.abs(u_ft[sel]), minlength=n)[:n]
    cut = int(cutoff * n * 2.0)
    cor = np.zeros(n + 1)
    idx = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_amp = amp / count
        cor[:n] = np.where((idx < cut) & (mean_amp > 0), spec / mean_amp, 0.0)
    out = u_ft * cor[np.minimum(shells, n)]
    out[0, 0, 0] = spec[0]
    return out


def sidesplitter(
    half_map_1: np.ndarray,
    half_map_2: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    mode: str = "default",
    fft_workers: int | None = None,
) -> SidesplitterResult:
    """Filter two half-maps by local SNR (see the module docstring).

    Parameters
    ----------
    half_map_1, half_map_2: (N, N, N) real-space half-maps (cubic, same shape).
    mask: (N, N, N) solvent mask in [0, 1]; statistics use voxels >= 0.99. Default: the C
        program's soft sphere of radius N/4 (``default_sidesplitter_mask``).
    mode: ``"default"`` (un-whiten, mask, re-apply the spectrum) or ``"rotfl"`` (truncated
        original maps, the mode of RELION's wrapper).
    fft_workers: threads for scipy.fft (default: all the process may use).

    Returns a SidesplitterResult with (N, N, N) float64 maps.
    """
    if mode not in ("default", "rotfl"):
        raise ValueError(f"mode must be 'default' or 'rotfl', not {mode!r}")
    v1 = np.asarray(half_map_1, dtype=np.float64)
    v2 = np.asarray(half_map_2, dtype=np.float64)
    if v1.ndim != 3 or v1.shape != v2.shape or len(set(v1.shape)) != 1:
        raise ValueError(
            f"half-maps must be cubes of the same shape, got {v1.shape} and {v2.shape}"
        )
    n = v1.shape[0]
    mask = default_sidesplitter_mask(n) if mask is None else np.asarray(mask, dtype=np.float64)
    if mask.shape != v1.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the maps {v1.shape}")
    inside = mask >= _MASK_THRESHOLD
    n_inside = int(inside.sum())
    if n_inside < 2:
        raise ValueError("the mask has fewer than 2 voxels >= 0.99: no statistics possible")
    workers = fft_workers or max(1, len(os.sched_getaffinity(0)))

    def fft(x):
        return scipy.fft.rfftn(x, workers=workers)

    def ifft(x):
        return scipy.fft.irfftn(x, s=(n, n, n), workers=workers)

    m1, m2 = fft(v1 * mask), fft(v2 * mask)
    spec1, spec2, maxres = _spectrum(m1, m2, _half_voxel_shells(n), n)
    del m1, m2

    k = np.arange(n)
    k = np.where(k < n // 2 + 1, k, k - n) / n
    kx = np.arange(n // 2 + 1) / n
    f2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2

    # pass 1: bands, with whitening weights step / rms (statistics of the sum and the
    # difference of the halves in the mask)
    kdiff = fft(v1 - v2)
    ksum = fft(v1 + v2)
    bands: list[tuple[float, float, float]] = []  # (res, step, rms power)
    whiten = np.zeros_like(f2)
    res, step = 0.0, _FIRST_STEP
    low_prev = None
    while True:
        low = _butterworth(f2, res + step)
        band = low.copy() if low_prev is None else low - low_prev
        s_band = ifft(ksum * band)[inside]
        d_band = ifft(kdiff * band)[inside]
        noise = float(np.mean(d_band * d_band))
        power = float(np.mean(s_band * s_band))
        snr = abs(1.0 - noise / power)
        rms = math.sqrt(power)
        bands.append((res, step, rms))
        band *= step / rms
        whiten += band
        del band
        if res + step >= maxres or snr <= _MIN_SNR:
            maxres = res + step
            break
        res = res + step
        step = snr * (res / 64.0)
        low_prev = low
    del ksum, kdiff, low, low_prev

    # pass 2: local truncation from high to low resolution, on the whitened maps
    k1 = fft(v1)
    k2 = fft(v2)
    out1 = np.zeros((n, n, n))
    out2 = np.zeros((n, n, n))
    recovered = 0.0
    for res, step, _ in reversed(bands):
        low = _butterworth(f2, res + step)
        filt = whiten * low
        r1 = ifft(k1 * filt)
        r2 = ifft(k2 * filt)
        del filt
        d = 0.5 * (r1[inside] - r2[inside])
        d2 = d * d
        threshold = max(float(d2.max()), 2.0 * math.log(n_inside) * float(d2.mean()))
        for out, r, kk in ((out1, r1, k1), (out2, r2, k2)):
            take = (out == 0.0) & (r * r > threshold)
            if take.any():
                out[take] = ifft(kk * low)[take] if mode == "rotfl" else r[take]
        del r1, r2
        recovered = 0.5 * (np.count_nonzero(out1) + np.count_nonzero(out2)) / n_inside
    del k1, k2, whiten
    if mode == "rotfl":
        return SidesplitterResult(out1, out2, maxres, len(bands), recovered)

    # pass 3: undo the whitening band by band (one filter), mask, re-apply the spectrum
    unwhiten = np.zeros_like(f2)
    low_prev = None
    for res, step, rms in bands:
        low = _butterworth(f2, res + step)
        band = low.copy() if low_prev is None else low - low_prev
        band *= rms / step
        unwhiten += band
        low_prev = low
    del f2, low, low_prev, band
    shells = _half_voxel_shells(n)
    results = []
    for out, spec in ((out1, spec1), (out2, spec2)):
        u = ifft(fft(out) * unwhiten)
        u *= float(n) ** 3
        u *= mask
        results.append(ifft(_apply_spectrum(fft(u), spec, shells, maxres, n)))
        del u
    out1 = out2 = None
    return SidesplitterResult(results[0], results[1], maxres, len(bands), recovered)


def particle_sphere_mask(box_size: int, *, radius_voxels: float) -> np.ndarray:
    """The C program's soft sphere with a chosen radius: 1/sqrt(1 + (r/R)^16), centre N/2."""
    n = box_size
    c = np.arange(n, dtype=np.float64) - n / 2.0
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    return (1.0 / np.sqrt(1.0 + (r2 / radius_voxels**2) ** 8)).astype(np.float32).astype(np.float64)


class SidesplitterRegularizer:
    """``--regularizer sidesplitter``: both halves filtered together, in one process.

    Options: ``mode`` (``rotfl``, the mode of RELION's SIDESPLITTER wrapper, by default; or
    ``default``). Mask: the context's mask (``--mask`` or RELION's ``rlnSolventMaskName``);
    without one, a soft sphere of the particle diameter, or the C program's default sphere
    of radius N/4 when the diameter is unknown.
    """

    name = "sidesplitter"
    needs_both_halves = True
    guard_by_default = False

    def __init__(self, *, mode: str = "rotfl"):
        if mode not in ("default", "rotfl"):
            raise ValueError(f"sidesplitter mode must be 'default' or 'rotfl', not {mode!r}")
        self.mode = mode

    def _mask(self, n: int, context) -> np.ndarray | None:
        if context.mask is not None:
            return context.mask
        if context.particle_diameter_angstrom and context.voxel_size_angstrom:
            radius = 0.5 * context.particle_diameter_angstrom / context.voxel_size_angstrom
            return particle_sphere_mask(n, radius_voxels=min(radius, n / 2.0))
        return None

    def regularize(self, half_map, *, context):
        raise TypeError("sidesplitter needs both half-maps (regularize_pair)")

    def regularize_pair(self, half_map_1, half_map_2, *, context):
        result = sidesplitter(
            half_map_1,
            half_map_2,
            mask=self._mask(np.shape(half_map_1)[0], context),
            mode=self.mode,
        )
        logger.info(
            "sidesplitter (%s): %d bands, cut-off %.4f cycles/voxel, recovery %.2f",
            self.mode,
            result.n_bands,
            result.cutoff_frequency,
            result.recovery,
        )
        return result.half_map_1, result.half_map_2
