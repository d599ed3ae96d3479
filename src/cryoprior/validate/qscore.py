"""Q-score: how well each atom of a model is resolved in a map.

Q-score (Pintilie et al., Nat. Methods 17:328, 2020), following the published definition and
the reference implementation (MapQ, ``qscores.py``):

* for each atom, map values are taken at the atom (r = 0, counted ``points_per_shell`` times)
  and on spheres of radius r = 0.1, 0.2, ... 2.0 Angstrom around it: ``points_per_shell``
  (8) points spread on the sphere by the Saff-Kuijlaars spiral; a point is discarded when
  another atom lies within 0.9 r of it (closer to another atom than to this one, with MapQ's
  10% margin); when fewer than 8 points survive, the spiral is redrawn with 8 + 2i points
  (i = 1..49) and all surviving points of the first draw with at least 8 are kept; if no draw
  reaches 8, the survivors of the last draw are kept (the published pseudocode; MapQ's
  program drops the shell in that case);
* map values are interpolated trilinearly (as Chimera's ``interpolated_values``);
* the reference profile is a Gaussian ``A exp(-r^2 / (2 sigma^2)) + B`` with sigma = 0.6 A,
  ``A = highV - lowV``, ``B = lowV``, ``highV = min(mean + 10 SD, max)``,
  ``lowV = max(mean - SD, min)`` of the whole map;
* the atom's Q-score is the correlation about the mean (Pearson) of the map values with the
  reference values over all its points. (A and B only shift and scale the reference, so the
  Pearson correlation does not depend on them; they are kept for fidelity.)

Residue scores are the mean of their atoms' scores and the model's score the mean over atoms.
Hydrogens should be left out of the model (MapQ skips them).

The published expectation for proteins at sigma 0.6 (MapQ's ``eQ_protein``) is
``Q = -0.1775 * resolution + 1.1192`` (:func:`expected_q_score`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import scipy.spatial

__all__ = [
    "QScoreResult",
    "accepted_points",
    "expected_q_score",
    "neighbour_offsets",
    "q_scores",
    "reference_gaussian_parameters",
    "spiral_points",
]

logger = logging.getLogger(__name__)


def expected_q_score(resolution_angstrom) -> np.ndarray | float:
    """Return the published expected mean Q-score (sigma 0.6 A) of a protein model at a resolution.

    ``-0.1775 * resolution + 1.1192`` (Pintilie et al. 2020; MapQ ``eQ_protein``), fitted on
    EMDB maps of 1.5-4.5 A.

    Example
    -------
    >>> round(expected_q_score(3.0), 4)
    0.5867
    """
    value = -0.1775 * np.asarray(resolution_angstrom, dtype=np.float64) + 1.1192
    return float(value) if value.ndim == 0 else value


def spiral_points(n_points: int) -> np.ndarray:
    """Saff-Kuijlaars spiral: ``n_points`` nearly even unit vectors, as MapQ's ``SpherePts``.

    Point k (1-based) has ``h = -1 + 2 (k-1)/(N-1)``, polar angle ``acos(h)`` and azimuth
    ``theta_k = theta_{k-1} + 3.6 / sqrt(N (1 - h^2))`` (0 at both poles).

    Returns
    -------
    float64 array of shape (n_points, 3), components (x, y, z).

    Example
    -------
    >>> p = spiral_points(8)
    >>> p.shape, bool(np.allclose(np.linalg.norm(p, axis=1), 1.0))
    ((8, 3), True)
    """
    n = int(n_points)
    if n < 2:
        raise ValueError("n_points must be >= 2")
    h = -1.0 + 2.0 * np.arange(n) / (n - 1)
    phi = np.arccos(np.clip(h, -1.0, 1.0))
    theta = np.zeros(n)
    for k in range(1, n - 1):
        theta[k] = (theta[k - 1] + 3.6 / np.sqrt(n * (1.0 - h[k] ** 2))) % (2.0 * np.pi)
    return np.stack(
        [np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), np.cos(phi)], axis=-1
    )


def reference_gaussian_parameters(volume) -> tuple[float, float]:
    """MapQ's reference Gaussian height A and offset B from a map's values.

    ``highV = min(mean + 10 SD, max)``, ``lowV = max(mean - SD, min)``; ``A = highV - lowV``,
    ``B = lowV``.
    """
    v = np.asarray(volume, dtype=np.float64)
    mean, sd = float(v.mean()), float(v.std())
    high = min(mean + 10.0 * sd, float(v.max()))
    low = max(mean - sd, float(v.min()))
    return high - low, low


@dataclass(frozen=True)
class QScoreResult:
    """Q-scores of a model in a map.

    Attributes
    ----------
    per_atom: (n_atoms,) float64 Q-score of each atom (NaN where the map values around the
        atom are constant, e.g. outside the box).
    residue_labels: (n_residues,) labels of the residues, in order of first appearance.
    per_residue: (n_residues,) mean Q-score of each residue's atoms.
    mean: mean over atoms (NaN ignored).
    sigma_angstrom: the reference Gaussian's width.
    """

    per_atom: np.ndarray
    residue_labels: tuple[str, ...]
    per_residue: np.ndarray
    mean: float
    sigma_angstrom: float

    def to_dict(self, *, per_atom: bool = True) -> dict:
        """Summary as a JSON-ready dict (mean, per-residue scores; per-atom scores if asked)."""
        out = {
            "mean": self.mean,
            "sigma_angstrom": self.sigma_angstrom,
            "n_atoms": int(self.per_atom.size),
            "per_residue": {
                label: _json_float(v)
                for label, v in zip(self.residue_labels, self.per_residue, strict=True)
            },
        }
        if per_atom:
            out["per_atom"] = [_json_float(v) for v in self.per_atom]
        return out


def neighbour_offsets(
    tree: scipy.spatial.cKDTree, xyz: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors to the other atoms within ``radius`` of each atom, nearest first.

    Returns (offsets (n_atoms, k, 3), distances (n_atoms, k)), k the largest neighbour count;
    missing entries have distance inf (and offset 0), which never excludes a point.
    """
    n_atoms = xyz.shape[0]
    pairs = tree.query_pairs(radius, output_type="ndarray")
    if pairs.size == 0:
        return np.zeros((n_atoms, 0, 3)), np.zeros((n_atoms, 0))
    first = np.concatenate([pairs[:, 0], pairs[:, 1]])
    second = np.concatenate([pairs[:, 1], pairs[:, 0]])
    dist = np.linalg.norm(xyz[second] - xyz[first], axis=1)
    order = np.lexsort((dist, first))
    first, second, dist = first[order], second[order], dist[order]
    counts = np.bincount(first, minlength=n_atoms)
    k = int(counts.max())
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    column = np.arange(first.size) - start[first]
    offsets = np.zeros((n_atoms, k, 3))
    distances = np.full((n_atoms, k), np.inf)
    offsets[first, column] = xyz[second] - xyz[first]
    distances[first, column] = dist
    return offsets, distances


def accepted_points(offsets: np.ndarray, limits: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Which sphere points survive: (p, n_pts) bool, True where no neighbour excludes it.

    offsets (p, k, 3), limits (p, k), directions (n_pts, 3); point u of atom a is excluded
    when ``u . offset > limit`` for some neighbour. Computed in chunks of atoms.
    """
    p, k = limits.shape
    n_pts = directions.shape[0]
    out = np.ones((p, n_pts), dtype=bool)
    if k == 0 or p == 0:
        return out
    chunk = max(1, 4_000_000 // (n_pts * k))
    for start in range(0, p, chunk):
        proj = offsets[start : start + chunk] @ directions.T  # (chunk, k, n_pts)
        excess = (proj - limits[start : start + chunk, :, None]).max(axis=1)
        out[start : start + chunk] = excess <= 0.0
    return out


def _json_float(value) -> float | None:
    return None if not np.isfinite(value) else float(value)


def q_scores(
    volume,
    atom_positions_angstrom,
    *,
    voxel_size_angstrom: float,
    origin_angstrom=(0.0, 0.0, 0.0),
    residue_index=None,
    residue_labels=None,
    sigma_angstrom: float = 0.6,
    max_radius_angstrom: float = 2.0,
    radius_step_angstrom: float = 0.1,
    points_per_shell: int = 8,
    max_tries: int = 50,
) -> QScoreResult:
    """Q-score of every atom of a model in a map (see the module docstring for the method).

    Parameters
    ----------
    volume: real array, real space, shape (nz, ny, nx); voxel (k, j, i) is at
        ``origin_angstrom + (i, j, k) * voxel_size_angstrom`` (x, y, z).
    atom_positions_angstrom: (n_atoms, 3) real array of atom positions (x, y, z), Angstrom,
        hydrogens left out. Every atom takes part in the exclusion of points.
    voxel_size_angstrom: voxel size.
    origin_angstrom: (x, y, z) position of voxel (0, 0, 0).
    residue_index: optional (n_atoms,) int array, the residue of each atom (0-based, into
        ``residue_labels``); default: each atom its own residue.
    residue_labels: optional sequence of residue names (default ``"0"``, ``"1"``, ...).
    sigma_angstrom: width of the reference Gaussian (0.6 A in the 2020 paper).
    max_radius_angstrom, radius_step_angstrom: shells at step, 2 step, ... max radius.
    points_per_shell: points wanted on each shell (8).
    max_tries: spiral redraws per shell (50, adding 2 points each time).

    Returns
    -------
    :class:`QScoreResult`. Inputs are not modified.

    Example
    -------
    >>> import numpy as np
    >>> z, y, x = np.indices((24, 24, 24)) * 0.5
    >>> atoms = np.array([[5.0, 6.0, 6.0], [7.0, 6.0, 6.0]])
    >>> vol = sum(np.exp(-((x - a[0])**2 + (y - a[1])**2 + (z - a[2])**2) / (2 * 0.6**2))
    ...           for a in atoms)
    >>> q = q_scores(vol, atoms, voxel_size_angstrom=0.5)
    >>> bool(q.mean > 0.95)
    True
    """
    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D, not shape {vol.shape}")
    xyz = np.asarray(atom_positions_angstrom, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"atom_positions_angstrom must be (n_atoms, 3), not {xyz.shape}")
    n_atoms = xyz.shape[0]
    voxel = float(voxel_size_angstrom)
    origin = np.asarray(origin_angstrom, dtype=np.float64)
    tree = scipy.spatial.cKDTree(xyz)

    # The Pearson correlation ignores offsets and positive scales of either variable: map
    # values are taken relative to the map's mean and the reference as (g - B) / A, the bare
    # Gaussian, which keeps the running sums below well conditioned.
    map_mean = float(vol.mean())

    def values_at(points_xyz: np.ndarray) -> np.ndarray:
        coords = ((points_xyz - origin) / voxel)[:, ::-1].T  # (z, y, x) voxel coordinates
        values = scipy.ndimage.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0)
        return values - map_mean

    a_ref, _b_ref = reference_gaussian_parameters(vol)
    if a_ref <= 0:
        raise ValueError("the map is constant: no Q-score can be computed")
    n_radii = round(max_radius_angstrom / radius_step_angstrom)
    radii = np.arange(1, n_radii + 1) * float(radius_step_angstrom)

    # Running sums for the per-atom Pearson correlation of (map value u, reference value g).
    count = np.zeros(n_atoms)
    su, sg, suu, sgg, sug = (np.zeros(n_atoms) for _ in range(5))

    def accumulate(atom: np.ndarray, u: np.ndarray, g: float) -> None:
        w = np.bincount(atom, minlength=n_atoms).astype(np.float64)
        bu = np.bincount(atom, weights=u, minlength=n_atoms)
        buu = np.bincount(atom, weights=u * u, minlength=n_atoms)
        count[:] += w
        su[:] += bu
        suu[:] += buu
        sg[:] += w * g
        sgg[:] += w * g * g
        sug[:] += bu * g

    # r = 0: the value at the atom, counted points_per_shell times (as MapQ's np.repeat).
    u0 = values_at(xyz)
    g0 = 1.0  # (A exp(0) + B - B) / A
    all_atoms = np.arange(n_atoms)
    for _ in range(points_per_shell):
        accumulate(all_atoms, u0, g0)

    # Neighbours that can exclude points: another atom b excludes the point x_a + r u when
    # |x_a + r u - x_b| < 0.9 r, i.e. u . d_ab > (0.19 r^2 + |d_ab|^2) / (2 r), d_ab = x_b - x_a;
    # only atoms closer than 1.9 r to atom a can do so.
    offsets, distances = neighbour_offsets(tree, xyz, 1.9 * float(radii.max()))
    spirals = {}
    for r in radii:
        g = np.exp(-0.5 * (r / sigma_angstrom) ** 2)  # (A exp(-r^2 / 2 sigma^2) + B - B) / A
        n_near = int((distances < 1.9 * r).sum(axis=1).max()) if distances.size else 0
        d = offsets[:, :n_near]
        limit = (0.19 * r * r + distances[:, :n_near] ** 2) / (2.0 * r)
        pending = all_atoms
        for attempt in range(max_tries):
            if pending.size == 0:
                break
            n_pts = points_per_shell + 2 * attempt
            if n_pts not in spirals:
                spirals[n_pts] = spiral_points(n_pts)
            ok = accepted_points(d[pending], limit[pending], spirals[n_pts])  # (p, n_pts)
            n_ok = ok.sum(axis=1)
            done = n_ok >= points_per_shell
            if attempt == max_tries - 1:
                done = n_ok > 0  # the published pseudocode keeps the last draw's survivors
            if done.any():
                rows, cols = np.nonzero(ok[done])
                atoms_done = pending[done][rows]
                points = xyz[atoms_done] + r * spirals[n_pts][cols]
                accumulate(atoms_done, values_at(points), g)
            pending = pending[~done]

    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sug - su * sg / count
        var_u = suu - su * su / count
        var_g = sgg - sg * sg / count
        per_atom = cov / np.sqrt(var_u * var_g)
    flat = ~(var_u > 1e-12 * np.maximum(suu, 1e-300))
    per_atom = np.where(flat, np.nan, per_atom)

    if residue_index is None:
        residue_index = np.arange(n_atoms)
    residue_index = np.asarray(residue_index, dtype=np.int64)
    if residue_index.shape != (n_atoms,):
        raise ValueError("residue_index must have one entry per atom")
    n_res = int(residue_index.max()) + 1 if n_atoms else 0
    if residue_labels is None:
        residue_labels = tuple(str(i) for i in range(n_res))
    residue_labels = tuple(residue_labels)
    if len(residue_labels) < n_res:
        raise ValueError("fewer residue_labels than residues in residue_index")
    valid = np.isfinite(per_atom)
    res_sum = np.bincount(residue_index[valid], weights=per_atom[valid], minlength=n_res)
    res_count = np.bincount(residue_index[valid], minlength=n_res)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_residue = np.where(res_count > 0, res_sum / np.maximum(res_count, 1), np.nan)
    mean = float(np.nanmean(per_atom)) if valid.any() else float("nan")
    return QScoreResult(
        per_atom=per_atom,
        residue_labels=residue_labels[:n_res],
        per_residue=per_residue,
        mean=mean,
        sigma_angstrom=float(sigma_angstrom),
    )
