"""Pose errors of refined particles against the ground truth, and the distribution of views.

The ground truth is that of a simulation. Both sets of poses are :class:`cryoprior.poses.Poses`
with image names (the key that matches the particles).

Orientations are RELION's ZYZ Euler angles (:mod:`cryoprior.conventions`): the matrix
``A = euler_to_matrix(rot, tilt, psi)`` rotates the map into the image frame and the particle
is its projection along z. A map with point group G (matrices L acting like A, see
:mod:`cryoprior.validate.symmetry`) looks the same from A and from A @ L, so the angular error
of a particle is the smallest rotation angle between A_refined and any A_true @ L.

The viewing direction of A - the direction, in the map's frame, along which the projection is
taken - is ``A.T @ (0, 0, 1)`` (the third row of A), with polar angle ``tilt`` and azimuth
``rot``.

Refined and true poses are compared in the frame of the true map: the refinement must have
started from a reference in that frame (as the paper's simulations do: the initial map is the
reference), otherwise a global rotation or shift between the two maps adds to every error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryoprior.poses import Poses
from cryoprior.validate.symmetry import symmetry_operators

__all__ = [
    "PoseErrors",
    "ViewDistribution",
    "attraction",
    "match_poses",
    "pose_errors",
    "rotation_angle_degrees",
    "view_directions",
    "view_distribution",
]

logger = logging.getLogger(__name__)


def match_poses(refined: Poses, truth: Poses) -> tuple[Poses, Poses]:
    """Poses of both sets for the particles they share, matched by image name.

    Returns the two sets restricted to the common image names, in the refined set's order.
    Poses without image names, or duplicate names in the truth, raise ValueError.
    """
    if refined.image_names is None or truth.image_names is None:
        raise ValueError("poses without image names (rlnImageName) cannot be matched")
    truth_index = pd.Index(truth.image_names)
    if truth_index.has_duplicates:
        raise ValueError("the ground-truth table has duplicate image names")
    position = truth_index.get_indexer(refined.image_names)
    found = position >= 0
    if not found.all():
        logger.warning("%d refined particles are not in the ground truth", int((~found).sum()))
    return refined.take(np.nonzero(found)[0]), truth.take(position[found])


def rotation_angle_degrees(matrix_1, matrix_2) -> np.ndarray:
    """Angle of the rotation taking ``matrix_2`` to ``matrix_1``: ``arccos((tr(M1^T M2) - 1)/2)``.

    Parameters
    ----------
    matrix_1, matrix_2: real arrays of shape (..., 3, 3), rotation matrices, broadcast.

    Returns
    -------
    float64 array of shape (...), degrees in [0, 180].

    Example
    -------
    >>> from cryoprior.conventions import euler_to_matrix
    >>> round(float(rotation_angle_degrees(euler_to_matrix(10, 20, 30), euler_to_matrix(10, 20, 45))), 6)
    15.0
    """
    a = np.asarray(matrix_1, dtype=np.float64)
    b = np.asarray(matrix_2, dtype=np.float64)
    trace = np.einsum("...ij,...ij->...", a, b)
    return np.rad2deg(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def view_directions(rot_degrees, tilt_degrees) -> np.ndarray:
    """Return the viewing directions (unit vectors (x, y, z) in the map's frame) of angles.

    ``(cos rot sin tilt, sin rot sin tilt, cos tilt)``, the third row of
    ``euler_to_matrix(rot, tilt, psi)`` (independent of psi).

    Returns
    -------
    float64 array of shape (..., 3).
    """
    rot = np.deg2rad(np.asarray(rot_degrees, dtype=np.float64))
    tilt = np.deg2rad(np.asarray(tilt_degrees, dtype=np.float64))
    rot, tilt = np.broadcast_arrays(rot, tilt)
    return np.stack([np.cos(rot) * np.sin(tilt), np.sin(rot) * np.sin(tilt), np.cos(tilt)], -1)


@dataclass(frozen=True)
class PoseErrors:
    """Errors of refined poses against the truth, per particle and summarised.

    Attributes
    ----------
    image_names: (n,) the particles compared.
    angular_error_degrees: (n,) smallest rotation angle between the refined orientation and
        the symmetry-equivalent true ones.
    direction_error_degrees: (n,) angle between the refined viewing direction and the true one
        under the same symmetry operator.
    shift_error_angstrom: (n,) in-plane distance between refined and true origins.
    symmetry: the point group used.
    """

    image_names: np.ndarray
    angular_error_degrees: np.ndarray
    direction_error_degrees: np.ndarray
    shift_error_angstrom: np.ndarray
    symmetry: str

    def summary(self) -> dict:
        """Median, mean, RMS and 90th percentile of each error, and the particle count."""
        out: dict = {"n_particles": int(self.angular_error_degrees.size), "symmetry": self.symmetry}
        for name in ("angular_error_degrees", "direction_error_degrees", "shift_error_angstrom"):
            values = getattr(self, name)
            if values.size == 0:
                out[name] = None
                continue
            out[name] = {
                "median": float(np.median(values)),
                "mean": float(values.mean()),
                "rms": float(np.sqrt(np.mean(values**2))),
                "p90": float(np.percentile(values, 90)),
            }
        return out


def pose_errors(refined: Poses, truth: Poses, *, symmetry: str = "C1") -> PoseErrors:
    """Angular, viewing-direction and shift errors of refined poses against the truth.

    Particles are matched by image name (:func:`match_poses`). For each particle the symmetry
    operator L minimising the angle between ``A_refined`` and ``A_true @ L`` is chosen; the
    angular error is that angle, the direction error the angle between the refined viewing
    direction and the one of ``A_true @ L``. The shift error is
    ``|origin_refined - origin_true|`` in the image plane (symmetry axes pass through the
    origin, so shifts are not affected by L).

    Parameters
    ----------
    refined, truth: poses with image names (e.g. :func:`cryoprior.io.relion.poses_from_star`
        of the refinement's ``_data.star`` and of the simulation's ground-truth STAR).
    symmetry: the point group of the refinement (RELION's name, see
        :func:`cryoprior.validate.symmetry.symmetry_operators`).

    Returns
    -------
    :class:`PoseErrors`.
    """
    refined, truth = match_poses(refined, truth)
    ops = symmetry_operators(symmetry)
    a_ref = refined.matrices()
    a_true = truth.matrices()
    candidates = np.einsum("nij,mjk->nmik", a_true, ops)  # (n, m, 3, 3): A_true @ L
    angles = rotation_angle_degrees(a_ref[:, None], candidates)  # (n, m)
    best = np.argmin(angles, axis=1) if len(refined) else np.zeros(0, dtype=np.int64)
    rows = np.arange(len(refined))
    angular = angles[rows, best] if len(refined) else np.zeros(0)
    best_true = candidates[rows, best]
    d_ref = a_ref[:, 2, :]
    d_true = best_true[:, 2, :]
    cos = np.clip(np.einsum("ni,ni->n", d_ref, d_true), -1.0, 1.0)
    direction = np.rad2deg(np.arccos(cos))
    shift = np.hypot(
        np.asarray(refined.origin_x_angstrom) - np.asarray(truth.origin_x_angstrom),
        np.asarray(refined.origin_y_angstrom) - np.asarray(truth.origin_y_angstrom),
    )
    return PoseErrors(np.asarray(refined.image_names), angular, direction, shift, symmetry)


@dataclass(frozen=True)
class ViewDistribution:
    """Histogram of viewing directions on equal-area bins of the sphere.

    Bins are regular in rot (azimuth, -180..180 degrees) and in cos(tilt) (1..-1), so every
    bin covers the same solid angle.

    Attributes
    ----------
    counts: (n_tilt_bins, n_rot_bins) int64 particles per bin.
    rot_edges_degrees: (n_rot_bins+1,) azimuth edges.
    cos_tilt_edges: (n_tilt_bins+1,) edges in cos(tilt), decreasing from 1 to -1.
    """

    counts: np.ndarray
    rot_edges_degrees: np.ndarray
    cos_tilt_edges: np.ndarray

    @property
    def tilt_edges_degrees(self) -> np.ndarray:
        """(n_tilt_bins+1,) tilt edges, increasing from 0 to 180."""
        return np.rad2deg(np.arccos(np.clip(self.cos_tilt_edges, -1.0, 1.0)))

    @property
    def n_particles(self) -> int:
        """Number of particles counted in all bins."""
        return int(self.counts.sum())

    @property
    def occupied_fraction(self) -> float:
        """Fraction of bins with at least one particle."""
        return float((self.counts > 0).mean())

    @property
    def max_over_mean(self) -> float:
        """Most populated bin over the mean bin count (1 for a perfectly even spread)."""
        mean = self.counts.mean()
        return float(self.counts.max() / mean) if mean > 0 else 0.0

    def density(self, rot_degrees, tilt_degrees) -> np.ndarray:
        """Fraction of particles per bin at the given directions (0 outside the data)."""
        i, j = _bin_indices(rot_degrees, tilt_degrees, self.counts.shape[1], self.counts.shape[0])
        total = max(self.n_particles, 1)
        return self.counts[i, j] / total

    def to_dict(self) -> dict:
        """Summary as a JSON-ready dict (counts, bin edges and the spread statistics)."""
        return {
            "n_particles": self.n_particles,
            "occupied_fraction": self.occupied_fraction,
            "max_over_mean": self.max_over_mean,
            "counts": self.counts.tolist(),
            "rot_edges_degrees": self.rot_edges_degrees.tolist(),
            "tilt_edges_degrees": self.tilt_edges_degrees.tolist(),
        }


def _bin_indices(rot_degrees, tilt_degrees, n_rot_bins: int, n_tilt_bins: int):
    rot = np.mod(np.asarray(rot_degrees, dtype=np.float64) + 180.0, 360.0)
    cos_tilt = np.cos(np.deg2rad(np.asarray(tilt_degrees, dtype=np.float64)))
    j = np.clip((rot / 360.0 * n_rot_bins).astype(np.int64), 0, n_rot_bins - 1)
    i = np.clip(((1.0 - cos_tilt) / 2.0 * n_tilt_bins).astype(np.int64), 0, n_tilt_bins - 1)
    return i, j


def view_distribution(
    rot_degrees, tilt_degrees, *, n_rot_bins: int = 36, n_tilt_bins: int = 18
) -> ViewDistribution:
    """Histogram of viewing directions (rot, tilt) on equal-area bins.

    Parameters
    ----------
    rot_degrees, tilt_degrees: (n,) RELION angles of the particles.
    n_rot_bins: bins in azimuth over 360 degrees.
    n_tilt_bins: bins in cos(tilt) over [-1, 1].

    Returns
    -------
    :class:`ViewDistribution`.

    Example
    -------
    >>> d = view_distribution([0.0, 90.0, 90.0], [10.0, 100.0, 100.0], n_rot_bins=4, n_tilt_bins=2)
    >>> d.counts.tolist()
    [[0, 0, 1, 0], [0, 0, 0, 2]]
    """
    rot = np.asarray(rot_degrees, dtype=np.float64).ravel()
    tilt = np.asarray(tilt_degrees, dtype=np.float64).ravel()
    if rot.shape != tilt.shape:
        raise ValueError("rot_degrees and tilt_degrees differ in length")
    i, j = _bin_indices(rot, tilt, n_rot_bins, n_tilt_bins)
    counts = np.zeros((n_tilt_bins, n_rot_bins), dtype=np.int64)
    np.add.at(counts, (i, j), 1)
    return ViewDistribution(
        counts=counts,
        rot_edges_degrees=np.linspace(-180.0, 180.0, n_rot_bins + 1),
        cos_tilt_edges=np.linspace(1.0, -1.0, n_tilt_bins + 1),
    )


def attraction(
    refined: Poses,
    truth: Poses,
    *,
    symmetry: str = "C1",
    min_direction_error_degrees: float = 10.0,
    n_rot_bins: int = 36,
    n_tilt_bins: int = 18,
) -> dict:
    """How misassigned views move: towards over-represented directions or not.

    For the particles whose viewing direction is wrong by more than
    ``min_direction_error_degrees``, compares the density of the *true* view distribution
    (equal-area histogram) at the refined direction - brought into the same symmetry copy as
    the true one - with the density at the true direction. ``towards_denser_fraction`` near 1
    means errors pull particles towards the crowded views (the "attraction" of a preferred
    orientation); near 0.5 or below means no such bias. ``total_variation`` is half the L1
    distance between the refined and true view histograms (0 identical, 1 disjoint).

    Parameters
    ----------
    refined, truth: poses with image names, matched by name.
    symmetry: point group of the refinement.
    min_direction_error_degrees: direction error above which a particle counts as misassigned.
    n_rot_bins, n_tilt_bins: bins of the equal-area histogram of the true views (see
        :func:`view_distribution`).

    Returns
    -------
    dict with ``n_misassigned``, ``towards_denser_fraction`` (None when no particle is
    misassigned), ``mean_density_ratio`` (mean of refined/true density over misassigned
    particles) and ``total_variation``.
    """
    refined, truth = match_poses(refined, truth)
    ops = symmetry_operators(symmetry)
    true_hist = view_distribution(
        truth.rot_degrees, truth.tilt_degrees, n_rot_bins=n_rot_bins, n_tilt_bins=n_tilt_bins
    )
    refined_hist = view_distribution(
        refined.rot_degrees, refined.tilt_degrees, n_rot_bins=n_rot_bins, n_tilt_bins=n_tilt_bins
    )
    p = true_hist.counts / max(true_hist.n_particles, 1)
    q = refined_hist.counts / max(refined_hist.n_particles, 1)
    total_variation = float(0.5 * np.abs(p - q).sum())
    if len(refined) == 0:
        return {
            "n_misassigned": 0,
            "towards_denser_fraction": None,
            "mean_density_ratio": None,
            "total_variation": total_variation,
        }
    # Bring each refined orientation into the symmetry copy closest to the true one:
    # A_ref @ L^T is as good as A_ref, and its direction is compared with A_true's.
    a_ref = refined.matrices()
    a_true = truth.matrices()
    candidates = np.einsum("nij,mkj->nmik", a_ref, ops)  # A_ref @ L^T
    angles = rotation_angle_degrees(candidates, a_true[:, None])
    best = candidates[np.arange(len(refined)), np.argmin(angles, axis=1)]
    d_ref = best[:, 2, :]
    d_true = a_true[:, 2, :]
    error = np.rad2deg(np.arccos(np.clip(np.einsum("ni,ni->n", d_ref, d_true), -1.0, 1.0)))
    wrong = error > min_direction_error_degrees
    if not wrong.any():
        return {
            "n_misassigned": 0,
            "towards_denser_fraction": None,
            "mean_density_ratio": None,
            "total_variation": total_variation,
        }
    rot_ref = np.rad2deg(np.arctan2(d_ref[wrong, 1], d_ref[wrong, 0]))
    tilt_ref = np.rad2deg(np.arccos(np.clip(d_ref[wrong, 2], -1.0, 1.0)))
    dens_ref = true_hist.density(rot_ref, tilt_ref)
    dens_true = true_hist.density(truth.rot_degrees[wrong], truth.tilt_degrees[wrong])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(dens_true > 0, dens_ref / dens_true, np.nan)
    return {
        "n_misassigned": int(wrong.sum()),
        "towards_denser_fraction": float(np.mean(dens_ref > dens_true)),
        "mean_density_ratio": float(np.nanmean(ratio)) if np.isfinite(ratio).any() else None,
        "total_variation": total_variation,
    }
