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
filter each, so only the per-band statistics and thresholds need real-space transforms
(~4 inverse FFTs per band, 6 in rotfl mode, ~200 bands). All filters are radial: tabulated
once per integer |k|^2 and gathered onto the rfft half-grid. Pass 1 inverts only the lines
through the mask (its statistics live there), the rotfl values only the lines holding the
voxels a band takes. Transforms work in place in preallocated buffers; the two
half-spectra of each step (sum and difference, then the two halves) go to two threads
when two or more workers are allowed, with identical results. Statistics, thresholds and
decisions are float64: they must match the C program's, and a threshold moved by 1e-6
already changes outputs at the 1e-5 level. The only float32 step is the rotfl output
values (the original low-passed at the voxels a band takes; relative error ~1e-7).
Inputs are never modified.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = [
    "SidesplitterRegularizer",
    "SidesplitterResult",
    "default_sidesplitter_mask",
    "particle_sphere_mask",
    "sidesplitter",
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
    cutoff_cycles_per_voxel: final cut-off in cycles/voxel (resolution = voxel size / cutoff).
    n_bands: number of bands of pass 1.
    recovery: fraction of the in-mask voxel count recovered by pass 2 (as the C program reports).
    """

    half_map_1: np.ndarray
    half_map_2: np.ndarray
    cutoff_cycles_per_voxel: float
    n_bands: int
    recovery: float


def default_sidesplitter_mask(box_size: int) -> np.ndarray:
    """Return the C program's default mask: 1/sqrt(1 + (r/R)^16), R = N/4, centre N/2.

    Returns (N, N, N) float64 holding float32-rounded values (the C program stores them as float).
    """
    return particle_sphere_mask(box_size, radius_voxels=box_size / 4.0)


def _butterworth(f2: np.ndarray, edge: float) -> np.ndarray:
    x = f2 / (edge * edge)
    x2 = x * x
    x4 = x2 * x2
    return np.sqrt(1.0 / (1.0 + x4 * x4))


def _radial_index(n: int) -> np.ndarray:
    """(N, N, N//2+1) integer |k|^2 on the rfft half-grid (int16 up to N = 208, else int32).

    Every filter here is radial: a table over 0..3 (N//2)^2 gathered with this index.
    """
    k = np.arange(n)
    k = np.where(k < n // 2 + 1, k, k - n)
    k2 = k * k
    q = k2[:, None, None] + k2[None, :, None] + k2[: n // 2 + 1][None, None, :]
    return q.astype(np.int16 if 3 * (n // 2) ** 2 < 2**15 else np.int32)


def _half_voxel_shells(q: np.ndarray) -> np.ndarray:
    """Half-voxel shell round(2|k|) of each half-grid point, from its integer |k|^2 ``q``."""
    table = np.floor(np.sqrt(np.arange(int(q.max()) + 1, dtype=np.float64)) * 2.0 + 0.5)
    return table.astype(np.int64)[q]  # C round(): half away from zero


def _inverse(spectrum: np.ndarray, n: int, workers: int) -> np.ndarray:
    """Inverse-transform (..., N, N, N//2+1) complex half-spectra to (..., N, N, N) real maps.

    Normalised inverse, float32 for complex64 input. ``spectrum`` is overwritten (used as
    workspace).
    """
    a = scipy.fft.ifftn(spectrum, axes=(-3, -2), overwrite_x=True, workers=workers)
    return scipy.fft.irfft(a, n=n, axis=-1, overwrite_x=True, workers=workers)


def _inverse_lines(
    spectrum: np.ndarray, n: int, lines: tuple[np.ndarray, np.ndarray], workers: int
) -> np.ndarray:
    """Inverse-transform one (N, N, N//2+1) half-spectrum on the L lines (x0, x1) only: (L, N).

    ``lines`` are sorted as np.nonzero gives them; ``spectrum`` is
    overwritten. The second axis is only transformed on the rows the lines use.
    """
    lo, hi = int(lines[0][0]), int(lines[0][-1]) + 1
    a = scipy.fft.ifft(spectrum, axis=0, overwrite_x=True, workers=workers)[lo:hi]
    a = scipy.fft.ifft(a, axis=1, overwrite_x=True, workers=workers)
    a = a[lines[0] - lo, lines[1]]
    return scipy.fft.irfft(a, n=n, axis=-1, overwrite_x=True, workers=workers)


def _inverse_at(spectrum: np.ndarray, n: int, idx: np.ndarray, workers: int) -> np.ndarray:
    """Inverse-transform one (N, N, N//2+1) half-spectrum at the flat voxel indices only.

    ``idx`` (K,) gives the indices; the result is (K,). The second axis is transformed on the rows
    holding those voxels, the last one on their lines only; ``spectrum`` is overwritten.
    """
    x0, x1, x2 = np.unravel_index(idx, (n, n, n))
    a = scipy.fft.ifft(spectrum, axis=0, overwrite_x=True, workers=workers)
    rows, row_of = np.unique(x0, return_inverse=True)
    if rows.size < n:
        a = a[rows]
    a = scipy.fft.ifft(a, axis=1, overwrite_x=True, workers=workers)
    lines, line_of = np.unique(row_of * n + x1, return_inverse=True)
    a = a.reshape(-1, a.shape[-1])[lines]
    return scipy.fft.irfft(a, n=n, axis=-1, overwrite_x=True, workers=workers)[line_of, x2]


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


def _pair(func, pool: ThreadPoolExecutor | None) -> list:
    """[func(0), func(1)]: in the two threads of ``pool``, or one after the other."""
    return list(pool.map(func, (0, 1))) if pool is not None else [func(0), func(1)]


def _pass1(
    v1: np.ndarray,
    v2: np.ndarray,
    inside: np.ndarray,
    q: np.ndarray,
    f2: np.ndarray,
    maxres: float,
    pool: ThreadPoolExecutor | None,
    workers: int,
) -> tuple[list[tuple[float, float, float]], np.ndarray, float]:
    """Adaptive bands with whitening weights step / rms.

    v1, v2, inside: (N, N, N) halves and the statistics mask; q: (N, N, N//2+1) |k|^2;
    f2: (Q,) |f|^2 per |k|^2; pool: two threads for the pairs of transforms, or None.
    Statistics of the sum and the difference of the band-passed halves in the mask,
    inverted on the lines through the mask only. Returns the bands [(res, step, rms)],
    the whitening filter (Q,) and the final cut-off.
    """
    n = v1.shape[0]
    lines = np.nonzero(inside.any(axis=2))
    inside_lines = inside[lines]  # (L, N)
    fbuf = np.empty(q.shape)  # the band on the half-grid
    spectra = np.empty((2, *q.shape), dtype=np.complex128)
    spectra[0] = scipy.fft.rfftn(v1 + v2, workers=workers)
    spectra[1] = scipy.fft.rfftn(v1 - v2, workers=workers)
    bufs = np.empty_like(spectra)  # workspace of the transforms
    fft_workers = max(1, workers // 2) if pool is not None else workers

    def band_power(i):
        np.multiply(spectra[i], fbuf, out=bufs[i])
        x = _inverse_lines(bufs[i], n, lines, fft_workers)[inside_lines]
        return float(np.mean(x * x))

    bands = []
    whiten = np.zeros_like(f2)
    res, step = 0.0, _FIRST_STEP
    low_prev = None
    while True:
        low = _butterworth(f2, res + step)
        band = low.copy() if low_prev is None else low - low_prev
        np.take(band, q, out=fbuf, mode="clip")  # "clip": no buffered copy (q is in range)
        power, noise = _pair(band_power, pool)
        snr = abs(1.0 - noise / power)
        rms = math.sqrt(power)
        bands.append((res, step, rms))
        band *= step / rms
        whiten += band
        if res + step >= maxres or snr <= _MIN_SNR:
            return bands, whiten, res + step
        res = res + step
        step = snr * (res / 64.0)
        low_prev = low


def _pass2(
    v1: np.ndarray,
    v2: np.ndarray,
    inside: np.ndarray,
    q: np.ndarray,
    f2: np.ndarray,
    bands: list[tuple[float, float, float]],
    whiten: np.ndarray,
    mode: str,
    pool: ThreadPoolExecutor | None,
    workers: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Local truncation from high to low resolution, on the whitened halves.

    Shapes as in ``_pass1``; whiten: (Q,). Returns the two (N, N, N) truncated maps
    (whitened, or in ``rotfl`` mode the original low-passed, in float32 precision). As in
    the C program, a voxel is still free while its output is 0.
    """
    n = v1.shape[0]
    half = q.shape
    fbuf = np.empty(half)  # the low-pass on the half-grid
    np.take(whiten, q, out=fbuf, mode="clip")
    kw = np.empty((2, *half), dtype=np.complex128)  # whitened half-spectra
    for i, v in enumerate((v1, v2)):
        np.multiply(scipy.fft.rfftn(v, workers=workers), fbuf, out=kw[i])
    bufs = np.empty_like(kw)  # workspace of the transforms, then of the voxel tests
    flat = bufs.reshape(2, -1)
    squares = [flat[i].view(np.float64)[: n**3].reshape(n, n, n) for i in range(2)]
    unset = [flat[i].view(np.bool_)[: n**3].reshape(n, n, n) for i in range(2)]
    bufs32 = [flat[i].view(np.complex64)[: flat.shape[1]].reshape(half) for i in range(2)]
    inside_idx = np.flatnonzero(inside)
    log_term = 2.0 * math.log(inside_idx.size)
    outs = (np.zeros((n, n, n)), np.zeros((n, n, n)))
    take = np.empty((2, n, n, n), dtype=bool)
    fft_workers = max(1, workers // 2) if pool is not None else workers
    r: list = [None, None]
    threshold = 0.0

    def lowpass(i):
        np.multiply(kw[i], fbuf, out=bufs[i])
        r[i] = _inverse(bufs[i], n, fft_workers)

    def truncate(i):
        np.square(r[i], out=squares[i])
        np.greater(squares[i], threshold, out=take[i])
        take[i] &= np.equal(outs[i], 0.0, out=unset[i])  # unset overlaps squares (used)
        idx = np.flatnonzero(take[i])
        if idx.size and mode == "rotfl":  # fbuf: low / whiten, so kw * fbuf = K * low
            r[i] = None
            np.multiply(kw[i], fbuf, out=bufs32[i])
            outs[i].reshape(-1)[idx] = _inverse_at(bufs32[i], n, idx, fft_workers)
        elif idx.size:
            outs[i].reshape(-1)[idx] = r[i].reshape(-1).take(idx)
        r[i] = None

    for res, step, _ in reversed(bands):
        low = _butterworth(f2, res + step)
        np.take(low, q, out=fbuf, mode="clip")
        _pair(lowpass, pool)
        d = r[0].reshape(-1).take(inside_idx)
        d -= r[1].reshape(-1).take(inside_idx)
        d *= 0.5
        d *= d
        threshold = max(float(d.max()), log_term * float(d.mean()))
        del d
        if mode == "rotfl":
            np.take(low / whiten, q, out=fbuf, mode="clip")
        _pair(truncate, pool)
    return outs


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
    fft_workers: threads (default: all the process may use); with two or more, the two
        half-spectra of passes 1 and 2 are transformed in two threads.

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

    q = _radial_index(n)  # (N, N, N//2+1)
    f2 = np.arange(int(q.max()) + 1) / float(n * n)  # (Q,) |f|^2 in cycles/voxel per |k|^2
    m1, m2 = fft(v1 * mask), fft(v2 * mask)
    spec1, spec2, maxres = _spectrum(m1, m2, _half_voxel_shells(q), n)
    del m1, m2

    # passes 1 and 2 handle two half-spectra at a time (sum and difference, then the two
    # halves): with two or more workers, in two threads (workers // 2 FFT threads each)
    with ThreadPoolExecutor(2) if workers >= 2 else contextlib.nullcontext() as pool:
        bands, whiten, maxres = _pass1(v1, v2, inside, q, f2, maxres, pool, workers)
        out1, out2 = _pass2(v1, v2, inside, q, f2, bands, whiten, mode, pool, workers)
    recovered = 0.5 * (np.count_nonzero(out1) + np.count_nonzero(out2)) / n_inside
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
    unwhiten = np.take(unwhiten, q, mode="clip")  # (N, N, N//2+1)
    shells = _half_voxel_shells(q)
    del q
    results = []
    for out, spec in ((out1, spec1), (out2, spec2)):
        u = ifft(fft(out) * unwhiten)
        u *= float(n) ** 3
        u *= mask
        results.append(ifft(_apply_spectrum(fft(u), spec, shells, maxres, n)))
        del u
    del out1, out2
    return SidesplitterResult(results[0], results[1], maxres, len(bands), recovered)


def particle_sphere_mask(box_size: int, *, radius_voxels: float) -> np.ndarray:
    """Return the C program's soft sphere with a chosen radius: 1/sqrt(1 + (r/R)^16), centre N/2."""
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
        """Refuse: SIDESPLITTER needs both half-maps (raises TypeError)."""
        raise TypeError("sidesplitter needs both half-maps (regularize_pair)")

    def regularize_pair(self, half_map_1, half_map_2, *, context):
        """Run :func:`sidesplitter` on both (N, N, N) half-maps; return the two filtered maps."""
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
            result.cutoff_cycles_per_voxel,
            result.recovery,
        )
        return result.half_map_1, result.half_map_2
