"""Membrane proteins: the transmembrane band of an atomic model, and a lipid-like belt around it.

Membrane proteins are imaged in a detergent micelle or a lipid nanodisc: a disordered belt of
lipid-like density, weaker than the protein's, wrapped around the protein's transmembrane band.
This module makes such a belt for any model, without annotations:

* :func:`transmembrane_band` finds the membrane's normal and its hydrophobic slab from the
  residues alone: the slab whose surface-exposed residues are most enriched in hydrophobic ones
  (LEU ILE VAL PHE MET ALA TRP) against the exposed residues outside it.
* :func:`membrane_belt` makes the belt's density on a map's grid: inside the slab, outside the
  protein's envelope (the envelope's in-plane footprint, its pores and enclosed cavities
  filled), out to a set distance from it; a soft annulus mask, its outer radius and faces
  modulated by smooth random fields, times a low-pass random texture, so that the belt has no
  features finer than about 10 A, like a real micelle. :func:`add_membrane_belt` adds it to
  the map.

Frames. Positions are (x, y, z) in Angstrom in the model's frame. A map is a (N, N, N) array
indexed (z, y, x) whose voxel (k, j, i) is at ``origin_angstrom + (i, j, k) * voxel_size``, as
in :mod:`cryoprior.io.atomic_model`. A map made by
:func:`cryoprior.io.model_map.model_to_map` with ``centre=True`` puts the model's centre of
mass at voxel N//2: its origin is :func:`centred_map_origin_angstrom`; with ``centre=False``
the origin is (0, 0, 0).

All randomness comes from the ``seed`` argument (an int or a ``numpy.random.Generator``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage
from scipy.spatial import cKDTree

from cryoprior.io.atomic_model import AtomicModel

__all__ = [
    "HYDROPHOBIC_RESIDUES",
    "MembraneBand",
    "add_membrane_belt",
    "centred_map_origin_angstrom",
    "membrane_belt",
    "protein_envelope",
    "transmembrane_band",
]

logger = logging.getLogger(__name__)

#: The residues counted as hydrophobic when looking for the membrane.
HYDROPHOBIC_RESIDUES = frozenset({"LEU", "ILE", "VAL", "PHE", "MET", "ALA", "TRP"})

_AMINO_ACIDS = frozenset(
    {
        "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
        "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "MSE",
    }
)  # fmt: skip

_BIN_ANGSTROM = 1.0  # the slab scan's step along the normal


@dataclass(frozen=True)
class MembraneBand:
    """A membrane's hydrophobic slab in a model's frame.

    Attributes
    ----------
    normal: unit vector (x, y, z) perpendicular to the membrane (sign: z component >= 0, or
        y >= 0 when z is 0, ...).
    centre_angstrom: the mid-plane's position along the normal: the points p with
        ``p . normal == centre_angstrom``.
    thickness_angstrom: the slab's thickness along the normal.
    score: the two-proportion z-score of the hydrophobic fraction of the exposed residues in
        the slab against those outside it, the largest over all slabs tried (so about 4 even
        for residues with random hydrophobicity, and growing with the number of residues).
    n_residues_in_slab: exposed residues whose centroids are in the slab.
    hydrophobic_fraction_in, hydrophobic_fraction_out: the hydrophobic fraction of the
        exposed residues in and outside the slab. Measured (fractions in / out, score):
        GltPh (2NWL, a transporter) 0.68 / 0.34, 8.3; the soluble 20S proteasome (6BDF)
        0.34 / 0.23, 5.5; its chain A alone 0.46 / 0.15, 3.3; beta-galactosidase (5A1A)
        0.44 / 0.27, 3.6. :func:`transmembrane_band` warns unless the difference is at least
        0.25 and the score at least 6 (a rule drawn from these few cases).
    """

    normal: tuple[float, float, float]
    centre_angstrom: float
    thickness_angstrom: float
    score: float = 0.0
    n_residues_in_slab: int = 0
    hydrophobic_fraction_in: float = 0.0
    hydrophobic_fraction_out: float = 0.0

    def __post_init__(self) -> None:
        """Check the band: a unit normal, a positive thickness, a finite centre (ValueError)."""
        n = np.asarray(self.normal, dtype=np.float64)
        if n.shape != (3,) or not np.isfinite(n).all() or abs(np.linalg.norm(n) - 1.0) > 1e-6:
            raise ValueError(f"normal must be a unit vector (x, y, z), not {self.normal}")
        if not (np.isfinite(self.thickness_angstrom) and self.thickness_angstrom > 0):
            raise ValueError(f"thickness_angstrom must be positive, not {self.thickness_angstrom}")
        if not np.isfinite(self.centre_angstrom):
            raise ValueError(f"centre_angstrom must be finite, not {self.centre_angstrom}")

    def height_angstrom(self, positions_angstrom: np.ndarray) -> np.ndarray:
        """Signed distance of (..., 3) positions (x, y, z) from the mid-plane, in Angstrom."""
        return np.asarray(positions_angstrom) @ np.asarray(self.normal) - self.centre_angstrom


def transmembrane_band(
    model: AtomicModel,
    *,
    thickness_range_angstrom: tuple[float, float] = (20.0, 40.0),
    angular_step_degrees: float = 3.0,
    exposure_radius_angstrom: float = 10.0,
    candidate_normals: np.ndarray | None = None,
) -> MembraneBand:
    """Find the membrane's normal and hydrophobic slab of a model, from its residues alone.

    Every direction on a half-sphere grid (``angular_step_degrees`` apart), the model's three
    principal axes and any ``candidate_normals`` (for instance a known symmetry axis) are
    tried, then the grid is refined twice around the best one (to a sixteenth of the step). For each
    direction, slabs of every thickness in ``thickness_range_angstrom`` (2 A steps) at every
    position (1 A steps) are scored by the two-proportion z-score of the hydrophobic fraction
    (``HYDROPHOBIC_RESIDUES``) of the surface-exposed residues whose centroids lie in the slab
    against those outside it. A residue is exposed when fewer atoms than the median over
    residues lie within ``exposure_radius_angstrom`` of its centroid. Only the 20 amino acids
    (and MSE) count; ligands are ignored.

    Parameters
    ----------
    model: the atomic model (:func:`cryoprior.io.atomic_model.read_atomic_model`).
    thickness_range_angstrom: the slab thicknesses tried (hydrophobic cores are 24 to 36 A).
    angular_step_degrees: the spacing of the coarse grid of directions.
    exposure_radius_angstrom: the neighbourhood that decides exposure.
    candidate_normals: (k, 3) extra directions (x, y, z) to try; need not be unit length.

    Returns
    -------
    MembraneBand in the model's frame. A model without a clear band (see
    :class:`MembraneBand`'s fractions: a soluble protein) still gets its best slab, with a
    warning.

    Raises
    ------
    ValueError: no amino-acid residues, or bad parameters.

    Example
    -------
    >>> from cryoprior.io.atomic_model import read_atomic_model
    >>> from cryoprior.simulate.models import shipped_model_path
    >>> band = transmembrane_band(read_atomic_model(shipped_model_path("gltph")))  # doctest: +SKIP
    >>> band.normal, band.centre_angstrom, band.thickness_angstrom  # doctest: +SKIP
    """
    t_min, t_max = (float(t) for t in thickness_range_angstrom)
    if not (0 < t_min <= t_max) or not np.isfinite(t_max):
        raise ValueError(f"thickness_range_angstrom must be 0 < min <= max, not {(t_min, t_max)}")
    if not (0 < angular_step_degrees <= 30):
        raise ValueError(f"angular_step_degrees must be in (0, 30], not {angular_step_degrees}")
    if exposure_radius_angstrom <= 0:
        raise ValueError("exposure_radius_angstrom must be positive")
    centroids, hydrophobic = _exposed_residues(model, exposure_radius_angstrom)
    thicknesses = np.arange(t_min, t_max + 1e-9, 2.0)

    directions = [_half_sphere_grid(math.radians(angular_step_degrees))]
    directions.append(_principal_axes(model.positions_angstrom))
    if candidate_normals is not None:
        extra = np.asarray(candidate_normals, dtype=np.float64).reshape(-1, 3)
        norms = np.linalg.norm(extra, axis=1)
        if not np.isfinite(extra).all() or (norms == 0).any():
            raise ValueError("candidate_normals must be finite and non-zero")
        directions.append(extra / norms[:, None])
    coarse = np.vstack(directions)
    best = _best_slab(centroids, hydrophobic, coarse, thicknesses)
    step = math.radians(angular_step_degrees)
    for _ in range(2):  # refine: a local grid around the best direction, twice
        local = _local_grid(best[0], radius=step, step=step / 4)
        best = max(best, _best_slab(centroids, hydrophobic, local, thicknesses), key=lambda b: b[3])
        step /= 4
    normal, centre, thickness, score, n_in = best
    normal, centre = _canonical_sign(normal, centre)
    inside = np.abs(centroids @ normal - centre) <= 0.5 * thickness
    fraction_in = float(hydrophobic[inside].mean()) if inside.any() else 0.0
    fraction_out = float(hydrophobic[~inside].mean()) if (~inside).any() else 0.0
    if fraction_in - fraction_out < 0.25 or score < 6:
        logger.warning(
            "%s: no clear transmembrane band (exposed residues %.0f%% hydrophobic in the best "
            "slab, %.0f%% outside, z-score %.1f); using the slab at %.1f A along "
            "(%.2f, %.2f, %.2f)",
            model.name or "model",
            100 * fraction_in,
            100 * fraction_out,
            score,
            centre,
            *normal,
        )
    return MembraneBand(
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        centre_angstrom=float(centre),
        thickness_angstrom=float(thickness),
        score=float(score),
        n_residues_in_slab=int(n_in),
        hydrophobic_fraction_in=fraction_in,
        hydrophobic_fraction_out=fraction_out,
    )


def _exposed_residues(model: AtomicModel, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (m, 3) and hydrophobic flags (m,) float of the exposed amino-acid residues."""
    names = np.array([label.rsplit(":", 1)[-1].upper() for label in model.residue_labels])
    n_res = len(names)
    counts = np.bincount(model.residue_index, minlength=n_res)
    sums = np.zeros((n_res, 3))
    np.add.at(sums, model.residue_index, model.positions_angstrom)
    is_amino = np.array([name in _AMINO_ACIDS for name in names]) & (counts > 0)
    if not is_amino.any():
        raise ValueError(f"{model.name or 'model'}: no amino-acid residues to find a membrane by")
    centroids = sums[is_amino] / counts[is_amino, None]
    names = names[is_amino]
    tree = cKDTree(model.positions_angstrom)
    neighbours = np.array([len(x) for x in tree.query_ball_point(centroids, radius)])
    exposed = neighbours <= np.median(neighbours)
    hydrophobic = np.array([name in HYDROPHOBIC_RESIDUES for name in names], dtype=np.float64)
    return centroids[exposed], hydrophobic[exposed]


def _best_slab(
    centroids: np.ndarray, hydrophobic: np.ndarray, directions: np.ndarray, thicknesses: np.ndarray
) -> tuple[np.ndarray, float, float, float, int]:
    """(direction, centre, thickness, score, residues in slab) of the best slab over all."""
    heights = centroids @ directions.T  # (m, d)
    low = heights.min()
    n_bins = int(np.ceil((heights.max() - low) / _BIN_ANGSTROM)) + 1
    bins = np.minimum(((heights - low) / _BIN_ANGSTROM).astype(np.int64), n_bins - 1)
    flat = (bins + n_bins * np.arange(directions.shape[0])[None, :]).ravel()
    size = directions.shape[0] * n_bins
    total = np.bincount(flat, minlength=size).reshape(-1, n_bins).astype(np.float64)
    hyd = np.bincount(flat, weights=np.repeat(hydrophobic, directions.shape[0]), minlength=size)
    hyd = hyd.reshape(-1, n_bins)
    cum_total = np.concatenate([np.zeros((total.shape[0], 1)), np.cumsum(total, axis=1)], axis=1)
    cum_hyd = np.concatenate([np.zeros((hyd.shape[0], 1)), np.cumsum(hyd, axis=1)], axis=1)
    n_all = float(len(hydrophobic))
    h_all = float(hydrophobic.sum())
    p_all = h_all / n_all
    spread = p_all * (1 - p_all)
    best: tuple[np.ndarray, float, float, float, int] = (
        directions[0],
        0.0,
        float(thicknesses[0]),
        -np.inf,
        0,
    )
    for thickness in thicknesses:
        width = round(thickness / _BIN_ANGSTROM)
        if width >= n_bins:
            continue
        n_in = cum_total[:, width:] - cum_total[:, :-width]
        h_in = cum_hyd[:, width:] - cum_hyd[:, :-width]
        n_out = n_all - n_in
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = h_in / n_in - (h_all - h_in) / n_out
            z = diff / np.sqrt(spread * (1.0 / n_in + 1.0 / n_out))
        z[~np.isfinite(z)] = -np.inf
        k = int(np.argmax(z))
        d, start = divmod(k, z.shape[1])
        if z[d, start] > best[3]:
            centre = low + (start + width / 2.0) * _BIN_ANGSTROM
            best = (
                directions[d],
                float(centre),
                float(thickness),
                float(z[d, start]),
                int(n_in[d, start]),
            )
    return best


def _half_sphere_grid(step_radians: float) -> np.ndarray:
    """Return unit vectors (k, 3) on the half-sphere z >= 0, about ``step_radians`` apart."""
    n = max(math.ceil(4 * math.pi / step_radians**2), 8)  # whole sphere, Fibonacci
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z**2)
    phi = i * math.pi * (3 - math.sqrt(5))
    points = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return points[points[:, 2] >= 0]


def _principal_axes(positions: np.ndarray) -> np.ndarray:
    centred = positions - positions.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors.T


def _local_grid(direction: np.ndarray, *, radius: float, step: float) -> np.ndarray:
    """Return unit vectors within ``radius`` (radians) of ``direction`` on a square tangent grid."""
    d = direction / np.linalg.norm(direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    offsets = np.arange(-radius, radius + 1e-12, step)
    a, b = np.meshgrid(offsets, offsets, indexing="ij")
    keep = a**2 + b**2 <= radius**2 + 1e-12
    points = d[None, :] + a[keep, None] * u[None, :] + b[keep, None] * v[None, :]
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _canonical_sign(normal: np.ndarray, centre: float) -> tuple[np.ndarray, float]:
    normal = np.asarray(normal, dtype=np.float64)
    normal = normal / np.linalg.norm(normal)
    for component in normal[::-1]:  # z, then y, then x
        if abs(component) > 1e-12:
            if component < 0:
                return -normal, -centre
            break
    return normal, centre


def centred_map_origin_angstrom(
    model: AtomicModel, *, box_size: int, voxel_size_angstrom: float
) -> tuple[float, float, float]:
    """Return the (x, y, z) position of voxel (0, 0, 0) of a centred model map.

    The map is one made by :func:`cryoprior.io.model_map.model_to_map` with
    ``centre=True``: the position is the model's centre of mass (atoms weighted by their element's
    mass, as gemmi does; occupancies taken as 1) minus ``(box_size // 2) * voxel_size_angstrom``.
    """
    import gemmi

    weights = np.array([gemmi.Element(e).weight for e in model.elements])
    com = (model.positions_angstrom * weights[:, None]).sum(axis=0) / weights.sum()
    origin = com - (int(box_size) // 2) * float(voxel_size_angstrom)
    return (float(origin[0]), float(origin[1]), float(origin[2]))


def protein_envelope(
    density: np.ndarray,
    *,
    voxel_size_angstrom: float,
    blur_angstrom: float = 3.0,
    level: float = 0.5,
) -> np.ndarray:
    """Return the protein's envelope in a map.

    The envelope is where the map, blurred by a Gaussian of ``blur_angstrom`` standard
    deviation (periodic), exceeds ``level`` times the blurred map's mean over the
    voxels above a tenth of its maximum (its typical value inside the protein).

    For maps of GltPh (PDB 2NWL) made by ``model_to_map`` at 1.5 to 4 A voxels, with the
    atoms' B-factors or B = 30 or 60 A^2, the envelope encloses 198,000 to 203,000 A^3, about
    1.25 times the protein's volume at 1.21 A^3 per Da (1,203 residues, about 132 kDa).

    Parameters
    ----------
    density: (N, N, N) real map, (z, y, x); not modified.
    voxel_size_angstrom: its voxel size.
    blur_angstrom, level: as above.

    Returns
    -------
    bool array (N, N, N).
    """
    density = np.asarray(density, dtype=np.float64)
    blurred = ndimage.gaussian_filter(density, blur_angstrom / voxel_size_angstrom, mode="wrap")
    top = blurred.max()
    if not top > 0:
        return np.zeros(density.shape, dtype=bool)
    reference = blurred[blurred > 0.1 * top].mean()
    return blurred > level * reference


def membrane_belt(
    density: np.ndarray,
    model_or_band: AtomicModel | MembraneBand,
    *,
    voxel_size_angstrom: float,
    origin_angstrom: tuple[float, float, float] = (0.0, 0.0, 0.0),
    width_angstrom: float = 20.0,
    relative_density: float = 0.4,
    roughness_angstrom: float = 3.0,
    seed: int | np.random.Generator,
    roughness_length_angstrom: float = 20.0,
    texture: float = 0.3,
    texture_resolution_angstrom: float = 10.0,
    edge_angstrom: float = 6.0,
    envelope: np.ndarray | None = None,
) -> np.ndarray:
    """Make the density of a detergent micelle or nanodisc belt around a membrane protein's map.

    The belt fills the voxels inside the membrane slab (``thickness_angstrom`` of the band)
    that lie outside the protein's footprint and within ``width_angstrom`` of it in the
    membrane's plane. The footprint of each plane of the slab is the envelope's section with
    its holes (a channel's pore, an enclosed cavity) filled, so the belt only wraps the
    outside. Its outline is modulated by two smooth random fields (Gaussian correlation
    length ``roughness_length_angstrom``): the outer radius and the faces' heights move by
    ``roughness_angstrom`` (standard deviation); its edges are raised-cosine ramps
    ``edge_angstrom`` wide, with the outer corners rounded like a micelle's. Inside, the
    density is ``relative_density`` times the map's mean over the protein envelope, times a
    log-normal texture of standard deviation about ``texture`` whose features are no finer
    than ``texture_resolution_angstrom``. The belt is exactly zero inside the envelope.

    Parameters
    ----------
    density: (N, N, N) real map, (z, y, x), of the protein alone (see the module's frame
        notes); not modified.
    model_or_band: the model (its band is found with :func:`transmembrane_band`) or a band
        in the model's frame.
    voxel_size_angstrom: the map's voxel size.
    origin_angstrom: (x, y, z) position of voxel (0, 0, 0) in the model's frame
        (:func:`centred_map_origin_angstrom` for ``model_to_map(..., centre=True)``).
    width_angstrom: the belt's radial thickness beyond the protein's surface (micelles and
        nanodiscs: 15 to 25 A).
    relative_density: the belt's mean density relative to the protein's (detergent micelle
        about 0.3 to 0.5; 0 gives an empty belt).
    roughness_angstrom: standard deviation of the outline's random modulation (0: smooth).
    seed: int or numpy Generator; the same seed gives the same belt.
    roughness_length_angstrom: correlation length of that modulation.
    texture: standard deviation of the log of the belt's density fluctuation (0: uniform).
    texture_resolution_angstrom: the finest scale of the texture.
    edge_angstrom: width of the raised-cosine edges.
    envelope: (N, N, N) bool protein envelope; default :func:`protein_envelope`.

    Returns
    -------
    float32 array (N, N, N), (z, y, x): the belt's density (>= 0, zero outside the belt and
    inside the envelope). Its mass is proportional to ``relative_density``; between seeds it
    varies by about 6% (standard deviation over 10 seeds for GltPh at the defaults).

    Time and memory: for GltPh, 1.5 s at N = 96 and 20 s at N = 192 (one core); about ten
    (N, N, N) arrays.
    """
    volume = np.asarray(density)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"density must be a cubic (N, N, N) array, not of shape {volume.shape}")
    if not (voxel_size_angstrom > 0 and np.isfinite(voxel_size_angstrom)):
        raise ValueError(f"voxel_size_angstrom must be positive, not {voxel_size_angstrom}")
    for name, value in (
        ("width_angstrom", width_angstrom),
        ("relative_density", relative_density),
        ("roughness_angstrom", roughness_angstrom),
        ("texture", texture),
    ):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, not {value}")
    for name, value in (
        ("roughness_length_angstrom", roughness_length_angstrom),
        ("texture_resolution_angstrom", texture_resolution_angstrom),
        ("edge_angstrom", edge_angstrom),
    ):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive, not {value}")
    n = volume.shape[0]
    voxel = float(voxel_size_angstrom)
    band = model_or_band
    if isinstance(band, AtomicModel):
        band = transmembrane_band(band)
    if envelope is None:
        envelope = protein_envelope(volume, voxel_size_angstrom=voxel)
    envelope = np.asarray(envelope, dtype=bool)
    if envelope.shape != volume.shape:
        raise ValueError(f"envelope shape {envelope.shape} differs from the map's {volume.shape}")
    rng = np.random.default_rng(seed)
    if relative_density == 0 or width_angstrom == 0 or not envelope.any():
        return np.zeros(volume.shape, dtype=np.float32)

    # A frame whose third axis is the membrane normal, centred on the box centre (voxel N//2):
    # voxel positions p (Angstrom, model frame) -> q = rotation @ (p - pivot).
    normal = np.asarray(band.normal, dtype=np.float64)
    rotation = _rotation_to_z(normal)
    pivot = np.asarray(origin_angstrom, dtype=np.float64) + (n // 2) * voxel
    mid_height = band.centre_angstrom - float(pivot @ normal)  # the mid-plane's q_z
    identity = np.allclose(rotation, np.eye(3), atol=1e-9)
    env_rot = envelope if identity else _resample(envelope.astype(np.float32), rotation.T) > 0.5

    # Height of each voxel of the rotated grid above the mid-plane, and its in-plane distance
    # from the footprint (per plane; holes filled).
    q = (np.arange(n) - n // 2) * voxel  # coordinates along each rotated axis
    height = (q - mid_height)[:, None, None]  # (N, 1, 1): axis 0 is the normal (z)
    half = 0.5 * band.thickness_angstrom
    rough_radial = rng.standard_normal((n, n, n), dtype=np.float32)
    rough_height = rng.standard_normal((n, n, n), dtype=np.float32)
    texture_noise = rng.standard_normal((n, n, n), dtype=np.float32)
    reach = width_angstrom + 3 * roughness_angstrom + edge_angstrom
    planes = np.nonzero(np.abs(height[:, 0, 0]) <= half + 3 * roughness_angstrom + edge_angstrom)[0]
    distance = np.full((n, n, n), np.inf, dtype=np.float32)
    for k in planes:
        section = env_rot[k]
        if not section.any():
            continue
        footprint = ndimage.binary_fill_holes(section)
        distance[k] = ndimage.distance_transform_edt(~footprint) * voxel
    distance[distance > reach + voxel] = np.inf

    # The outline's modulations: smooth fields with zero mean and unit standard deviation over
    # the unmodulated belt (so that the seed changes the belt's shape, hardly its mass).
    nominal = _annulus(distance, np.abs(height), width_angstrom, half, edge_angstrom) > 0
    radial_shift = roughness_angstrom * _standardised(
        _smooth_field(rough_radial, roughness_length_angstrom, voxel), nominal
    )
    height_shift = roughness_angstrom * _standardised(
        _smooth_field(rough_height, roughness_length_angstrom, voxel), nominal
    )
    outer = np.maximum(width_angstrom + radial_shift, 0.0)
    faces = np.maximum(half + height_shift, 0.0)
    mask = _annulus(distance, np.abs(height), outer, faces, edge_angstrom)
    if not identity:
        mask = np.clip(_resample(mask.astype(np.float32), rotation), 0.0, 1.0)

    # Soften the outline further (the per-plane footprints and the ramps leave steps) and let
    # the belt rise from zero at the envelope's surface over edge_angstrom, in 3D.
    mask = ndimage.gaussian_filter(mask, edge_angstrom / (3.0 * voxel), mode="wrap")
    contact = _ramp(ndimage.distance_transform_edt(~envelope) * voxel / edge_angstrom)
    mask *= contact
    fluctuation = _smooth_field(texture_noise, texture_resolution_angstrom / 2.5, voxel)
    texture_map = np.exp(texture * fluctuation - 0.5 * texture**2)  # log-normal, mean 1
    level = float(volume[envelope].mean())
    belt = relative_density * level * mask * texture_map
    belt[envelope] = 0.0
    belt = np.maximum(belt, 0.0)
    logger.debug(
        "membrane belt: normal %s, slab %.1f A at %.1f A, width %.1f A, %d voxels, level %.4g",
        np.round(normal, 3).tolist(),
        band.thickness_angstrom,
        band.centre_angstrom,
        width_angstrom,
        int((belt > 0).sum()),
        level,
    )
    return belt.astype(np.float32)


def add_membrane_belt(
    density: np.ndarray,
    model_or_band: AtomicModel | MembraneBand,
    *,
    voxel_size_angstrom: float,
    seed: int | np.random.Generator,
    **options,
) -> np.ndarray:
    """Return the map plus :func:`membrane_belt` (same arguments).

    A new float32 (N, N, N) array, (z, y, x); ``density`` is not modified. The belt alone is
    :func:`membrane_belt`'s result; its mask is ``belt > 0`` (soft edges included: it reaches about
    ``2 * edge_angstrom`` beyond the nominal outline).
    """
    belt = membrane_belt(
        density, model_or_band, voxel_size_angstrom=voxel_size_angstrom, seed=seed, **options
    )
    return (np.asarray(density, dtype=np.float32) + belt).astype(np.float32)


def _annulus(
    distance: np.ndarray,
    height: np.ndarray,
    outer: np.ndarray | float,
    faces: np.ndarray | float,
    edge: float,
) -> np.ndarray:
    """Soft belt mask in [0, 1].

    It rises over ``edge / 2`` from the footprint (distance 0), falls over ``edge`` around the outer
    radius and the faces, corners rounded (superellipse of order 4 in units of the outer radius and
    the half-thickness).
    """
    inner_ramp = _ramp(distance / (0.5 * edge))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(outer > 0, distance / np.maximum(outer, 1e-12), np.inf)
        h = np.where(faces > 0, height / np.maximum(faces, 1e-12), np.inf)
        s = (r**4 + h**4) ** 0.25  # 1 on the belt's outline
    # the outline's soft width, in units of s: edge over the smaller of the two extents
    soft = edge / np.maximum(np.minimum(outer, faces), edge)
    outer_ramp = 1.0 - _ramp((s - 1.0) / soft + 0.5)
    mask = inner_ramp * outer_ramp
    mask[~np.isfinite(distance)] = 0.0
    return np.nan_to_num(mask, nan=0.0, posinf=0.0, neginf=0.0)


def _ramp(x: np.ndarray) -> np.ndarray:
    """0 for x <= 0, 1 for x >= 1, raised cosine between."""
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _smooth_field(white: np.ndarray, sigma_angstrom: float, voxel: float) -> np.ndarray:
    """White noise blurred by a periodic Gaussian of ``sigma_angstrom``, unit standard deviation.

    The blur's Fourier transform is exp(-2 pi^2 sigma^2 f^2).
    """
    n = white.shape[0]
    f = scipy.fft.fftfreq(n, d=voxel)
    fh = scipy.fft.rfftfreq(n, d=voxel)
    g = np.exp(-2 * np.pi**2 * sigma_angstrom**2 * f**2)
    gh = np.exp(-2 * np.pi**2 * sigma_angstrom**2 * fh**2)
    spectrum = scipy.fft.rfftn(white)
    spectrum *= g[:, None, None] * g[None, :, None] * gh[None, None, :]
    field = scipy.fft.irfftn(spectrum, s=white.shape)
    std = field.std()
    return field / std if std > 0 else field


def _standardised(field: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Shift and scale ``field`` to zero mean and unit standard deviation over ``region``.

    Unchanged where the region is empty or the field constant on it.
    """
    if not region.any():
        return field
    values = field[region]
    std = values.std()
    return (field - values.mean()) / std if std > 0 else field - values.mean()


def _rotation_to_z(normal: np.ndarray) -> np.ndarray:
    """Return a rotation matrix (3, 3) acting on (x, y, z) that maps ``normal`` to (0, 0, 1)."""
    n = normal / np.linalg.norm(normal)
    z = np.array([0.0, 0.0, 1.0])
    c = float(n @ z)
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    axis = np.cross(n, z)
    s = np.linalg.norm(axis)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def _resample(volume: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Rotate a volume: out(q) = volume(rotation @ q) about voxel N//2.

    For (N, N, N) arrays indexed (z, y, x), ``rotation`` acting on (x, y, z); trilinear, zero
    outside.
    """
    n = volume.shape[0]
    flip = np.eye(3)[::-1]  # (x, y, z) <-> (z, y, x)
    matrix = flip @ rotation @ flip
    centre = np.full(3, n // 2, dtype=np.float64)
    offset = centre - matrix @ centre
    return ndimage.affine_transform(volume, matrix, offset=offset, order=1, mode="constant")
