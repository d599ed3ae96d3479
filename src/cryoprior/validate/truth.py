"""Scores against the ground truth of a simulation.

FSC of the final map and of each half-map against the true map, and the real-space correlation
in a mask.

A regularizer can make the two half-maps agree with each other without making either of them
right; comparing each map with the truth separates the two. For a map against a perfect
reference the usual threshold is FSC = 0.5, which corresponds to the half-map FSC = 0.143
(Rosenthal & Henderson, J. Mol. Biol. 333:721, 2003); both are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoprior.validate.fsc import FscCurve, fourier_shell_correlation

__all__ = ["TruthComparison", "compare_with_truth", "real_space_correlation"]


def real_space_correlation(map_1, map_2, *, mask=None) -> float:
    """Pearson correlation of two maps, weighted by a (soft) mask.

    ``CC = sum w (a - <a>_w)(b - <b>_w) / sqrt(sum w (a - <a>_w)^2 * sum w (b - <b>_w)^2)``
    with the weighted means ``<a>_w = sum w a / sum w``; without a mask w = 1.

    Parameters
    ----------
    map_1, map_2: real arrays, real space, same shape (any dimensionality).
    mask: optional real array of weights >= 0, same shape.

    Returns
    -------
    The correlation in [-1, 1]; 0 when either map is constant inside the mask.

    Example
    -------
    >>> a = np.random.default_rng(0).normal(size=(8, 8, 8))
    >>> round(real_space_correlation(a, 2.0 * a + 3.0), 6), round(real_space_correlation(a, -a), 6)
    (1.0, -1.0)
    """
    a = np.asarray(map_1, dtype=np.float64)
    b = np.asarray(map_2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} and {b.shape}")
    w = np.ones_like(a) if mask is None else np.asarray(mask, dtype=np.float64)
    if w.shape != a.shape:
        raise ValueError(f"mask shape {w.shape} differs from the maps' {a.shape}")
    if np.any(w < 0):
        raise ValueError("mask weights must be >= 0")
    total = w.sum()
    if total <= 0:
        raise ValueError("the mask is empty")
    da = a - (w * a).sum() / total
    db = b - (w * b).sum() / total
    den = np.sqrt((w * da * da).sum() * (w * db * db).sum())
    return float((w * da * db).sum() / den) if den > 0 else 0.0


@dataclass(frozen=True)
class TruthComparison:
    """A map (and optionally its half-maps) against the true map.

    Attributes
    ----------
    full_map: FSC of the final map against the truth.
    half_map_1, half_map_2: FSC of each half-map against the truth (None if not given).
    correlation_full_map: real-space correlation of the final map with the truth in the mask.
    correlation_half_maps: the same for each half-map (None if not given).
    masked: whether a mask was applied to the maps before the FSCs and weighted the
        correlations.
    """

    full_map: FscCurve
    half_map_1: FscCurve | None
    half_map_2: FscCurve | None
    correlation_full_map: float
    correlation_half_maps: tuple[float, float] | None
    masked: bool

    def to_dict(self) -> dict:
        """JSON-ready: resolutions at 0.5 and 0.143, correlations and curves."""
        out = {
            "masked": self.masked,
            "full_map": self.full_map.to_dict(),
            "correlation_full_map": self.correlation_full_map,
        }
        if self.half_map_1 is not None and self.half_map_2 is not None:
            out["half_map_1"] = self.half_map_1.to_dict()
            out["half_map_2"] = self.half_map_2.to_dict()
            out["correlation_half_maps"] = list(self.correlation_half_maps or ())
        return out


def compare_with_truth(
    full_map,
    truth_map,
    *,
    half_map_1=None,
    half_map_2=None,
    mask=None,
    voxel_size_angstrom: float,
) -> TruthComparison:
    """FSC and real-space correlation of a map, and of its half-maps, against the true map.

    Parameters
    ----------
    full_map: real array, real space, shape (n, n, n): the final (joined) map.
    truth_map: real array, real space, shape (n, n, n): the ground truth, on the same grid
        and greyscale-independent (FSC and correlation ignore scale and offset).
    half_map_1, half_map_2: optional real arrays, real space, shape (n, n, n).
    mask: optional real array, real space, shape (n, n, n), multiplied into every map before
        the FSC and used as weights of the correlation.
    voxel_size_angstrom: voxel size.

    Returns
    -------
    :class:`TruthComparison`. Inputs are not modified.

    Example
    -------
    >>> t = np.random.default_rng(0).normal(size=(16, 16, 16))
    >>> c = compare_with_truth(t + 0.1, t, voxel_size_angstrom=2.0)
    >>> round(c.correlation_full_map, 6), c.full_map.resolution_angstrom(0.5)
    (1.0, 4.0)
    """
    full = np.asarray(full_map, dtype=np.float64)
    truth = np.asarray(truth_map, dtype=np.float64)
    if full.shape != truth.shape:
        raise ValueError(f"map shape {full.shape} differs from the truth's {truth.shape}")
    n = full.shape[-1]
    voxel = float(voxel_size_angstrom)

    def curve(m: np.ndarray) -> FscCurve:
        return FscCurve(fourier_shell_correlation(m, truth, mask=mask), n, voxel)

    halves = None
    correlations = None
    if (half_map_1 is None) != (half_map_2 is None):
        raise ValueError("give both half-maps or neither")
    if half_map_1 is not None:
        halves = tuple(np.asarray(h, dtype=np.float64) for h in (half_map_1, half_map_2))
        for h in halves:
            if h.shape != truth.shape:
                raise ValueError(f"half-map shape {h.shape} differs from the truth's {truth.shape}")
        correlations = (
            real_space_correlation(halves[0], truth, mask=mask),
            real_space_correlation(halves[1], truth, mask=mask),
        )
    return TruthComparison(
        full_map=curve(full),
        half_map_1=curve(halves[0]) if halves else None,
        half_map_2=curve(halves[1]) if halves else None,
        correlation_full_map=real_space_correlation(full, truth, mask=mask),
        correlation_half_maps=correlations,
        masked=mask is not None,
    )
