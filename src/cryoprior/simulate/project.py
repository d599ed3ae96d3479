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

Layouts are those of :mod:`cryoprior.conventions`: images are (y, x), half-complex slices are
(N, N//2+1) in FFTW order. Euler matrices are RELION's (:func:`cryoprior.conventions.
euler_to_matrix`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from cryoprior.conventions import euler_to_matrix, relion_round

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
    volume: real array, real space, shape (N, N, N), (z, y, x), centre at voxel N//2;
        not modified.
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
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise ValueError(f"volume must be a cubic (N, N, N) array, not shape {vol.shape}")
    if padding_factor < 1:
        raise ValueError(f"padding_factor must be >= 1, not {padding_factor}")
    n = vol.shape[0]
    padded = relion_round(padding_factor * n)
    padded += padded % 2
    pad = padded / n
    r_max = n // 2
    radius = relion_round(r_max * pad)
    margin = radius + 1

    if gridding_correction:
        vol = vol / _gridding_kernel(n, pad)
    # Zero-pad with centre n//2 -> padded//2, then move the centre to index 0 (phase origin).
    big = np.zeros((padded,) * 3, dtype=np.float64)
    start = padded // 2 - n // 2
    big[start : start + n, start : start + n, start : start + n] = vol
    big = np.fft.ifftshift(big)
    spectrum = torch.fft.rfftn(torch.from_numpy(big))
    del big

    # Logical frequencies -L..L (z, y) and 0..L (x); FFTW stores -(P/2-1)..P/2 (RELION's range).
    k = np.arange(-margin, margin + 1)
    valid = (k > -(padded // 2)) & (k <= padded // 2)
    src = np.mod(k, padded)
    kx = np.arange(margin + 1)
    valid_x = kx <= padded // 2
    src_x = np.minimum(kx, padded // 2)
    idx = torch.from_numpy
    data = spectrum[idx(src)][:, idx(src)][:, :, idx(src_x)]
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    keep = (r2 <= radius**2) & valid[:, None, None] & valid[None, :, None] & valid_x[None, None, :]
    data = data * torch.from_numpy(keep)
    data = data.to(dtype=dtype, device=device).contiguous()
    return FourierVolume(data=data, box_size=n, padding_factor=pad, padded_size=padded, margin=margin)


def _gridding_kernel(n: int, pad: float) -> np.ndarray:
    """sinc^2(r / (n * pad)) on the (n, n, n) grid, r in voxels from voxel n//2 (1 at r = 0)."""
    c = np.arange(n, dtype=np.float64) - n // 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    return np.sinc(r / (n * pad)) ** 2  # numpy's sinc is sin(pi x)/(pi x)


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


def project_slices(fvol: FourierVolume, matrices) -> torch.Tensor:
    """Central slices of a prepared map: the half-complex 2D transforms of its projections.

    Parameters
    ----------
    fvol: from :func:`fourier_volume`.
    matrices: RELION Euler matrices, shape (b, 3, 3) (numpy or torch; see
        :func:`cryoprior.conventions.euler_to_matrix`).

    Returns
    -------
    complex tensor on ``fvol.device``, Fourier space, shape (b, N, N//2+1), rfft layout of
    :mod:`cryoprior.conventions`, scaled so that ``torch.fft.irfft2`` gives projections
    (sums along the viewing direction) with the phase origin at pixel 0 (see
    :func:`images_from_slices`). Zero outside the disc ``kx^2 + ky^2 <= (N/2)^2``.
    """
    data = fvol.data
    real_dtype = torch.float64 if data.dtype == torch.complex128 else torch.float32
    device = data.device
    a = torch.as_tensor(np.asarray(matrices) if not torch.is_tensor(matrices) else matrices)
    a = a.to(device=device, dtype=real_dtype)
    if a.ndim != 3 or a.shape[-2:] != (3, 3):
        raise ValueError(f"matrices must have shape (b, 3, 3), not {tuple(a.shape)}")
    n = fvol.box_size
    grid = _slice_grid(n, device, real_dtype)
    pad = fvol.padding_factor
    # (x, y, z) = pad * (kx * A[0] + ky * A[1]): RELION's Ainv = A^T applied to (kx, ky, 0).
    coords = pad * (
        grid.kx[None, :, None] * a[:, None, 0, :] + grid.ky[None, :, None] * a[:, None, 1, :]
    )  # (b, p, 3)
    negative = coords[..., 0] < 0
    coords = torch.where(negative[..., None], -coords, coords)
    base = torch.floor(coords)
    frac = coords - base
    base = base.to(torch.int64)
    size_y = data.shape[1]
    size_x = data.shape[2]
    margin = fvol.margin
    x0 = base[..., 0]
    y0 = base[..., 1] + margin
    z0 = base[..., 2] + margin
    flat = data.reshape(-1)
    i000 = (z0 * size_y + y0) * size_x + x0
    stride_y, stride_z = size_x, size_y * size_x
    fx, fy, fz = frac[..., 0], frac[..., 1], frac[..., 2]

    def at(offset: int) -> torch.Tensor:
        return flat[i000 + offset]

    # Interpolate along x, then y, then z (RELION's LIN_INTERP order).
    dx00 = torch.lerp(at(0), at(1), fx.to(data.dtype))
    dx01 = torch.lerp(at(stride_y), at(stride_y + 1), fx.to(data.dtype))
    dx10 = torch.lerp(at(stride_z), at(stride_z + 1), fx.to(data.dtype))
    dx11 = torch.lerp(at(stride_z + stride_y), at(stride_z + stride_y + 1), fx.to(data.dtype))
    dxy0 = torch.lerp(dx00, dx01, fy.to(data.dtype))
    dxy1 = torch.lerp(dx10, dx11, fy.to(data.dtype))
    values = torch.lerp(dxy0, dxy1, fz.to(data.dtype))
    values = torch.where(negative, values.conj(), values)
    out = torch.zeros((a.shape[0], n * (n // 2 + 1)), dtype=data.dtype, device=device)
    out[:, grid.flat_index] = values
    return out.reshape(a.shape[0], n, n // 2 + 1)


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
    s = torch.as_tensor(np.asarray(shifts_pixels, dtype=np.float64)).to(device=device)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"shifts_pixels must have shape (b, 2), not {tuple(s.shape)}")
    half = n // 2 + 1
    ky = torch.arange(n, device=device, dtype=torch.float64)
    ky = torch.where(ky < half, ky, ky - n)
    kx = torch.arange(half, device=device, dtype=torch.float64)
    phase = (-2.0 * math.pi / n) * (
        ky[None, :, None] * s[:, 0, None, None] + kx[None, None, :] * s[:, 1, None, None]
    )
    return torch.polar(torch.ones_like(phase), phase).to(dtype)


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
        slices = project_slices(fvol, matrices[start:stop])
        if shifts_pixels is not None:
            slices = slices * shift_phases(
                fvol.box_size, shifts_pixels[start:stop], device=fvol.device, dtype=slices.dtype
            )
        out[start:stop] = images_from_slices(slices).to(torch.float32).cpu().numpy()
    return out
