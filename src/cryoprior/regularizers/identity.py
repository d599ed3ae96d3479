"""The identity regularizer: RELION's own (plain) reconstruction, unchanged."""

from __future__ import annotations

import numpy as np

from cryoprior.regularizers.base import RegularizationContext

__all__ = ["IdentityRegularizer"]


class IdentityRegularizer:
    """Returns copies of its inputs: ``cryoprior-extrec --regularizer none`` is plain RELION."""

    name = "none"
    needs_both_halves = False
    guard_by_default = False

    def __init__(self, **options):
        if options:
            raise ValueError(f"the 'none' regularizer takes no options, got {sorted(options)}")

    def regularize(self, half_map: np.ndarray, *, context: RegularizationContext) -> np.ndarray:
        """Return a copy of ``half_map``."""
        return np.array(half_map, copy=True)

    def regularize_pair(
        self, half_map_1: np.ndarray, half_map_2: np.ndarray, *, context: RegularizationContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of both half-maps."""
        return np.array(half_map_1, copy=True), np.array(half_map_2, copy=True)
