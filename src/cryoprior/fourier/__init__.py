"""Fourier-space tools on numpy arrays.

Grids and shells, shell correlation (the FSC kernel and its crossing rule), filters, soft masks,
resampling.

Layouts and conventions are those of :mod:`cryoprior.conventions`. Everything here is a pure
function: float64 arrays out, inputs never modified.
"""

from cryoprior.fourier.correlation import crossing_shell, fourier_correlation, shell_sums
from cryoprior.fourier.filters import (
    apply_filter,
    bfactor_filter,
    butterworth_lowpass,
    raised_cosine_lowpass,
)
from cryoprior.fourier.grids import (
    fourier_radius,
    frequency_grid,
    frequency_grid_rfft,
    radial_average,
    real_space_radius,
    shell_counts,
    shell_index,
)
from cryoprior.fourier.masks import soft_mask_outside_sphere, soft_sphere
from cryoprior.fourier.resample import fourier_crop, fourier_pad, resample_fourier

__all__ = [
    "apply_filter",
    "bfactor_filter",
    "butterworth_lowpass",
    "crossing_shell",
    "fourier_correlation",
    "fourier_crop",
    "fourier_pad",
    "fourier_radius",
    "frequency_grid",
    "frequency_grid_rfft",
    "radial_average",
    "raised_cosine_lowpass",
    "real_space_radius",
    "resample_fourier",
    "shell_counts",
    "shell_index",
    "shell_sums",
    "soft_mask_outside_sphere",
    "soft_sphere",
]
