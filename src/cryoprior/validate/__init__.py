"""Validation: the metrics that say whether a map is better, and whether it is true.

Gold-standard FSC (masked, phase-randomisation corrected, as relion_postprocess), scores
against the ground truth of a simulation, Q-score, FSC-Q, local and directional resolution,
pose errors and view distributions. Pure functions on numpy arrays; this package never imports
``cryoprior.prior`` or ``cryoprior.refine``.
"""

from cryoprior.io.atomic_model import AtomicModel, read_atomic_model
from cryoprior.validate.directional import DirectionalResolution, conical_fsc
from cryoprior.validate.fsc import (
    FscCurve,
    GoldStandardFsc,
    fourier_shell_correlation,
    gold_standard_fsc,
    resolution_at_threshold,
)
from cryoprior.validate.fscq import FscQResult, fsc_q
from cryoprior.validate.local_resolution import LocalResolution, local_resolution
from cryoprior.validate.poses import (
    PoseErrors,
    ViewDistribution,
    attraction,
    pose_errors,
    view_distribution,
)
from cryoprior.validate.qscore import QScoreResult, expected_q_score, q_scores
from cryoprior.validate.summary import (
    ValidationInputs,
    ValidationReport,
    ValidationSettings,
    validate_maps,
)
from cryoprior.validate.symmetry import symmetry_operators
from cryoprior.validate.truth import TruthComparison, compare_with_truth, real_space_correlation

__all__ = [
    "AtomicModel",
    "DirectionalResolution",
    "FscCurve",
    "FscQResult",
    "GoldStandardFsc",
    "LocalResolution",
    "PoseErrors",
    "QScoreResult",
    "TruthComparison",
    "ValidationInputs",
    "ValidationReport",
    "ValidationSettings",
    "ViewDistribution",
    "attraction",
    "compare_with_truth",
    "conical_fsc",
    "expected_q_score",
    "fourier_shell_correlation",
    "fsc_q",
    "gold_standard_fsc",
    "local_resolution",
    "pose_errors",
    "q_scores",
    "read_atomic_model",
    "real_space_correlation",
    "resolution_at_threshold",
    "symmetry_operators",
    "validate_maps",
    "view_distribution",
]
