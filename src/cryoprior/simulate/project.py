"""Fourier-slice projection of a 3D map in RELION's convention, batched, in torch.

The projector follows RELION 3.1's ``Projector`` (the one ``relion_project`` uses) step by
step, so that its images equal ``relion_project``'s to float rounding:

1. gridding pre-correction: the map is divided by ``sinc^2(r / (N * pad))`` (r in voxels from
   the centre voxel N//2), the Fourier transform of the trilinear interpolation kernel;
2. the corrected map is zero-padded to a box of ``P = ROUND(pad * N)`` voxels (made even) and
   Fourier-transformed with its centre voxel as the phase origin;
3. only Fourier voxels with ``|k|^2 <= ROUND(pad * N/2)^2`` (padded voxels) are kept;
4. the 2D component (kx, ky) of the image with Euler matrix A is the trilinear interpolation of
   that array at ``pad * A^T (kx, ky, 0)``, for ``kx^2 + ky^2 <= (N/2)^2`` (zero beyond), the
   Hermitian mate being used for negative x;
5. a shift of the image by (dx, dy) pixels is the phase factor ``exp(-2 pi i (kx dx + ky dy)/N)``;
   RELION draws a particle with ``rlnOriginXAngst/YAngst`` = (ox, oy) shifted by -(ox, oy)/pixel;
6. the image is the inverse 2D transform, with the centre at pixel N//2; its scale is that of a
   sum of voxels along the projection direction (as RELION's).

Like RELION's, these are not exact line integrals: the radial gridding correction is right on
average over interpolation positions, not at each, so density r voxels from the centre can be
off by up to ``1/sinc^2(r / P) - 1`` (3% at r = N/5, padding 2) in views whose slice points
fall on the padded grid; relion_reconstruct of such images still gives back the map (FSC >
0.99).

Layouts are those of :mod:`cryoprior.conventions`: images are (y, x), half-complex slices are
(N, N//2+1) in FFTW order. Euler matrices are RELION's (:func:`cryoprior.conventions.
euler_to_matrix`). Batches run on the device of the prepared map (CPU or GPU); on CPU the
interpolation can be compiled (``backend="compiled"``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from cryoprior.conventions import euler_to_matrix, relion_round
from cryoprior.fourier.filters import gridding_kernel

__all__ = [
    "FourierVolume",
    "fourier_volume",
    "images_from_slices",
    "project",
    "project_slices",
    "shift_phases",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class FourierVolume:
    """A map prepared for Fourier-slice projection (what RELION's ``Projector`` holds).

    Attributes
    ----------
    data: complex tensor, Fourier space, shape (2L+1, 2L+1, L+1): the padded, gridding-corrected
        3D transform at integer padded frequencies (kz, ky, kx) in [-L, L]^2 x [0, L], stored at
        index (kz + L, ky + L, kx); zero beyond the radius ``ROUND(pad * N/2)``.
    box_size: N, the box of the map and of the images.
    padding_factor: the padding factor actually used, ``P / N``.
    padded_size: P, the padded box (even).
    margin: L = ``ROUND(pad * N/2) + 1``.
    """

    data: torch.Tensor
    box_size: int
    padding_factor: float
    padded_size: int
    margin: int

    @property
    def device(self) -> torch.device:
        """Torch device of the Fourier volume."""
        return self.data.device


def fourier_volume(
    volume,
    *,
    padding_factor: float = 2.0,
    gridding_correction: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.complex64,
) -> FourierVolume:
    """Prepare a real map for :func:`project_slices` as RELION's ``Projector`` does.

    Parameters
    ----------
    volume: real array, real space, shape (N, N, N), N even (as RELION needs), (z, y, x),
        centre at voxel N//2; not modified.
    padding_factor: oversampling of the 3D transform (RELION's ``--pad``, default 2).
    gridding_correction: divide the map by sinc^2 of the trilinear kernel first (RELION does).
    device: torch device for the result (default CPU).
    dtype: complex dtype of the stored transform (complex64 or complex128).

    Returns
    -------
    FourierVolume on ``device``.

    Example
    -------
    >>> fv = fourier_volume(np.zeros((8, 8, 8)))
    >>> tuple(fv.data.shape), fv.padded_size
    ((19, 19, 10), 16)
    """
    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim != 3 or len(set(vol.shape)) != 1 or vol.shape[0] % 2:
        raise ValueError(f"volume must be a cubic (N, N, N) array, N even, not shape {vol.shape}")
    if padding_factor < 1:
        raise ValueError(f"padding_factor must be >= 1, not {padding_factor}")
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, not {dtype}")
    real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
    device = torch.device("cpu") if device is None else torch.device(device)
    n = vol.shape[0]
    padded = relion_round(padding_factor * n)
    padded += padded % 2
    pad = padded / n
    radius = relion_round((n // 2) * pad)
    margin = radius + 1

    if gridding_correction:
        vol = vol / gridding_kernel(n, padding_factor=pad)
    # Zero-pad, with the centre voxel n//2 at index 0 (the phase origin, RELION's CenterFFT).
    big = torch.zeros((padded,) * 3, dtype=real_dtype, device=device)
    where = torch.from_numpy((np.arange(n) - n // 2) % padded).to(device)
    big[where[:, None, None], where[None, :, None], where[None, None, :]] = torch.from_numpy(
        vol
    ).to(device=device, dtype=real_dtype)
    spectrum = torch.fft.rfftn(big)
    del big

    # Logical frequencies -L..L (z, y) and 0..L (x) at index (k + L); FFTW stores
    # -(P/2-1)..P/2 (RELION's range), copied in two blocks per full axis.
    size = 2 * margin + 1
    data = torch.zeros((size, size, margin + 1), dtype=dtype, device=device)
    top = min(padded // 2, margin)  # highest stored positive frequency that fits
    low = min(padded // 2 - 1, margin)  # highest |negative| frequency
    blocks = ((slice(margin, margin + top + 1), slice(0, top + 1)),
              (slice(margin - low, margin), slice(padded - low, padded)))  # fmt: skip
    for dst_z, src_z in blocks:
        for dst_y, src_y in blocks:
            data[dst_z, dst_y, : top + 1] = spectrum[src_z, src_y, : top + 1]
    del spectrum
    # keep |k|^2 <= ROUND(pad N/2)^2 only, one z plane at a time (bounded memory)
    k = torch.arange(-margin, margin + 1, device=device)
    kx = torch.arange(margin + 1, device=device)
    plane = k[:, None] ** 2 + kx[None, :] ** 2
    for iz in range(size):
        data[iz].masked_fill_(plane + k[iz] ** 2 > radius**2, 0)
    return FourierVolume(
        data=data, box_size=n, padding_factor=pad, padded_size=padded, margin=margin
    )


@dataclass(frozen=True)
class _SliceGrid:
    """The 2D Fourier pixels RELION fills: kx in 0..N/2, all rows, kx^2 + ky^2 <= (N/2)^2."""

    flat_index: torch.Tensor  # (p,) int64 into the (N, N//2+1) half-complex image
    kx: torch.Tensor  # (p,) float
    ky: torch.Tensor  # (p,) float


def _slice_grid(n: int, device: torch.device, dtype: torch.dtype) -> _SliceGrid:
    half = n // 2 + 1
    ky = np.arange(n)
    ky = np.where(ky < half, ky, ky - n)
    kx = np.arange(half)
    kyy, kxx = np.meshgrid(ky, kx, indexing="ij")
    inside = kxx**2 + kyy**2 <= (n // 2) ** 2
    flat = np.flatnonzero(inside.ravel())
    return _SliceGrid(
        flat_index=torch.from_numpy(flat).to(device),
        kx=torch.from_numpy(kxx.ravel()[flat]).to(device=device, dtype=dtype),
        ky=torch.from_numpy(kyy.ravel()[flat]).to(device=device, dtype=dtype),
    )


def project_slices(fvol: FourierVolume, matrices, *, backend: str = "eager") -> torch.Tensor:
    """Central slices of a prepared map: the half-complex 2D transforms of its projections.

    Parameters
    ----------
    fvol: from :func:`fourier_volume`.
    matrices: RELION Euler matrices, shape (b, 3, 3) (numpy or torch; see
        :func:`cryoprior.conventions.euler_to_matrix`).
    backend: ``"eager"`` (plain torch operations; fast on GPUs) or ``"compiled"`` (the same
        interpolation fused into one loop by ``torch.compile``: 2-3 times faster on 2 CPU cores,
        but it needs a C++ compiler and compiles once per process: about 11 s the first time on
        a machine, 2 s from torch's on-disk cache later). If compiling fails, the eager
        path is used, with a warning.

    Returns
    -------
    complex tensor on ``fvol.device``, Fourier space, shape (b, N, N//2+1), rfft layout of
    :mod:`cryoprior.conventions`, scaled so that ``torch.fft.irfft2`` gives projections
    (sums along the viewing direction) with the phase origin at pixel 0 (see
    :func:`images_from_slices`). Zero outside the disc ``kx^2 + ky^2 <= (N/2)^2``.
    """
    if backend not in ("eager", "compiled"):
        raise ValueError(f"backend must be 'eager' or 'compiled', not {backend!r}")
    data = fvol.data
    real_dtype = torch.float64 if data.dtype == torch.complex128 else torch.float32
    device = data.device
    a = matrices if torch.is_tensor(matrices) else torch.from_numpy(np.array(matrices))
    a = a.to(device=device, dtype=real_dtype)
    if a.ndim != 3 or a.shape[-2:] != (3, 3):
        raise ValueError(f"matrices must have shape (b, 3, 3), not {tuple(a.shape)}")
    n = fvol.box_size
    grid = _slice_grid(n, device, real_dtype)
    kx = grid.kx * fvol.padding_factor
    ky = grid.ky * fvol.padding_factor
    values = None
    if backend == "compiled":
        kernel = _compiled_kernel()
        if kernel is not None:
            try:
                pairs = kernel(
                    a, torch.view_as_real(data).reshape(-1, 2), kx, ky,
                    fvol.margin, data.shape[1], data.shape[2],
                )  # fmt: skip
                values = torch.view_as_complex(pairs.contiguous())
            except Exception as exc:  # torch.compile fails in many ways; eager is exact too
                _disable_compiled(exc)
    if values is None:
        values = _slice_values_eager(a, data, kx, ky, fvol.margin)
    out = torch.zeros((a.shape[0], n * (n // 2 + 1)), dtype=data.dtype, device=device)
    out[:, grid.flat_index] = values
    return out.reshape(a.shape[0], n, n // 2 + 1)


def _padded_coords(a: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor):
    """(x, y, z) = pad * A^T (kx, ky, 0) folded to x >= 0, and where it was folded.

    a: (b, 3, 3); kx, ky: (p,) already multiplied by the padding factor. Returns three
    (b, p) tensors and a (b, p) bool tensor.
    """
    x = kx[None] * a[:, 0, 0, None] + ky[None] * a[:, 1, 0, None]
    y = kx[None] * a[:, 0, 1, None] + ky[None] * a[:, 1, 1, None]
    z = kx[None] * a[:, 0, 2, None] + ky[None] * a[:, 1, 2, None]
    negative = x < 0
    sign = torch.where(negative, -1.0, 1.0).to(x.dtype)
    return x * sign, y * sign, z * sign, negative


def _slice_values_eager(
    a: torch.Tensor, data: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor, margin: int
) -> torch.Tensor:
    """Trilinear interpolation (RELION's order: x, then y, then z) with torch operations.

    Returns complex (b, p) values at the slice points.
    """
    x, y, z, negative = _padded_coords(a, kx, ky)
    x0, y0, z0 = torch.floor(x), torch.floor(y), torch.floor(z)
    fx = (x - x0).to(data.dtype)
    fy = (y - y0).to(data.dtype)
    fz = (z - z0).to(data.dtype)
    size_y, size_x = data.shape[1], data.shape[2]
    i000 = (
        (z0.to(torch.int64) + margin) * size_y + (y0.to(torch.int64) + margin)
    ) * size_x + x0.to(torch.int64)
    i000 = i000.reshape(-1)
    flat = data.reshape(-1)
    sy, sz = size_x, size_y * size_x
    shape = x.shape

    def at(offset: int) -> torch.Tensor:
        return flat.index_select(0, i000 + offset).reshape(shape)

    dx00 = torch.lerp(at(0), at(1), fx)
    dx01 = torch.lerp(at(sy), at(sy + 1), fx)
    dx10 = torch.lerp(at(sz), at(sz + 1), fx)
    dx11 = torch.lerp(at(sz + sy), at(sz + sy + 1), fx)
    values = torch.lerp(torch.lerp(dx00, dx01, fy), torch.lerp(dx10, dx11, fy), fz)
    return torch.where(negative, values.conj(), values)


def _slice_values_fused(
    a: torch.Tensor,
    table: torch.Tensor,
    kx: torch.Tensor,
    ky: torch.Tensor,
    margin: int,
    size_y: int,
    size_x: int,
) -> torch.Tensor:
    """Interpolate as :func:`_slice_values_eager` does, on (real, imaginary) pairs.

    Written for ``torch.compile`` (which fuses it into one loop). table: (K, 2) real view of the
    Fourier volume. Returns (b, p, 2) real.
    """
    x, y, z, negative = _padded_coords(a, kx, ky)
    x0, y0, z0 = torch.floor(x), torch.floor(y), torch.floor(z)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    fz = (z - z0)[..., None]
    i = ((z0.long() + margin) * size_y + (y0.long() + margin)) * size_x + x0.long()
    sy, sz = size_x, size_y * size_x

    def at(offset):
        return table[i + offset]

    d00 = at(0) + fx * (at(1) - at(0))
    d01 = at(sy) + fx * (at(sy + 1) - at(sy))
    d10 = at(sz) + fx * (at(sz + 1) - at(sz))
    d11 = at(sz + sy) + fx * (at(sz + sy + 1) - at(sz + sy))
    e0 = d00 + fy * (d01 - d00)
    e1 = d10 + fy * (d11 - d10)
    v = e0 + fz * (e1 - e0)
    imag = torch.where(negative, -v[..., 1], v[..., 1])
    return torch.stack([v[..., 0], imag], dim=-1)


_COMPILED: dict[str, object] = {}


def _compiled_kernel():
    """``torch.compile`` of :func:`_slice_values_fused`, made on first use (None if disabled)."""
    if "disabled" in _COMPILED:
        return None
    if "kernel" not in _COMPILED:
        # one kernel: a pool of compile workers only adds start-up time
        _COMPILED["kernel"] = torch.compile(
            _slice_values_fused, dynamic=True, options={"compile_threads": 1}
        )
    return _COMPILED["kernel"]


def _disable_compiled(exc: BaseException) -> None:
    logger.warning(
        "torch.compile of the projector failed (%s: %s); using eager torch operations",
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )
    _COMPILED["disabled"] = True


def shift_phases(n: int, shifts_pixels, *, device=None, dtype=torch.complex64) -> torch.Tensor:
    """Phase factors that shift images by (dy, dx) pixels: ``exp(-2 pi i (ky dy + kx dx) / n)``.

    Parameters
    ----------
    n: image box size.
    shifts_pixels: real array, shape (b, 2), (dy, dx) in pixels; a positive dx moves the
        image content to larger x. For a particle with ``rlnOriginXAngst/YAngst`` = (ox, oy),
        RELION's image is shifted by (dy, dx) = -(oy, ox) / pixel size.
    device, dtype: of the result.

    Returns
    -------
    complex tensor, Fourier space, shape (b, n, n//2+1), rfft layout.
    """
    s = torch.from_numpy(np.array(shifts_pixels, dtype=np.float64)).to(device=device)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"shifts_pixels must have shape (b, 2), not {tuple(s.shape)}")
    half = n // 2 + 1
    ky = torch.arange(n, device=device, dtype=torch.float64)
    ky = torch.where(ky < half, ky, ky - n)
    kx = torch.arange(half, device=device, dtype=torch.float64)
    # separable: exp(-2 pi i ky dy / n) exp(-2 pi i kx dx / n), phases in float64
    row = torch.polar(torch.ones(1, dtype=torch.float64, device=device),
                      (-2.0 * math.pi / n) * ky[None, :] * s[:, 0, None]).to(dtype)  # fmt: skip
    col = torch.polar(torch.ones(1, dtype=torch.float64, device=device),
                      (-2.0 * math.pi / n) * kx[None, :] * s[:, 1, None]).to(dtype)  # fmt: skip
    return row[:, :, None] * col[:, None, :]


def images_from_slices(slices: torch.Tensor) -> torch.Tensor:
    """Real images from half-complex slices (phase origin at pixel 0), centred at pixel N//2.

    Parameters
    ----------
    slices: complex tensor, Fourier space, shape (..., N, N//2+1).

    Returns
    -------
    real tensor, real space, shape (..., N, N), (y, x), centre at pixel N//2.
    """
    n = slices.shape[-2]
    images = torch.fft.irfft2(slices, s=(n, n))
    return torch.fft.fftshift(images, dim=(-2, -1))


def project(
    volume,
    *,
    rot_degrees,
    tilt_degrees,
    psi_degrees,
    shifts_pixels=None,
    padding_factor: float = 2.0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    backend: str = "eager",
) -> np.ndarray:
    """Projections of a map at RELION Euler angles, as ``relion_project`` makes them.

    Parameters
    ----------
    volume: real array (N, N, N), (z, y, x), or a :class:`FourierVolume` already prepared.
    rot_degrees, tilt_degrees, psi_degrees: arrays of shape (b,) (scalars broadcast).
    shifts_pixels: (b, 2) image shifts (dy, dx) in pixels, or None. RELION's
        ``rlnOriginXAngst/YAngst`` (ox, oy) corresponds to -(oy, ox) / pixel size.
    padding_factor: for a map given as an array.
    batch_size: images per batch.
    device: torch device (default CPU; a GPU when asked).
    backend: see :func:`project_slices`.

    Returns
    -------
    float32 array, real space, shape (b, N, N), (y, x), centre at pixel N//2.

    Example
    -------
    >>> v = np.zeros((16, 16, 16)); v[8, 8, 8] = 1.0
    >>> img = project(v, rot_degrees=[0.0], tilt_degrees=[0.0], psi_degrees=[0.0])
    >>> img.shape, round(float(img.sum()), 4)
    ((1, 16, 16), 1.0)
    """
    fvol = (
        volume
        if isinstance(volume, FourierVolume)
        else fourier_volume(volume, padding_factor=padding_factor, device=device)
    )
    matrices = euler_to_matrix(rot_degrees, tilt_degrees, psi_degrees).reshape(-1, 3, 3)
    b = matrices.shape[0]
    if shifts_pixels is not None:
        shifts_pixels = np.broadcast_to(np.asarray(shifts_pixels, dtype=np.float64), (b, 2))
    out = np.empty((b, fvol.box_size, fvol.box_size), dtype=np.float32)
    for start in range(0, b, batch_size):
        stop = min(start + batch_size, b)
        slices = project_slices(fvol, matrices[start:stop], backend=backend)
        if shifts_pixels is not None:
            slices = slices * shift_phases(
                fvol.box_size, shifts_pixels[start:stop], device=fvol.device, dtype=slices.dtype
            )
        out[start:stop] = images_from_slices(slices).to(torch.float32).cpu().numpy()
    return out
