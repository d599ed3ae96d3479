"""The learned prior as a regularizer: ``cryoprior-extrec --regularizer prior``.

Each half-map is enhanced independently by the network of :mod:`cryoprior.prior` (shipped
weights, loaded offline by name). ``guard_by_default`` is True: ``cryoprior-extrec`` passes the
output through :mod:`cryoprior.regularizers.guard` (greyscale fit; beyond the current
FSC = 1/7 shell each shell capped at the amplitude the data hold: guard v2, by default with
cross-half support), and any failure here makes it fall back to the plain map.

Resolution-adaptive (issue 17, docs/prior_inference.md): the current resolution d is where the
call's gold-standard FSC first falls below 1/7 (the guard's cut-off); the network runs at the
voxel size max(1.5 A, d / ``voxels_per_resolution``) on the whole map, its group normalisation
taking its statistics from the particle region (``normalisation``), so the output does not
depend on how the map is cut. Without an FSC the model's 1.5 A voxel is used.

Threads: RELION's two MPI followers call the hook for the two half-maps at the same time, so
two regularizer processes share the machine's cores; each sets ``num_threads`` torch threads
(default :data:`DEFAULT_THREADS_PER_HALF`, see docs/prior_inference.md for the measurement;
0 leaves torch's default, one per core).

Options (``--option key=value``): weights (name or checkpoint path, default 'default'),
tile_size, overlap, batch_size, device, num_threads, keep_beyond_model_nyquist,
voxels_per_resolution (0 or 'none': always the model's voxel), normalisation
(tile | map | particle).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from cryoprior.regularizers.base import RegularizationContext

__all__ = [
    "DEFAULT_THREADS_PER_HALF",
    "DEFAULT_VOXELS_PER_RESOLUTION",
    "PriorRegularizer",
    "current_resolution_angstrom",
]

logger = logging.getLogger(__name__)

#: The network's voxel is max(model voxel, d / this), d the current FSC = 1/7 resolution
#: (measured on benchmarks/prior_eval.py's held-out maps: docs/prior_inference.md).
DEFAULT_VOXELS_PER_RESOLUTION = 4.0
#: Largest tile edge at the network's voxel: maps up to it run whole, in one pass.
DEFAULT_TILE_SIZE = 256
#: torch threads per half-map process (two run at once on the same cores).
DEFAULT_THREADS_PER_HALF = 1


def current_resolution_angstrom(
    fsc: np.ndarray | None, *, box_size: int, voxel_size_angstrom: float
) -> float | None:
    """Return where the FSC first falls below 1/7, in Angstrom (the guard's cut-off).

    fsc: (box_size//2+1,) gold-standard FSC per shell, or None (then None). Nyquist when it
    never falls below 1/7.

    >>> current_resolution_angstrom(np.array([1, 1, 0.5, 0.1, 0]), box_size=8,
    ...                             voxel_size_angstrom=2.0)
    5.530864
    """
    from cryoprior.regularizers.guard import fsc_cutoff_shell

    if fsc is None:
        return None
    values = np.asarray(fsc, dtype=np.float64)
    if values.shape != (box_size // 2 + 1,) or not np.all(np.isfinite(values)):
        return None
    shell = fsc_cutoff_shell(values)
    if not shell > 0:
        return None
    return round(float(box_size * voxel_size_angstrom / shell), 6)


def _optional_float(value) -> float | None:
    if value is None or str(value).strip().lower() in ("", "none", "0", "0.0"):
        return None
    return float(value)


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
        num_threads: int = DEFAULT_THREADS_PER_HALF,
        keep_beyond_model_nyquist: bool = True,
        voxels_per_resolution: float | str | None = DEFAULT_VOXELS_PER_RESOLUTION,
        normalisation: str | None = None,
    ):
        from cryoprior.prior.infer import load_prior

        self.settings = self.default_settings(
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            keep_beyond_model_nyquist=keep_beyond_model_nyquist,
            voxels_per_resolution=voxels_per_resolution,
            normalisation=normalisation,
        )
        self.num_threads = int(num_threads)
        self.prior = load_prior(weights)
        self.last_info: dict | None = None

    @staticmethod
    def default_settings(
        *,
        tile_size: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        keep_beyond_model_nyquist: bool = True,
        voxels_per_resolution: float | str | None = DEFAULT_VOXELS_PER_RESOLUTION,
        normalisation: str | None = None,
    ):
        """Return the InferenceSettings the regularizer uses (its defaults, or as given)."""
        from cryoprior.prior.infer import InferenceSettings

        defaults = InferenceSettings()
        return InferenceSettings(
            tile_size=DEFAULT_TILE_SIZE if tile_size is None else int(tile_size),
            overlap=defaults.overlap if overlap is None else int(overlap),
            batch_size=defaults.batch_size if batch_size is None else int(batch_size),
            device=None if device in (None, "", "auto") else str(device),
            keep_beyond_model_nyquist=bool(keep_beyond_model_nyquist),
            voxels_per_resolution=_optional_float(voxels_per_resolution),
            normalisation="particle" if normalisation is None else str(normalisation),
            return_mask=False,
        )

    def regularize(self, half_map: np.ndarray, *, context: RegularizationContext) -> np.ndarray:
        """Enhance one half-map; raises ValueError without a voxel size."""
        from cryoprior.prior.infer import enhance_map

        if context.voxel_size_angstrom is None:
            raise ValueError("the prior needs the voxel size")
        threads = None
        if self.num_threads > 0:  # the hook runs this in its own process
            import torch

            torch.set_num_threads(self.num_threads)
            threads = torch.get_num_threads()
        resolution = current_resolution_angstrom(
            context.gold_standard_fsc,
            box_size=np.shape(half_map)[0],
            voxel_size_angstrom=context.voxel_size_angstrom,
        )
        result = enhance_map(
            half_map,
            voxel_size_angstrom=context.voxel_size_angstrom,
            prior=self.prior,
            particle_diameter_angstrom=context.particle_diameter_angstrom,
            resolution_angstrom=resolution,
            settings=self.settings,
        )
        self.last_info = dict(result.info, torch_threads=threads, cores=os.cpu_count())
        logger.info(
            "prior: current resolution %s A, network voxel %.2f A (box %d, %d tile(s)), "
            "%s torch thread(s), %.1f s",
            "unknown" if resolution is None else f"{resolution:.2f}",
            result.info["model_voxel_size_angstrom"],
            result.info["model_box"],
            result.info["tiles"],
            "default" if threads is None else threads,
            result.info["seconds"],
        )
        return result.map

    def regularize_pair(
        self, half_map_1: np.ndarray, half_map_2: np.ndarray, *, context: RegularizationContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each half independently (nothing is shared between them)."""
        return (
            self.regularize(half_map_1, context=context),
            self.regularize(half_map_2, context=context),
        )
