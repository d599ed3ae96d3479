"""Half-map reconstruction from RELION's Fourier data and weights (as relion_external_reconstruct)."""

from cryoprior.reconstruct.relion_map import (
    ReconstructionOptions,
    reconstruct_from_arrays,
)

__all__ = ["ReconstructionOptions", "reconstruct_from_arrays"]
