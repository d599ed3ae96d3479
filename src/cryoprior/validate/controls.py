"""The benchmark's controls: did a refinement report what its particles cannot hold.

Two controls of the paper (Ramirez-Aportela et al. 2022): particles low-passed at a cut-off
must never give a resolution finer than that cut-off, and pure-noise particles must never give
a resolution finer than the initial reference. Each rule is a pure function of the numbers it
is decided on, and carries its own one-sentence statement (``rule``), so that a report states
the rule the verdict was computed with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "CUTOFF_RULE",
    "PURE_NOISE_RULE",
    "SCALE_RULE",
    "CutoffControl",
    "PureNoiseControl",
    "ScaleCheck",
    "cutoff_control",
    "cutoff_reference_angstrom",
    "one_shell_finer_angstrom",
    "pure_noise_control",
    "scale_check",
]

CUTOFF_RULE = (
    "PASS when RELION's final resolution, the gold-standard FSC 0.143 and the FSC 0.143 "
    "against the truth are all at or coarser than what the data hold, within one Fourier "
    "shell (a resolution is only known to a shell). What the data hold is the finer of the "
    "cut-off and the reference: the FSC 0.143 against the truth of the truth itself low-passed "
    "as the particles were, in the validation's mask - a perfect map of these particles, which "
    "reaches past the nominal cut-off because the filter's edge and the mask spread the last "
    "shells' signal into the next."
)
PURE_NOISE_RULE = (
    "PASS when RELION's final resolution and the gold-standard FSC 0.143 are at or coarser "
    "than the initial reference's low-pass, within one Fourier shell (no structure emerged "
    "beyond what the reference held; RELION reports resolutions on the box's shell grid, so a "
    "low-pass between two shells is reported as the finer one)."
)

SCALE_RULE = (
    "The scale is limited by signal and alignment, not by the pixel, when plain RELION's FSC "
    "0.5 against the truth is at least 1.25x the Nyquist resolution (2 x the voxel size)."
)


def one_shell_finer_angstrom(
    resolution_angstrom: float, *, box_size: int, voxel_size_angstrom: float
) -> float:
    """Return the resolution one Fourier shell finer than ``resolution_angstrom`` in a box.

    ``L / (L / d + 1)`` with ``L = box_size * voxel_size_angstrom`` the box edge in Angstrom.

    Examples
    --------
    >>> one_shell_finer_angstrom(20.0, box_size=64, voxel_size_angstrom=2.5)
    17.77777777777778
    """
    edge = box_size * float(voxel_size_angstrom)
    return edge / max(edge / float(resolution_angstrom) + 1.0, 1.0)


def _finest_accepted(
    held_angstrom: float, box_size: int | None, voxel_size_angstrom: float | None
) -> float:
    """One Fourier shell finer than what the data hold; the held resolution without a box."""
    if box_size and voxel_size_angstrom:
        return one_shell_finer_angstrom(
            held_angstrom, box_size=box_size, voxel_size_angstrom=voxel_size_angstrom
        )
    return held_angstrom


def _none_finer(values, limit_angstrom: float) -> bool:
    """Whether every measured resolution (None: not measured) is at or coarser than the limit."""
    return all(v is None or v >= limit_angstrom for v in values)


@dataclass(frozen=True)
class CutoffControl:
    """The cut-off control of one run.

    cutoff_angstrom: the particles' low-pass.
    reference_angstrom: the perfect map's FSC 0.143 against the truth
        (:func:`cutoff_reference_angstrom`), None when not measured.
    one_shell_finer_angstrom: the finest resolution still accepted.
    values: the resolutions judged (Angstrom, None when not measured).
    passed: every measured value is at or coarser than ``one_shell_finer_angstrom``.
    """

    cutoff_angstrom: float
    one_shell_finer_angstrom: float
    values: dict[str, float | None]
    passed: bool
    rule: str = CUTOFF_RULE
    reference_angstrom: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def cutoff_control(
    *,
    cutoff_angstrom: float,
    box_size: int | None,
    voxel_size_angstrom: float | None,
    relion_final_angstrom: float | None,
    gold_standard_fsc_0143_angstrom: float | None,
    truth_fsc_0143_angstrom: float | None,
    reference_angstrom: float | None = None,
) -> CutoffControl:
    """Judge a run of particles low-passed at ``cutoff_angstrom`` (see :data:`CUTOFF_RULE`).

    ``reference_angstrom``: the perfect map's FSC 0.143 against the truth
    (:func:`cutoff_reference_angstrom`); when finer than the cut-off, the tolerance counts from
    it. Without a box size the tolerance is zero (the cut-off or the reference itself).

    Examples
    --------
    >>> c = cutoff_control(cutoff_angstrom=20.0, box_size=64, voxel_size_angstrom=2.5,
    ...     relion_final_angstrom=18.5, gold_standard_fsc_0143_angstrom=21.0,
    ...     truth_fsc_0143_angstrom=None)
    >>> c.passed, round(c.one_shell_finer_angstrom, 2)
    (True, 17.78)
    >>> c = cutoff_control(cutoff_angstrom=20.0, box_size=64, voxel_size_angstrom=2.5,
    ...     relion_final_angstrom=18.5, gold_standard_fsc_0143_angstrom=21.0,
    ...     truth_fsc_0143_angstrom=17.5, reference_angstrom=18.0)
    >>> c.passed, round(c.one_shell_finer_angstrom, 2)  # 160 / (160 / 18 + 1)
    (True, 16.18)
    """
    held = float(cutoff_angstrom)
    if reference_angstrom is not None and math.isfinite(reference_angstrom):
        held = min(held, float(reference_angstrom))
    limit = _finest_accepted(held, box_size, voxel_size_angstrom)
    values = {
        "relion_final_angstrom": relion_final_angstrom,
        "gold_standard_fsc_0143_angstrom": gold_standard_fsc_0143_angstrom,
        "truth_fsc_0143_angstrom": truth_fsc_0143_angstrom,
    }
    passed = _none_finer(values.values(), limit)
    return CutoffControl(
        float(cutoff_angstrom), limit, values, passed, reference_angstrom=reference_angstrom
    )


def cutoff_reference_angstrom(
    truth_map, lowpass, *, mask=None, voxel_size_angstrom: float
) -> float:
    """FSC 0.143 against the truth of the truth low-passed as the particles were.

    A map reconstructed perfectly from low-passed particles is the truth times the same
    filter; its FSC against the truth (in the validation's mask) is the best any map of those
    particles can honestly show, and with a soft filter edge and a mask it crosses 0.143 past
    the nominal cut-off.

    Parameters
    ----------
    truth_map: (n, n, n) real, real space.
    lowpass: (n, n, n//2+1) the particles' filter on the map's rfft grid.
    mask: optional (n, n, n) soft mask, as the validation applies it.
    voxel_size_angstrom: voxel size.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=(32, 32, 32))
    >>> k = np.fft.fftfreq(32) * 32
    >>> r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :17] ** 2)
    >>> hard = (np.rint(r) <= 8).astype(float)  # shells 0-8 kept: FSC 1, then 0
    >>> # 0.143 crossed at shell 8 + (1 - 0.143) = 8.857 of a 64 A box: 64 / 8.857 = 7.23 A
    >>> round(cutoff_reference_angstrom(truth, hard, voxel_size_angstrom=2.0), 2)
    7.23
    """
    from cryoprior.validate.truth import compare_with_truth

    truth = np.asarray(truth_map, dtype=np.float64)
    ideal = np.fft.irfftn(np.fft.rfftn(truth) * lowpass, s=truth.shape, axes=(0, 1, 2))
    comparison = compare_with_truth(
        ideal, truth, mask=mask, voxel_size_angstrom=voxel_size_angstrom
    )
    return comparison.full_map.resolution_angstrom(0.143)


@dataclass(frozen=True)
class PureNoiseControl:
    """The pure-noise control of one run.

    ini_high_angstrom: the initial reference's low-pass.
    relion_final_angstrom: RELION's final resolution (None when the run reported none).
    reached_local_searches, regularized_calls, truth_correlation: context, not judged.
    passed: every measured resolution (RELION's final one, the gold-standard FSC 0.143) is at
        or coarser than ``one_shell_finer_angstrom``.
    one_shell_finer_angstrom: the finest resolution still accepted (``ini_high_angstrom``
        itself when the box is not known).
    gold_standard_fsc_0143_angstrom: the final half-maps' FSC 0.143 (None when not measured).
    """

    ini_high_angstrom: float
    relion_final_angstrom: float | None
    reached_local_searches: bool | None
    regularized_calls: int | None
    truth_correlation: float | None
    passed: bool
    rule: str = PURE_NOISE_RULE
    one_shell_finer_angstrom: float | None = None
    gold_standard_fsc_0143_angstrom: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def pure_noise_control(
    *,
    ini_high_angstrom: float,
    relion_final_angstrom: float | None,
    reached_local_searches: bool | None = None,
    regularized_calls: int | None = None,
    truth_correlation: float | None = None,
    gold_standard_fsc_0143_angstrom: float | None = None,
    box_size: int | None = None,
    voxel_size_angstrom: float | None = None,
) -> PureNoiseControl:
    """Judge a refinement of pure-noise particles (see :data:`PURE_NOISE_RULE`).

    Without ``box_size`` and ``voxel_size_angstrom`` the tolerance is zero (the low-pass
    itself).

    Examples
    --------
    >>> pure_noise_control(ini_high_angstrom=30.0, relion_final_angstrom=30.2).passed
    True
    >>> pure_noise_control(ini_high_angstrom=30.0, relion_final_angstrom=12.0).passed
    False
    >>> c = pure_noise_control(ini_high_angstrom=30.0, relion_final_angstrom=200 / 7,
    ...     box_size=80, voxel_size_angstrom=2.5)  # 30 A lies between shells 6 and 7
    >>> c.passed, round(c.one_shell_finer_angstrom, 2)  # 200 / (200 / 30 + 1)
    (True, 26.09)
    """
    finest = _finest_accepted(float(ini_high_angstrom), box_size, voxel_size_angstrom)
    passed = _none_finer((relion_final_angstrom, gold_standard_fsc_0143_angstrom), finest)
    return PureNoiseControl(
        float(ini_high_angstrom),
        relion_final_angstrom,
        reached_local_searches,
        regularized_calls,
        truth_correlation,
        passed,
        one_shell_finer_angstrom=finest,
        gold_standard_fsc_0143_angstrom=gold_standard_fsc_0143_angstrom,
    )


@dataclass(frozen=True)
class ScaleCheck:
    """Whether a run's resolution is limited by its signal rather than by the pixel.

    nyquist_angstrom: 2 x the voxel size.
    truth_fsc_05_angstrom: the map's FSC 0.5 against the truth (None when not measured).
    ratio: ``truth_fsc_05_angstrom / nyquist_angstrom`` (None without a value).
    factor: the smallest ratio accepted (1.25).
    passed: ``ratio >= factor`` (False without a value).
    """

    nyquist_angstrom: float
    truth_fsc_05_angstrom: float | None
    ratio: float | None
    factor: float
    passed: bool
    rule: str = SCALE_RULE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def scale_check(
    *, voxel_size_angstrom: float, truth_fsc_05_angstrom: float | None, factor: float = 1.25
) -> ScaleCheck:
    """Judge the scale of a case from plain RELION's run (see :data:`SCALE_RULE`).

    Examples
    --------
    >>> c = scale_check(voxel_size_angstrom=2.5, truth_fsc_05_angstrom=6.5)
    >>> c.nyquist_angstrom, c.ratio, c.passed
    (5.0, 1.3, True)
    >>> scale_check(voxel_size_angstrom=4.4, truth_fsc_05_angstrom=9.43).passed
    False
    """
    nyquist = 2.0 * float(voxel_size_angstrom)
    ratio = None if truth_fsc_05_angstrom is None else float(truth_fsc_05_angstrom) / nyquist
    passed = ratio is not None and ratio >= factor
    return ScaleCheck(nyquist, truth_fsc_05_angstrom, ratio, float(factor), passed)
