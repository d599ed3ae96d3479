"""The learned prior as a regularizer: ``cryoprior-extrec --regularizer prior``.

Each half-map is enhanced independently by the network of :mod:`cryoprior.prior` (shipped
weights, loaded offline by name). ``guard_by_default`` is True: ``cryoprior-extrec`` passes the
output through :mod:`cryoprior.regularizers.guard` (greyscale fit, spectral trailing at the
current FSC = 1/7), and any failure here makes it fall back to the plain map.

Options (``--option key=value``): weights (name or checkpoint path, default 'default'),
tile_size, overlap, batch_size, device, num_threads, keep_beyond_model_nyquist.
"""

from __future__ import annotations

import numpy as np

from cryoprior.regularizers.base import RegularizationContext

__all__ = ["PriorRegularizer"]


class PriorRegularizer:
    """Applies the learned prior to each half-map (see the module docstring)."""

    name = "prior"
    needs_both_halves = False
    guard_by_default = True

    def __init__(
        self,
        weights: str = "default",
        *,
        tile_size: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        num_threads: int = 0,
        keep_beyond_model_nyquist: bool = True,
    ):
        from cryoprior.prior.infer import InferenceSettings, load_prior

        defaults = InferenceSettings()
        self.settings = InferenceSettings(
            tile_size=defaults.tile_size if tile_size is None else int(tile_size),
            overlap=defaults.overlap if overlap is None else int(overlap),
            batch_size=defaults.batch_size if batch_size is None else int(batch_size),
            device=None if device in (None, "", "auto") else str(device),
            keep_beyond_model_nyquist=bool(keep_beyond_model_nyquist),
        )
        self.num_threads = int(num_threads)
        self.prior = load_prior(weights)
        self.last_info: dict | None = None

    def regularize(self, half_map: np.ndarray, *, context: RegularizationContext) -> np.ndarray:
        """Enhance one half-map; raises ValueError without a voxel size."""
        from cryoprior.prior.infer import enhance_map

        if context.voxel_size_angstrom is None:
            raise ValueError("the prior needs the voxel size")
        if self.num_threads > 0:  # the hook runs this in its own process
            import torch

            torch.set_num_threads(self.num_threads)
        result = enhance_map(
            half_map,
            voxel_size_angstrom=context.voxel_size_angstrom,
            prior=self.prior,
            particle_diameter_angstrom=context.particle_diameter_angstrom,
            settings=self.settings,
        )
        self.last_info = result.info
        return result.map

    def regularize_pair(
        self, half_map_1: np.ndarray, half_map_2: np.ndarray, *, context: RegularizationContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each half independently (nothing is shared between them)."""
        return (
            self.regularize(half_map_1, context=context),
            self.regularize(half_map_2, context=context),
        )
