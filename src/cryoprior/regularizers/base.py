"""The regularizer protocol: what ``cryoprior-extrec`` applies to a half-map.

A regularizer is an object with

- ``name``: str;
- ``guard_by_default`` (optional, default False): whether ``cryoprior-extrec`` passes its
  output through ``regularizers.guard`` unless told otherwise (True for learned priors);
- ``needs_both_halves``: bool. False: ``regularize(half_map, context=...)`` is called
  in each half's process independently. True: ``regularize_pair(half_map_1, half_map_2,
  context=...)`` is called once, in one process, after the two processes met (see
  ``cryoprior.extrec.pairing``), and returns both maps.

Maps are (N, N, N) float arrays on RELION's greyscale, box centre at N//2; outputs must have
the same shape and be finite, or ``cryoprior-extrec`` falls back to the plain map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["RegularizationContext", "Regularizer"]


@dataclass(frozen=True)
class RegularizationContext:
    """What a regularizer may know about the call.

    Attributes
    ----------
    voxel_size_angstrom: pixel size of the map (None if RELION did not say and no model
        file gave it).
    particle_diameter_angstrom: RELION's ``--particle_diameter`` (None if unknown).
    gold_standard_fsc: (N//2+1,) current FSC between the half-sets per shell, or None.
    tau2: (N//2+1,) RELION's signal spectrum per shell, or None.
    iteration: current iteration (None if unknown).
    half: 1, 2, or None for the final joined call.
    mask: (N, N, N) solvent mask in [0, 1], or None.
    options: free-form regularizer options (from ``--option key=value`` or a config file).
    """

    voxel_size_angstrom: float | None = None
    particle_diameter_angstrom: float | None = None
    gold_standard_fsc: np.ndarray | None = None
    tau2: np.ndarray | None = None
    iteration: int | None = None
    half: int | None = None
    mask: np.ndarray | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Regularizer(Protocol):
    """See the module docstring."""

    name: str
    needs_both_halves: bool

    def regularize(self, half_map: np.ndarray, *, context: RegularizationContext) -> np.ndarray:
        """Regularize one half-map (per-half regularizers)."""
        ...

    def regularize_pair(
        self, half_map_1: np.ndarray, half_map_2: np.ndarray, *, context: RegularizationContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """Regularize both half-maps together (joint regularizers)."""
        ...
