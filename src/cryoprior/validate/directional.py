"""Directional resolution: conical FSC between half-maps (anisotropy of the resolution).

The FSC in direction d uses the Fourier voxels inside a double cone of half-angle theta around
d (``|k . d| >= |k| cos theta``), shell by shell; its 0.143 crossing is the resolution in that
direction. Preferred orientations starve the directions perpendicular to the over-represented
views, which shows up as a spread of these resolutions (as in 3DFSC, Tan et al., Nat. Methods
14:793, 2017, whose cones are 20 degrees wide by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoprior.conventions import rfft_frequency_indices
from cryoprior.fourier.correlation import fourier_correlation, shell_sums
from cryoprior.validate.fsc import resolution_at_threshold

__all__ = ["DirectionalResolution", "conical_fsc", "hemisphere_directions"]

_DIRECTIONS_PER_BATCH = 8  # cone masks held at once (8 bytes-per-voxel-of-the-map's worth)


def hemisphere_directions(n_directions: int) -> np.ndarray:
    """Nearly even unit vectors on the upper hemisphere (z >= 0), a Fibonacci lattice.

    FSC is the same in directions d and -d, so a hemisphere covers every direction.

    Returns
    -------
    float64 array of shape (n_directions, 3), components (x, y, z).

    Example
    -------
    >>> d = hemisphere_directions(50)
    >>> d.shape, bool(np.allclose(np.linalg.norm(d, axis=1), 1.0)), bool((d[:, 2] >= 0).all())
    ((50, 3), True, True)
    """
    if n_directions < 1:
        raise ValueError("n_directions must be >= 1")
    i = np.arange(n_directions, dtype=np.float64)
    z = 1.0 - (i + 0.5) / n_directions
    radius = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([radius * np.cos(phi), radius * np.sin(phi), z], axis=-1)


@dataclass(frozen=True)
class DirectionalResolution:
    """Conical FSCs and the resolution in each direction.

    Attributes
    ----------
    directions: (n_dir, 3) unit vectors (x, y, z) in the map's frame.
    fsc: (n_dir, n//2+1) conical FSC curves.
    resolution_angstrom: (n_dir,) resolution at ``threshold`` (interpolated) per direction.
    cone_half_angle_degrees: half-angle of the cones.
    threshold: the FSC threshold used.
    box_size, voxel_size_angstrom: the maps' grid.
    """

    directions: np.ndarray
    fsc: np.ndarray
    resolution_angstrom: np.ndarray
    cone_half_angle_degrees: float
    threshold: float
    box_size: int
    voxel_size_angstrom: float

    @property
    def best_angstrom(self) -> float:
        """Finest directional resolution (Angstrom)."""
        return float(self.resolution_angstrom.min())

    @property
    def worst_angstrom(self) -> float:
        """Coarsest directional resolution (Angstrom)."""
        return float(self.resolution_angstrom.max())

    @property
    def anisotropy(self) -> float:
        """Worst over best directional resolution (1 for an isotropic map)."""
        return self.worst_angstrom / self.best_angstrom

    @property
    def tilt_degrees(self) -> np.ndarray:
        """(n_dir,) polar angle of each direction from z."""
        return np.rad2deg(np.arccos(np.clip(self.directions[:, 2], -1.0, 1.0)))

    @property
    def rot_degrees(self) -> np.ndarray:
        """(n_dir,) azimuth of each direction."""
        return np.rad2deg(np.arctan2(self.directions[:, 1], self.directions[:, 0]))

    def to_dict(self) -> dict:
        """Summary as a JSON-ready dict (best, worst, median and per-direction resolutions)."""
        return {
            "threshold": self.threshold,
            "cone_half_angle_degrees": self.cone_half_angle_degrees,
            "best_angstrom": self.best_angstrom,
            "worst_angstrom": self.worst_angstrom,
            "median_angstrom": float(np.median(self.resolution_angstrom)),
            "anisotropy": self.anisotropy,
            "directions_rot_degrees": self.rot_degrees.tolist(),
            "directions_tilt_degrees": self.tilt_degrees.tolist(),
            "resolution_angstrom": self.resolution_angstrom.tolist(),
        }


def conical_fsc(
    half_map_1,
    half_map_2,
    *,
    mask=None,
    voxel_size_angstrom: float,
    directions=None,
    n_directions: int = 64,
    cone_half_angle_degrees: float = 20.0,
    threshold: float = 0.143,
    min_voxels_per_shell: int = 10,
) -> DirectionalResolution:
    """FSC of two half-maps in double cones around a set of directions.

    Parameters
    ----------
    half_map_1, half_map_2: real arrays, real space, shape (n, n, n).
    mask: optional real array, real space, shape (n, n, n), multiplied into both maps.
    voxel_size_angstrom: voxel size.
    directions: optional (n_dir, 3) array of directions (x, y, z) in the map's frame (need not
        be normalised); default :func:`hemisphere_directions` (``n_directions``).
    n_directions: number of default directions.
    cone_half_angle_degrees: half-angle of each cone (0 < angle <= 90; 90 gives the plain FSC).
    threshold: FSC threshold for the directional resolutions.
    min_voxels_per_shell: shells whose cone holds fewer Fourier voxels (the lowest shells:
        a 20-degree double cone holds about 6% of a shell) take the full-shell FSC instead.

    Returns
    -------
    :class:`DirectionalResolution`. Inputs are not modified.

    Notes
    -----
    No phase-randomisation correction is applied; use a soft mask with a wide edge.
    """
    h1 = np.asarray(half_map_1, dtype=np.float64)
    h2 = np.asarray(half_map_2, dtype=np.float64)
    if h1.shape != h2.shape or h1.ndim != 3 or len(set(h1.shape)) != 1:
        raise ValueError(f"half-maps must be (n, n, n) of one shape, not {h1.shape}, {h2.shape}")
    if not 0 < cone_half_angle_degrees <= 90:
        raise ValueError("cone_half_angle_degrees must be in (0, 90]")
    n = h1.shape[0]
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        h1, h2 = h1 * m, h2 * m
    dirs = hemisphere_directions(n_directions) if directions is None else np.asarray(directions)
    dirs = np.atleast_2d(dirs).astype(np.float64)
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    f1 = scipy.fft.rfftn(h1)
    f2 = scipy.fft.rfftn(h2)
    n_shells = n // 2 + 1
    # (x, y, z) components of k over |k| for every rfft voxel; the origin belongs to every cone.
    kz, ky, kx = np.broadcast_arrays(*rfft_frequency_indices(n))
    k_xyz = np.stack([kx, ky, kz], axis=-1).astype(np.float64)
    norm = np.linalg.norm(k_xyz, axis=-1)
    origin = norm == 0
    unit = (k_xyz / np.where(origin, 1.0, norm)[..., None]).astype(np.float32)
    cos_limit = np.cos(np.deg2rad(cone_half_angle_degrees)) - 1e-9

    full_fsc = fourier_correlation(f1, f2, n=n)
    curves = np.zeros((dirs.shape[0], n_shells))
    for start in range(0, dirs.shape[0], _DIRECTIONS_PER_BATCH):
        d = dirs[start : start + _DIRECTIONS_PER_BATCH].astype(np.float32)
        cones = (np.abs(unit @ d.T) >= cos_limit) | origin[..., None]
        cones = np.moveaxis(cones, -1, 0)  # (batch, n, n, n//2+1)
        fsc = fourier_correlation(f1, f2, n=n, fft_mask=cones)
        sparse = shell_sums(cones, n=n) < min_voxels_per_shell
        curves[start : start + len(d)] = np.where(sparse, full_fsc, fsc)
    resolutions = np.array(
        [
            resolution_at_threshold(
                c, threshold=threshold, box_size=n, voxel_size_angstrom=voxel_size_angstrom
            )
            for c in curves
        ]
    )
    return DirectionalResolution(
        directions=dirs,
        fsc=curves,
        resolution_angstrom=resolutions,
        cone_half_angle_degrees=float(cone_half_angle_degrees),
        threshold=float(threshold),
        box_size=n,
        voxel_size_angstrom=float(voxel_size_angstrom),
    )
