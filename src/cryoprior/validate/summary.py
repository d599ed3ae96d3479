"""All validation metrics of one refinement result, from arrays, in one call.

:func:`validate_maps` takes the half-maps (and whatever else is known: the final map, a mask,
the true map, an atomic model, refined and true poses) and returns a
:class:`ValidationReport` whose ``to_dict()`` is the JSON that ``cryoprior validate`` writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from cryoprior.fourier.masks import soft_sphere
from cryoprior.io.atomic_model import AtomicModel
from cryoprior.poses import Poses
from cryoprior.validate.directional import DirectionalResolution, conical_fsc
from cryoprior.validate.fsc import GoldStandardFsc, gold_standard_fsc
from cryoprior.validate.fscq import FscQResult, fsc_q, model_mask
from cryoprior.validate.local_resolution import LocalResolution, local_resolution
from cryoprior.validate.poses import (
    PoseErrors,
    ViewDistribution,
    attraction,
    match_poses,
    pose_errors,
    view_distribution,
)
from cryoprior.validate.qscore import QScoreResult, expected_q_score, q_scores
from cryoprior.validate.truth import TruthComparison, compare_with_truth

__all__ = [
    "ValidationInputs",
    "ValidationReport",
    "ValidationSettings",
    "fraction_outside_box",
    "validate_maps",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationSettings:
    """Parameters of every metric (defaults follow the published methods).

    Attributes
    ----------
    symmetry: point group of the refinement (for pose errors).
    randomize_at_fsc: where the masked FSC's phase randomisation starts (RELION 0.8).
    local_window_voxels, local_step_voxels, local_fsc_threshold: local resolution windows.
    cone_half_angle_degrees, n_directions: directional (conical) FSC.
    q_sigma_angstrom: Q-score reference Gaussian width.
    fscq_window_voxels, fscq_threshold_map_model, fscq_threshold_half_maps: FSC-Q.
    attraction_min_error_degrees: direction error above which a view counts as misassigned.
    seed: random phases of the masked-FSC correction.
    """

    symmetry: str = "C1"
    randomize_at_fsc: float = 0.8
    local_window_voxels: int = 20
    local_step_voxels: int | None = None
    local_fsc_threshold: float = 0.5
    cone_half_angle_degrees: float = 20.0
    n_directions: int = 64
    q_sigma_angstrom: float = 0.6
    fscq_window_voxels: int = 20
    fscq_threshold_map_model: float = 0.67
    fscq_threshold_half_maps: float = 0.5
    attraction_min_error_degrees: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class ValidationInputs:
    """What is known about one result. Maps are real (n, n, n) arrays on one grid.

    Attributes
    ----------
    half_map_1, half_map_2: the two half-maps.
    voxel_size_angstrom: voxel size.
    full_map: the final map (default: the mean of the half-maps).
    mask: soft mask in [0, 1] (default: from the truth, else the model map, else a sphere of
        0.4 n; the report says which).
    truth_map: the true map of a simulation.
    model: an atomic model in the maps' frame (Q-score, FSC-Q).
    model_map: a map computed from the model on the same grid (FSC-Q).
    origin_angstrom: (x, y, z) of voxel (0, 0, 0) in the model's frame.
    refined_poses, true_poses: particle poses of the refinement and of the simulation.
    """

    half_map_1: np.ndarray
    half_map_2: np.ndarray
    voxel_size_angstrom: float
    full_map: np.ndarray | None = None
    mask: np.ndarray | None = None
    truth_map: np.ndarray | None = None
    model: AtomicModel | None = None
    model_map: np.ndarray | None = None
    origin_angstrom: tuple[float, float, float] = (0.0, 0.0, 0.0)
    refined_poses: Poses | None = None
    true_poses: Poses | None = None


@dataclass(frozen=True)
class ValidationReport:
    """Every metric that could be computed from the inputs (None where an input was missing)."""

    box_size: int
    voxel_size_angstrom: float
    mask_source: str
    gold_standard: GoldStandardFsc
    local_resolution: LocalResolution
    directional: DirectionalResolution
    truth: TruthComparison | None = None
    q_score: QScoreResult | None = None
    fsc_q: FscQResult | None = None
    pose_errors: PoseErrors | None = None
    views_refined: ViewDistribution | None = None
    views_true: ViewDistribution | None = None
    attraction: dict | None = None
    settings: ValidationSettings = field(default_factory=ValidationSettings)
    timings_seconds: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self, *, per_atom: bool = True) -> dict:
        """JSON-ready nested dict of all metrics (curves, histograms, per-residue values)."""
        out: dict = {
            "box_size": self.box_size,
            "voxel_size_angstrom": self.voxel_size_angstrom,
            "mask_source": self.mask_source,
            "settings": dict(vars(self.settings)),
            "gold_standard_fsc": self.gold_standard.to_dict(),
            "local_resolution": self.local_resolution.to_dict(),
            "directional_resolution": self.directional.to_dict(),
            "timings_seconds": dict(self.timings_seconds),
            "warnings": list(self.warnings),
        }
        if self.truth is not None:
            out["truth"] = self.truth.to_dict()
        if self.q_score is not None:
            q = self.q_score.to_dict(per_atom=per_atom)
            q["expected_at_gold_standard_resolution"] = expected_q_score(
                self.gold_standard.resolution_0143_angstrom
            )
            out["q_score"] = q
        if self.fsc_q is not None:
            out["fsc_q"] = self.fsc_q.to_dict(per_atom=per_atom)
        if self.pose_errors is not None:
            out["pose_errors"] = self.pose_errors.summary()
        if self.views_refined is not None:
            out["views_refined"] = self.views_refined.to_dict()
        if self.views_true is not None:
            out["views_true"] = self.views_true.to_dict()
        if self.attraction is not None:
            out["attraction"] = self.attraction
        return out

    def summary_rows(self) -> list[tuple[str, str]]:
        """(quantity, value) pairs for a short table."""
        g = self.gold_standard
        rows = [
            ("FSC 0.143 resolution (A)", f"{g.resolution_0143_angstrom:.2f}"),
            ("FSC 0.5 resolution (A)", f"{g.resolution_05_angstrom:.2f}"),
            ("local resolution median (A)", f"{self.local_resolution.median_angstrom:.2f}"),
            (
                "directional resolution best/worst (A)",
                f"{self.directional.best_angstrom:.2f} / {self.directional.worst_angstrom:.2f}",
            ),
        ]
        if self.truth is not None:
            t = self.truth
            rows.append(("map vs truth, FSC 0.5 (A)", f"{t.full_map.resolution_angstrom(0.5):.2f}"))
            if t.half_map_1 is not None and t.half_map_2 is not None:
                rows.append(
                    (
                        "half-maps vs truth, FSC 0.5 (A)",
                        f"{t.half_map_1.resolution_angstrom(0.5):.2f} / "
                        f"{t.half_map_2.resolution_angstrom(0.5):.2f}",
                    )
                )
            rows.append(("map vs truth, real-space CC", f"{t.correlation_full_map:.3f}"))
        if self.q_score is not None:
            rows.append(("mean Q-score", f"{self.q_score.mean:.3f}"))
        if self.fsc_q is not None:
            rows.append(("mean FSC-Q (A)", f"{self.fsc_q.mean_angstrom:.2f}"))
            rows.append(("mean FSC-Qr", f"{self.fsc_q.mean_normalised:.3f}"))
        if self.pose_errors is not None:
            s = self.pose_errors.summary()
            if s["angular_error_degrees"] is not None:
                rows.append(
                    ("angular error median (deg)", f"{s['angular_error_degrees']['median']:.2f}")
                )
                rows.append(
                    ("shift error median (A)", f"{s['shift_error_angstrom']['median']:.2f}")
                )
        if self.attraction is not None and self.attraction["towards_denser_fraction"] is not None:
            rows.append(
                (
                    "misassigned views moved to denser views",
                    f"{self.attraction['towards_denser_fraction']:.2f} "
                    f"({self.attraction['n_misassigned']})",
                )
            )
        return rows


def validate_maps(
    inputs: ValidationInputs, settings: ValidationSettings | None = None
) -> ValidationReport:
    """Compute every metric the inputs allow.

    Always: gold-standard FSC (masked and corrected when there is a mask), local resolution in
    the mask, directional resolution. With a true map: FSC and correlation of the final map and
    of each half-map against it. With a model: Q-score of the final map; with a model map too:
    FSC-Q. With refined poses: their view distribution; with true poses too: angular and shift
    errors and the attraction of misassigned views.

    Parameters
    ----------
    inputs: the arrays (not modified).
    settings: parameters (default :class:`ValidationSettings`).

    Returns
    -------
    :class:`ValidationReport`.
    """
    s = settings or ValidationSettings()
    h1 = np.asarray(inputs.half_map_1, dtype=np.float64)
    h2 = np.asarray(inputs.half_map_2, dtype=np.float64)
    if h1.shape != h2.shape or h1.ndim != 3 or len(set(h1.shape)) != 1:
        raise ValueError(f"half-maps must be (n, n, n) of one shape, not {h1.shape}, {h2.shape}")
    n = h1.shape[0]
    voxel = float(inputs.voxel_size_angstrom)
    full = 0.5 * (h1 + h2) if inputs.full_map is None else np.asarray(inputs.full_map, float)
    for name in ("full_map", "mask", "truth_map", "model_map"):
        value = full if name == "full_map" else getattr(inputs, name)
        if value is not None and np.shape(value) != h1.shape:
            raise ValueError(f"{name} has shape {np.shape(value)}, the half-maps {h1.shape}")
    mask, mask_source = _choose_mask(inputs, n)
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        logger.info("%s: %.2f s", name, timings[name])
        return value

    def gold_fsc(**randomisation):
        return timed(
            "gold_standard_fsc",
            gold_standard_fsc,
            h1,
            h2,
            mask=mask,
            voxel_size_angstrom=voxel,
            seed=s.seed,
            **randomisation,
        )

    try:
        gold = gold_fsc(randomize_at_fsc=s.randomize_at_fsc)
    except ValueError as exc:  # the unmasked FSC never falls below randomize_at_fsc
        logger.warning("%s; randomising phases from Nyquist only", exc)
        gold = gold_fsc(randomize_from_angstrom=2.0 * voxel)
    local = timed(
        "local_resolution",
        local_resolution,
        h1,
        h2,
        mask=mask,
        voxel_size_angstrom=voxel,
        window_size_voxels=min(s.local_window_voxels, n),
        step_voxels=s.local_step_voxels,
        fsc_threshold=s.local_fsc_threshold,
    )
    directional = timed(
        "directional_resolution",
        conical_fsc,
        h1,
        h2,
        mask=mask,
        voxel_size_angstrom=voxel,
        n_directions=s.n_directions,
        cone_half_angle_degrees=s.cone_half_angle_degrees,
    )
    truth = None
    if inputs.truth_map is not None:
        truth = timed(
            "truth",
            compare_with_truth,
            full,
            inputs.truth_map,
            half_map_1=h1,
            half_map_2=h2,
            mask=mask,
            voxel_size_angstrom=voxel,
        )
    warnings: list[str] = []
    q = fq = None
    if inputs.model is not None:
        model = inputs.model
        outside = fraction_outside_box(
            model.positions_angstrom,
            n,
            voxel_size_angstrom=voxel,
            origin_angstrom=inputs.origin_angstrom,
        )
        if outside > 0.5:
            message = (
                f"{100 * outside:.0f} % of the model's {model.n_atoms} atoms lie outside the map "
                f"box ({n} x {voxel:g} A from the origin {tuple(inputs.origin_angstrom)} A): is the "
                "model in the map's frame? The Q-score and FSC-Q mean little"
            )
            logger.warning("%s", message)
            warnings.append(message)
        q = timed(
            "q_score",
            q_scores,
            full,
            model.positions_angstrom,
            voxel_size_angstrom=voxel,
            origin_angstrom=inputs.origin_angstrom,
            residue_index=model.residue_index,
            residue_labels=model.residue_labels,
            sigma_angstrom=s.q_sigma_angstrom,
        )
        if inputs.model_map is not None:
            fq = timed(
                "fsc_q",
                fsc_q,
                h1,
                h2,
                inputs.model_map,
                model.positions_angstrom,
                full_map=full,
                voxel_size_angstrom=voxel,
                origin_angstrom=inputs.origin_angstrom,
                window_size_voxels=min(s.fscq_window_voxels, n),
                threshold_map_model=s.fscq_threshold_map_model,
                threshold_half_maps=s.fscq_threshold_half_maps,
            )
    errors = views_refined = views_true = attract = None
    if inputs.refined_poses is not None:
        refined = inputs.refined_poses
        if inputs.true_poses is not None:
            refined, truth_poses = match_poses(refined, inputs.true_poses)
            start = time.perf_counter()
            errors = pose_errors(refined, truth_poses, symmetry=s.symmetry)
            attract = attraction(
                refined,
                truth_poses,
                symmetry=s.symmetry,
                min_direction_error_degrees=s.attraction_min_error_degrees,
            )
            views_true = view_distribution(truth_poses.rot_degrees, truth_poses.tilt_degrees)
            timings["poses"] = time.perf_counter() - start
        views_refined = view_distribution(refined.rot_degrees, refined.tilt_degrees)
    return ValidationReport(
        box_size=n,
        voxel_size_angstrom=voxel,
        mask_source=mask_source,
        gold_standard=gold,
        local_resolution=local,
        directional=directional,
        truth=truth,
        q_score=q,
        fsc_q=fq,
        pose_errors=errors,
        views_refined=views_refined,
        views_true=views_true,
        attraction=attract,
        settings=s,
        timings_seconds=timings,
        warnings=tuple(warnings),
    )


def fraction_outside_box(
    positions_angstrom,
    box_size: int,
    *,
    voxel_size_angstrom: float,
    origin_angstrom=(0.0, 0.0, 0.0),
) -> float:
    """Fraction of atoms outside an (N, N, N) map's box.

    Parameters
    ----------
    positions_angstrom: (n_atoms, 3) (x, y, z) in the model's frame.
    box_size: N.
    voxel_size_angstrom: voxel size.
    origin_angstrom: (x, y, z) of voxel (0, 0, 0).

    Returns
    -------
    In [0, 1]; an atom is inside when every coordinate lies in [-0.5, N - 0.5) voxels of the
    origin (0 for no atoms).
    """
    xyz = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
    if not len(xyz):
        return 0.0
    index = (xyz - np.asarray(origin_angstrom, dtype=np.float64)) / float(voxel_size_angstrom)
    inside = ((index >= -0.5) & (index < box_size - 0.5)).all(axis=1)
    return float(1.0 - inside.mean())


def _choose_mask(inputs: ValidationInputs, n: int) -> tuple[np.ndarray, str]:
    """Return the given mask, else one from the truth or the model map, else a soft sphere."""
    if inputs.mask is not None:
        return np.asarray(inputs.mask, dtype=np.float64), "given"
    for name in ("truth_map", "model_map"):
        source = getattr(inputs, name)
        if source is not None:
            return map_mask(source), f"{name} above 2% of its maximum, dilated 3 voxels, soft edge"
    return (
        soft_sphere(n, radius_voxels=0.4 * n - 3, edge_width_voxels=3),
        "sphere of radius 0.4 n with a 3-voxel soft edge",
    )


def map_mask(volume) -> np.ndarray:
    """Return the validation's soft mask of a true or model map, (n, n, n) float64 in [0, 1].

    The map above 2 % of its maximum, dilated 3 voxels
    (:func:`cryoprior.validate.fscq.model_mask`), with a 3-voxel raised-cosine edge outside.
    """
    return _soften(model_mask(np.asarray(volume, dtype=np.float64)).astype(np.float64))


def _soften(hard: np.ndarray, *, width_voxels: float = 3.0) -> np.ndarray:
    """Soften a binary mask with a raised-cosine edge of ``width_voxels`` outside it."""
    import scipy.ndimage

    distance = scipy.ndimage.distance_transform_edt(hard < 0.5)
    t = np.clip(distance / width_voxels, 0.0, 1.0)
    return np.where(hard >= 0.5, 1.0, 0.5 + 0.5 * np.cos(np.pi * t))
