"""A regularizer applied once to a refinement's final half-maps (post-processing).

RELION makes the final half-maps of an auto-refine itself, and the hook leaves the final joined
map plain, so a refinement's result is unregularized whatever ran in its loop. Applying the
prior once to the final unfiltered half-maps, each independently and through the hook's guard,
is what the realistic benchmark measures as "then prior + guard once"
(``benchmarks/results/realistic/``): the same function makes the benchmark's arms and the
output of ``cryoprior enhance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cryoprior.regularizers.base import RegularizationContext
from cryoprior.regularizers.guard import GuardSettings, apply_guard
from cryoprior.validate.fsc import fourier_shell_correlation

__all__ = ["postprocess_half_maps", "prior_enhancer"]


def prior_enhancer(
    weights: str = "default",
    *,
    voxel_size_angstrom: float,
    particle_diameter_angstrom: float | None = None,
    device: str | None = None,
    num_threads: int = 1,
) -> Callable[[np.ndarray], np.ndarray]:
    """Return the hook's learned prior as a function of one (N, N, N) half-map.

    As the hook applies it (:class:`~cryoprior.regularizers.prior.PriorRegularizer`), without a
    current FSC: the network runs at its own voxel size. ``weights``: a shipped name or a
    ``.pt`` file; ``num_threads``: torch threads (0: torch's default, every core).
    """
    from cryoprior.regularizers.prior import PriorRegularizer

    regularizer = PriorRegularizer(weights, device=device, num_threads=num_threads)
    context = RegularizationContext(
        voxel_size_angstrom=voxel_size_angstrom,
        particle_diameter_angstrom=particle_diameter_angstrom,
    )
    return lambda half: regularizer.regularize(half, context=context)


def postprocess_half_maps(
    half_map_1: np.ndarray,
    half_map_2: np.ndarray,
    enhance: Callable[[np.ndarray], np.ndarray],
    *,
    guard: GuardSettings | None,
    enhanced: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apply a regularizer once to each final half-map, optionally through the guard.

    Parameters
    ----------
    half_map_1, half_map_2: (N, N, N) a refinement's final unfiltered half-maps; not modified.
    enhance: one half-map -> its regularized (N, N, N) map (each half independently, as in
        the refinement).
    guard: the guard's settings, or None for the map as ``enhance`` returns it. The guard's
        FSC is the unmasked FSC of the two half-maps (as RELION's gold-standard FSC that the
        hook's guard receives).
    enhanced: the two regularized half-maps when already computed (``enhance`` is not called).

    Returns
    -------
    (processed half 1, processed half 2, info): float64 (N, N, N) maps; ``info`` holds the
    guard's cut-off shells and power removed per half (empty without the guard).
    """
    h1 = np.asarray(half_map_1, dtype=np.float64)
    h2 = np.asarray(half_map_2, dtype=np.float64)
    if enhanced is None:
        enhanced = (enhance(h1), enhance(h2))
    e1, e2 = (np.asarray(e, dtype=np.float64) for e in enhanced)
    if guard is None:
        return e1, e2, {}
    fsc = fourier_shell_correlation(h1, h2)
    # cross-half support correlates each half's prior map with the other half's plain map
    g1, r1 = apply_guard(e1, h1, fsc=fsc, settings=guard, other_plain=h2)
    g2, r2 = apply_guard(e2, h2, fsc=fsc, settings=guard, other_plain=h1)
    info: dict[str, Any] = {
        "guard_method": guard.method,
        "cutoff_shell": [r1.cutoff_shell, r2.cutoff_shell],
        "power_removed_fraction": [r1.power_removed_fraction, r2.power_removed_fraction],
    }
    if guard.cross_half_support:
        info["support_end_shell"] = [r1.support_end_shell, r2.support_end_shell]
    return g1, g2, info
