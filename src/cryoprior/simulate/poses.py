"""Orientation sets for simulations: uniform, an even grid, an over-represented tilt cone; shifts.

The poses are :class:`cryoprior.poses.Poses` (RELION's ZYZ Euler angles in degrees, origins
in Angstrom; reading them from a STAR file is :func:`cryoprior.io.relion.poses_from_star`).
The viewing direction of a pose is ``(cos rot sin tilt, sin rot sin tilt, cos tilt)``, so
directions uniform on the sphere have ``cos(tilt)`` uniform in [-1, 1].
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from cryoprior.poses import Poses, concatenate_poses

__all__ = [
    "cone_fraction",
    "grid_poses",
    "over_represent_cone",
    "uniform_poses",
    "with_random_shifts",
]

logger = logging.getLogger(__name__)


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def uniform_poses(n: int, *, seed: int | np.random.Generator) -> Poses:
    """Draw n orientations uniform over SO(3): directions uniform on the sphere, psi uniform.

    rot and psi are uniform in [-180, 180), ``cos(tilt)`` uniform in [-1, 1]; origins zero.

    Example
    -------
    >>> len(uniform_poses(5, seed=0))
    5
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    rng = _rng(seed)
    rot = rng.uniform(-180.0, 180.0, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    return Poses(rot, tilt, psi)


def grid_poses(
    angular_step_degrees: float,
    *,
    psi_degrees: float | None = None,
    seed: int | np.random.Generator = 0,
) -> Poses:
    """Directions evenly spread over the whole sphere at a given angular step.

    Rings of constant tilt at 0, step, 2 step, ..., 180 degrees; the ring at tilt t carries
    ``max(1, ROUND(360 sin(t) / step))`` directions equally spaced in rot, starting at rot 0,
    so that neighbours are about ``step`` apart everywhere. At 1.5 degrees this gives 18,338
    directions (the paper's Xmipp sampling at 1.5 degrees gave 18,309).

    Parameters
    ----------
    angular_step_degrees: the step (> 0, <= 180).
    psi_degrees: in-plane angle of every image; None draws psi uniformly in [-180, 180)
        from ``seed``.
    seed: seed or generator for psi.

    Example
    -------
    >>> len(grid_poses(1.5))
    18338
    """
    step = float(angular_step_degrees)
    if not 0 < step <= 180:
        raise ValueError(f"angular_step_degrees must be in (0, 180], not {step}")
    n_rings = int(np.floor(180.0 / step + 1e-9)) + 1
    tilts = np.minimum(np.arange(n_rings) * step, 180.0)
    rot_list, tilt_list = [], []
    for tilt in tilts:
        count = max(1, int(np.floor(360.0 * np.sin(np.radians(tilt)) / step + 0.5)))
        rot_list.append(np.arange(count) * (360.0 / count))
        tilt_list.append(np.full(count, tilt))
    rot = np.concatenate(rot_list)
    rot = np.where(rot >= 180.0, rot - 360.0, rot)
    tilt = np.concatenate(tilt_list)
    if psi_degrees is None:
        psi = _rng(seed).uniform(-180.0, 180.0, rot.size)
    else:
        psi = np.full(rot.size, float(psi_degrees))
    return Poses(rot, tilt, psi)


def cone_fraction(tilt_min_degrees: float, tilt_max_degrees: float) -> float:
    """Fraction of the sphere's directions with tilt in [tilt_min, tilt_max].

    ``(cos tilt_min - cos tilt_max) / 2``.

    Example
    -------
    >>> round(cone_fraction(0.0, 40.0), 4)
    0.117
    """
    return float(np.cos(np.radians(tilt_min_degrees)) - np.cos(np.radians(tilt_max_degrees))) / 2.0


def over_represent_cone(
    poses: Poses,
    *,
    factor: float,
    tilt_min_degrees: float = 0.0,
    tilt_max_degrees: float = 40.0,
    seed: int | np.random.Generator,
) -> Poses:
    """Add views inside a tilt cone so that its directions are ``factor`` times as dense.

    The paper's anisotropic proteasome set: "extra projections for tilt 0-40 degrees", 24,359
    images in all; ``grid_poses(1.5)`` (18,338, of which 2,120 in the cone) with factor 3.8401
    gives 24,359. The number added is ``ROUND((factor - 1) * m)``, m the number of ``poses`` with tilt in
    [tilt_min, tilt_max]; they are drawn uniformly in the cone (``cos tilt`` uniform), with rot
    and psi uniform, origins zero, and appended after ``poses``.

    Parameters
    ----------
    poses: the base set (e.g. :func:`grid_poses` or :func:`uniform_poses`).
    factor: over-representation (>= 1; 1 adds nothing).
    tilt_min_degrees, tilt_max_degrees: the cone, 0 <= min < max <= 180.
    seed: seed or generator for the extra views.

    Returns
    -------
    Poses with ``len(poses) + n_extra`` entries.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, not {factor}")
    if not 0.0 <= tilt_min_degrees < tilt_max_degrees <= 180.0:
        raise ValueError("need 0 <= tilt_min_degrees < tilt_max_degrees <= 180")
    inside = (poses.tilt_degrees >= tilt_min_degrees) & (poses.tilt_degrees <= tilt_max_degrees)
    n_extra = int(np.floor((factor - 1.0) * int(inside.sum()) + 0.5))
    rng = _rng(seed)
    cos_low, cos_high = np.cos(np.radians(tilt_max_degrees)), np.cos(np.radians(tilt_min_degrees))
    extra = Poses(
        rng.uniform(-180.0, 180.0, n_extra),
        np.degrees(np.arccos(rng.uniform(cos_low, cos_high, n_extra))),
        rng.uniform(-180.0, 180.0, n_extra),
    )
    logger.debug(
        "added %d views in the tilt cone %g-%g", n_extra, tilt_min_degrees, tilt_max_degrees
    )
    return concatenate_poses([poses, extra])


def with_random_shifts(
    poses: Poses, *, sd_angstrom: float, seed: int | np.random.Generator
) -> Poses:
    """Return the same orientations with origins drawn from N(0, sd_angstrom^2) in x and y.

    The shifts are added to the existing origins.
    """
    if sd_angstrom < 0:
        raise ValueError(f"sd_angstrom must be >= 0, not {sd_angstrom}")
    rng = _rng(seed)
    n = len(poses)
    dx = rng.normal(0.0, sd_angstrom, n) if sd_angstrom > 0 else np.zeros(n)
    dy = rng.normal(0.0, sd_angstrom, n) if sd_angstrom > 0 else np.zeros(n)
    return replace(
        poses,
        origin_x_angstrom=np.asarray(poses.origin_x_angstrom) + dx,
        origin_y_angstrom=np.asarray(poses.origin_y_angstrom) + dy,
    )
