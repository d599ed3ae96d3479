"""Soft spherical masks with raised-cosine edges, centred at voxel n//2 (real space)."""

from __future__ import annotations

import numpy as np

from cryoprior.fourier.grids import real_space_radius

__all__ = ["soft_mask_outside_sphere", "soft_sphere"]


def soft_sphere(
    n: int, *, radius_voxels: float, edge_width_voxels: float, ndim: int = 3
) -> np.ndarray:
    """Sphere of 1 with a raised-cosine edge falling to 0, centred at voxel n//2.

    ``m(r) = 1`` for r <= R, ``0.5 + 0.5 cos(pi (r - R) / w)`` for R < r < R + w and 0 for
    r >= R + w, with r the distance from the centre in voxels, R = ``radius_voxels`` and
    w = ``edge_width_voxels``: the complement of the background weight of RELION's
    ``softMaskOutsideMap(vol, radius, cosine_width)``. ``edge_width_voxels=0`` gives a hard
    sphere (1 for r <= R).

    Parameters
    ----------
    n: box size.
    radius_voxels: radius of the region equal to 1 (>= 0).
    edge_width_voxels: width of the cosine edge (>= 0).
    ndim: 3 for volumes, 2 for images (a disc).

    Returns
    -------
    float64 array, real space, shape (n,)*ndim, values in [0, 1].

    Example
    -------
    >>> soft_sphere(16, radius_voxels=3, edge_width_voxels=2)[8, 8, 8:14]
    array([1. , 1. , 1. , 1. , 0.5, 0. ])
    """
    if radius_voxels < 0 or edge_width_voxels < 0:
        raise ValueError("radius_voxels and edge_width_voxels must be >= 0")
    r = real_space_radius(n, ndim=ndim)
    if edge_width_voxels == 0:
        return (r <= radius_voxels).astype(np.float64)
    t = np.clip((r - float(radius_voxels)) / float(edge_width_voxels), 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * t)


def soft_mask_outside_sphere(
    volume,
    *,
    radius_voxels: float,
    edge_width_voxels: float,
    fill_value: float | None = None,
) -> np.ndarray:
    """RELION's ``softMaskOutsideMap``: blend a map into a constant outside a soft sphere.

    ``out = m * volume + (1 - m) * b`` with ``m = soft_sphere(...)``. The background ``b`` is
    ``fill_value``, or when None (RELION's behaviour) the average of the map weighted by
    ``1 - m`` (the voxels on and outside the edge), per map of a batch.

    Parameters
    ----------
    volume: real array, real space, shape (..., n, n, n) - cubic, leading batch dimensions
        allowed (each map gets its own background).
    radius_voxels: radius of the untouched sphere, in voxels, centred at n//2.
    edge_width_voxels: width of the raised-cosine edge, in voxels (RELION's cosine_width,
        3 in most of its programs).
    fill_value: background value; None for RELION's weighted mean of the outer region.

    Returns
    -------
    float64 array, real space, same shape as ``volume``. The input is not modified.

    Example
    -------
    >>> v = np.full((16, 16, 16), 2.0)
    >>> out = soft_mask_outside_sphere(v, radius_voxels=4, edge_width_voxels=3, fill_value=0.0)
    >>> float(out[8, 8, 8]), float(out[0, 0, 0])
    (2.0, 0.0)
    """
    vol = np.asarray(volume, dtype=np.float64)
    n = vol.shape[-1]
    if vol.ndim < 3 or vol.shape[-3:] != (n, n, n):
        raise ValueError(f"volume must end in a cubic (n, n, n) box, not {vol.shape}")
    mask = soft_sphere(n, radius_voxels=radius_voxels, edge_width_voxels=edge_width_voxels)
    weight_bg = 1.0 - mask
    if fill_value is None:
        total = weight_bg.sum()
        if total == 0:
            raise ValueError("the sphere fills the box: no background to average")
        background = np.tensordot(vol, weight_bg, axes=3) / total
        background = np.asarray(background)[..., None, None, None]
    else:
        background = float(fill_value)
    return mask * vol + weight_bg * background
