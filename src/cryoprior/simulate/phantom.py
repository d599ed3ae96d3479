"""Small synthetic test objects: "atom-like" maps of many small Gaussians.

Maps of fat blobs carry no signal past ~10 A and may not align; many small Gaussians
behave like a protein at low resolution, which is what tiny real refinements need.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["atom_like_phantom", "gaussian_lowpass"]


def atom_like_phantom(
    box_size: int,
    *,
    n_atoms: int = 200,
    radius_voxels: float | None = None,
    sigma_voxels: float = 1.0,
    seed: int,
) -> np.ndarray:
    """Make a compact, asymmetric cloud of Gaussian "atoms".

    Parameters
    ----------
    box_size: N; output (N, N, N) float32, centre at N//2.
    n_atoms: number of Gaussians, placed uniformly in an ellipsoid.
    radius_voxels: largest semi-axis of the ellipsoid (default N/4).
    sigma_voxels: Gaussian SD of each atom.
    seed: random seed.
    """
    rng = np.random.default_rng(seed)
    radius = box_size / 4 if radius_voxels is None else float(radius_voxels)
    semi_axes = radius * np.array([1.0, 0.8, 0.6])
    points: list[np.ndarray] = []
    while len(points) < n_atoms:
        p = rng.uniform(-1, 1, size=3)
        if p @ p <= 1:
            points.append(p * semi_axes)
    centre = box_size // 2
    # splat each atom trilinearly onto the grid, then blur: fast at any box size
    coords = np.asarray(points) + centre
    weights = rng.uniform(0.6, 1.4, size=len(coords))
    volume = np.zeros((box_size,) * 3, dtype=np.float64)
    base = np.floor(coords).astype(np.int64)
    frac = coords - base
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        w = np.prod(np.where(offset == 1, frac, 1.0 - frac), axis=1) * weights
        idx = np.clip(base + offset, 0, box_size - 1)
        np.add.at(volume, (idx[:, 0], idx[:, 1], idx[:, 2]), w)
    volume = gaussian_filter(volume, sigma_voxels, mode="constant")
    return volume.astype(np.float32)


def gaussian_lowpass(volume: np.ndarray, *, sigma_voxels: float) -> np.ndarray:
    """Real-space Gaussian blur (a quick low-pass for initial references); returns a new array."""
    return gaussian_filter(np.asarray(volume, dtype=np.float64), sigma_voxels).astype(np.float32)
