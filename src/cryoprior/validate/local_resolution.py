"""Local resolution from the FSC of two maps in sliding soft windows.

As Bsoft's ``blocres`` computes it (Cardone et al., J. Struct. Biol. 183:226, 2013).

Around each point of a lattice (every ``step_voxels``), a cube of ``window_size_voxels`` is cut
from both maps, multiplied by a soft spherical window (1 up to a quarter of the window size,
a raised-cosine edge to 0 at half of it) and Fourier transformed; the FSC of the two windows
is computed over the shells of the window and its crossing of the threshold, interpolated
linearly in frequency, is the local resolution there. The lattice values are interpolated
trilinearly to every voxel (or to any point, e.g. atoms). Windows reaching past the box see
zeros.

Shells of a window of W voxels are W * voxel / s Angstrom (s = 1..W/2): the local resolution
cannot be better than Nyquist (2 voxels) or worse than W voxels. A rule of thumb for W is 5-7
times the expected resolution (Bsoft's documentation); the default, 20 voxels, is what FSC-Q
uses. With small windows each shell holds few Fourier voxels and the FSC is noisy, which is why
local-resolution programs use higher thresholds (Bsoft's usual 0.5, the default here) than the
global 0.143.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage
from numpy.lib.stride_tricks import sliding_window_view

from cryoprior.fourier.correlation import crossing_shell, fourier_correlation
from cryoprior.fourier.masks import soft_sphere

__all__ = [
    "LocalResolution",
    "default_step_voxels",
    "local_fsc_lattice",
    "local_resolution",
    "resolution_from_curves",
    "sample_lattice",
]

logger = logging.getLogger(__name__)

_BATCH = 2048


@dataclass(frozen=True)
class LocalResolution:
    """A local-resolution map and its statistics inside a mask.

    Attributes
    ----------
    resolution_map_angstrom: (n, n, n) float64, local resolution in Angstrom; NaN where it was
        not estimated (outside the mask).
    median_angstrom: median of the map inside the mask (mask > 0.5, or everywhere).
    histogram_counts: (n_bins,) voxels inside the mask per resolution bin.
    histogram_edges_angstrom: (n_bins+1,) bin edges, increasing.
    window_size_voxels, step_voxels, fsc_threshold, voxel_size_angstrom: how it was made.
    """

    resolution_map_angstrom: np.ndarray
    median_angstrom: float
    histogram_counts: np.ndarray
    histogram_edges_angstrom: np.ndarray
    window_size_voxels: int
    step_voxels: int
    fsc_threshold: float
    voxel_size_angstrom: float

    def to_dict(self) -> dict:
        """Summary as a JSON-ready dict (median, histogram and the parameters; not the map)."""
        return {
            "median_angstrom": self.median_angstrom,
            "histogram_counts": self.histogram_counts.tolist(),
            "histogram_edges_angstrom": self.histogram_edges_angstrom.tolist(),
            "window_size_voxels": self.window_size_voxels,
            "step_voxels": self.step_voxels,
            "fsc_threshold": self.fsc_threshold,
        }


def default_step_voxels(window_size_voxels: int) -> int:
    """Lattice step used when none is given: a fifth of the window (at least 1)."""
    return max(1, int(window_size_voxels) // 5)


def local_fsc_lattice(
    map_1,
    map_2,
    *,
    mask=None,
    window_size_voxels: int = 20,
    step_voxels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed FSC curves on a lattice of points.

    Parameters
    ----------
    map_1, map_2: real arrays, real space, shape (n, n, n).
    mask: optional boolean (n, n, n) array; only lattice points within ``step_voxels``
        (Chebyshev distance) of a True voxel are evaluated. None evaluates every point.
    window_size_voxels: W, the window's edge (>= 4).
    step_voxels: lattice step (default :func:`default_step_voxels`).

    Returns
    -------
    (centres, curves): int64 (m, 3) lattice points (z, y, x) in voxels, multiples of the step;
    float64 (m, W//2+1) FSC curves of the windows around them.
    """
    a = np.asarray(map_1, dtype=np.float32)
    b = np.asarray(map_2, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 3 or len(set(a.shape)) != 1:
        raise ValueError(f"maps must be (n, n, n) of one shape, not {a.shape}, {b.shape}")
    w = int(window_size_voxels)
    if w < 4:
        raise ValueError("window_size_voxels must be >= 4")
    step = default_step_voxels(w) if step_voxels is None else int(step_voxels)
    if step < 1:
        raise ValueError("step_voxels must be >= 1")
    n = a.shape[0]
    axis = np.arange(0, n, step)
    if mask is None:
        grid = np.ones((axis.size,) * 3, dtype=bool)
    else:
        reg = np.asarray(mask, dtype=bool)
        if reg.shape != a.shape:
            raise ValueError(f"mask shape {reg.shape} differs from the maps' {a.shape}")
        near = scipy.ndimage.maximum_filter(reg, size=2 * step + 1, mode="constant")
        grid = near[np.ix_(axis, axis, axis)]
    centres = np.argwhere(grid) * step
    half = w // 2
    pad = ((half, w - half),) * 3
    windows_1 = sliding_window_view(np.pad(a, pad), (w, w, w))
    windows_2 = sliding_window_view(np.pad(b, pad), (w, w, w))
    taper = soft_sphere(w, radius_voxels=w / 4.0, edge_width_voxels=w / 4.0).astype(np.float32)
    n_shells = w // 2 + 1
    curves = np.zeros((centres.shape[0], n_shells))
    for start in range(0, centres.shape[0], _BATCH):
        c = centres[start : start + _BATCH]
        # window i covers map voxels c - half .. c - half + w - 1, i.e. padded c .. c + w - 1
        x1 = windows_1[c[:, 0], c[:, 1], c[:, 2]] * taper
        x2 = windows_2[c[:, 0], c[:, 1], c[:, 2]] * taper
        f1 = scipy.fft.rfftn(x1, axes=(1, 2, 3))
        f2 = scipy.fft.rfftn(x2, axes=(1, 2, 3))
        curves[start : start + len(c)] = fourier_correlation(f1, f2, n=w)
    return centres, curves


def resolution_from_curves(
    curves, *, threshold: float, window_size_voxels: int, voxel_size_angstrom: float
) -> np.ndarray:
    """Crossing of ``threshold`` of many FSC curves of one window size, in Angstrom.

    Interpolated linearly in frequency between the shells around the first crossing (shell 0
    counts as 1); a curve that never crosses gives the Nyquist resolution.

    Parameters
    ----------
    curves: (m, W//2+1) FSC curves.

    Returns
    -------
    (m,) float64 resolutions in Angstrom, between 2 voxels and W voxels.
    """
    w = int(window_size_voxels)
    shell = crossing_shell(np.atleast_2d(curves), threshold=threshold)
    shell = np.clip(np.where(np.isnan(shell), w // 2, shell), 1.0, w // 2)
    return w * float(voxel_size_angstrom) / shell


def sample_lattice(
    centres, values, points_zyx_voxels, *, box_size: int, step_voxels: int
) -> np.ndarray:
    """Trilinear interpolation of lattice values at arbitrary points.

    Lattice points that were not evaluated take the value of the nearest evaluated one, so
    points near the edge of the evaluated region are interpolated from real estimates.

    Parameters
    ----------
    centres: (m, 3) int lattice points (z, y, x), multiples of ``step_voxels``.
    values: (m,) values at the centres.
    points_zyx_voxels: (p, 3) float positions (z, y, x) in voxels.
    box_size: n of the map the lattice was laid on.
    step_voxels: the lattice step.

    Returns
    -------
    (p,) float64 interpolated values.
    """
    grid = _lattice_grid(centres, values, box_size=box_size, step_voxels=step_voxels)
    coords = np.asarray(points_zyx_voxels, dtype=np.float64).T / step_voxels
    return scipy.ndimage.map_coordinates(grid, coords, order=1, mode="nearest")


def _lattice_grid(centres, values, *, box_size: int, step_voxels: int) -> np.ndarray:
    size = len(range(0, box_size, step_voxels))
    grid = np.full((size,) * 3, np.nan)
    idx = np.asarray(centres, dtype=np.int64) // step_voxels
    if idx.shape[0] == 0:
        raise ValueError("no lattice point was evaluated (empty region)")
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = values
    missing = np.isnan(grid)
    if missing.any():
        nearest = scipy.ndimage.distance_transform_edt(
            missing, return_distances=False, return_indices=True
        )
        grid = grid[tuple(nearest)]
    return grid


def local_resolution(
    half_map_1,
    half_map_2,
    *,
    mask=None,
    voxel_size_angstrom: float,
    window_size_voxels: int = 20,
    step_voxels: int | None = None,
    fsc_threshold: float = 0.5,
    n_histogram_bins: int = 30,
) -> LocalResolution:
    """Local resolution of two half-maps: windowed FSC on a lattice, interpolated to voxels.

    Parameters
    ----------
    half_map_1, half_map_2: real arrays, real space, shape (n, n, n).
    mask: optional real array, real space, shape (n, n, n); the resolution is estimated near
        mask > 0.5 and reported (median, histogram) inside it; NaN outside.
    voxel_size_angstrom: voxel size.
    window_size_voxels: W, the window's edge in voxels.
    step_voxels: lattice step (default W // 5).
    fsc_threshold: the local FSC threshold (0.5 as ``blocres``' usual; see the module notes).
    n_histogram_bins: bins of the histogram, evenly spaced between the smallest and largest
        value inside the mask.

    Returns
    -------
    :class:`LocalResolution`. Inputs are not modified.
    """
    h1 = np.asarray(half_map_1)
    n = h1.shape[-1]
    inside = None if mask is None else np.asarray(mask, dtype=np.float64) > 0.5
    if inside is not None and not inside.any():
        raise ValueError("the mask has no voxel above 0.5")
    step = default_step_voxels(window_size_voxels) if step_voxels is None else int(step_voxels)
    centres, curves = local_fsc_lattice(
        h1, half_map_2, mask=inside, window_size_voxels=window_size_voxels, step_voxels=step
    )
    values = resolution_from_curves(
        curves,
        threshold=fsc_threshold,
        window_size_voxels=window_size_voxels,
        voxel_size_angstrom=voxel_size_angstrom,
    )
    grid = _lattice_grid(centres, values, box_size=n, step_voxels=step)
    coords = np.indices((n, n, n), dtype=np.float64) / step
    full = scipy.ndimage.map_coordinates(grid, coords, order=1, mode="nearest")
    if inside is not None:
        full = np.where(inside, full, np.nan)
        selected = full[inside]
    else:
        selected = full.ravel()
    counts, edges = np.histogram(selected, bins=n_histogram_bins)
    logger.debug("local resolution: %d windows of %d voxels", centres.shape[0], window_size_voxels)
    return LocalResolution(
        resolution_map_angstrom=full,
        median_angstrom=float(np.median(selected)),
        histogram_counts=counts,
        histogram_edges_angstrom=edges,
        window_size_voxels=int(window_size_voxels),
        step_voxels=step,
        fsc_threshold=float(fsc_threshold),
        voxel_size_angstrom=float(voxel_size_angstrom),
    )
