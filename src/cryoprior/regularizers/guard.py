"""The guard every learned regularizer passes through before its map goes back to RELION.

1. Greyscale: the regularized map is brought to RELION's greyscale by a least-squares fit
   (scale and offset) to the plain reconstruction inside the particle region - not by
   matching maxima, which a single bright voxel can skew.
2. Spectral trailing: the regularized map is kept only up to the shell where the current
   gold-standard FSC first falls below 1/7 (interpolated between shells), with a raised-
   cosine edge that ends exactly at that shell; beyond it the plain reconstruction is used.
   So nothing the regularizer adds past the resolution the data support reaches RELION.

The report records how much of the regularized map's power the trailing removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoprior.fourier.correlation import crossing_shell
from cryoprior.fourier.grids import fourier_radius, real_space_radius

__all__ = ["GuardSettings", "GuardReport", "fsc_cutoff_shell", "trailing_weights", "apply_guard"]


@dataclass(frozen=True)
class GuardSettings:
    """Guard parameters.

    fsc_threshold: FSC value that ends the regularized band (1/7).
    edge_width_shells: width of the raised-cosine edge below the cut-off, in Fourier shells.
    rescale: fit scale and offset to the plain map in the particle region.
    """

    fsc_threshold: float = 1.0 / 7.0
    edge_width_shells: float = 3.0
    rescale: bool = True


@dataclass(frozen=True)
class GuardReport:
    """What the guard did (for the log).

    cutoff_shell: shell (original box, may be fractional) beyond which the map is plain.
    power_removed_fraction: fraction of the (rescaled) regularized map's power, DC excluded,
        that the trailing replaced by the plain map.
    scale, offset: greyscale fit (1, 0 when not rescaled).
    """

    cutoff_shell: float
    power_removed_fraction: float
    scale: float
    offset: float


def fsc_cutoff_shell(fsc: np.ndarray, *, threshold: float = 1.0 / 7.0) -> float:
    """Where the FSC first falls below ``threshold``, as a fractional shell.

    The package's one crossing rule (:func:`cryoprior.fourier.correlation.crossing_shell`:
    interpolated between shells, shell 0 counts as 1); N//2 (Nyquist) if the FSC never falls
    below the threshold.

    fsc: (N//2+1,) FSC per shell (shell 0 = DC).
    """
    values = np.asarray(fsc, dtype=np.float64)
    shell = float(crossing_shell(values, threshold=threshold))
    return float(values.size - 1) if np.isnan(shell) else shell


def trailing_weights(n: int, *, cutoff_shell: float, edge_width_shells: float) -> np.ndarray:
    """Weights of the regularized map per rfft voxel: 1 up to cutoff - edge, 0 from cutoff on.

    Returns (n, n, n//2+1) float64.
    """
    r = fourier_radius(n)
    if edge_width_shells <= 0:
        return (r < cutoff_shell).astype(np.float64)
    start = cutoff_shell - edge_width_shells
    t = np.clip((r - start) / edge_width_shells, 0.0, 1.0)
    w = 0.5 * (1.0 + np.cos(np.pi * t))
    w[r >= cutoff_shell] = 0.0
    return w


def apply_guard(
    regularized: np.ndarray,
    plain: np.ndarray,
    *,
    fsc: np.ndarray,
    region: np.ndarray | None = None,
    settings: GuardSettings = GuardSettings(),
) -> tuple[np.ndarray, GuardReport]:
    """Limit a regularized map to what the data support (see the module docstring).

    Parameters
    ----------
    regularized: (N, N, N) real-space map from a regularizer.
    plain: (N, N, N) the plain reconstruction of the same half.
    fsc: (N//2+1,) current gold-standard FSC per shell.
    region: (N, N, N) bool or [0, 1] weights of the particle region for the greyscale fit
        (default: the sphere of radius N/2 - 1).
    settings: GuardSettings.

    Returns the guarded (N, N, N) float64 map and a GuardReport. Inputs are not modified.
    """
    reg = np.asarray(regularized, dtype=np.float64)
    pln = np.asarray(plain, dtype=np.float64)
    if reg.shape != pln.shape or reg.ndim != 3 or len(set(reg.shape)) != 1:
        raise ValueError(f"maps must be cubes of one shape, got {reg.shape} and {pln.shape}")
    n = reg.shape[0]
    fsc = np.asarray(fsc, dtype=np.float64)
    if fsc.shape != (n // 2 + 1,):
        raise ValueError(f"fsc must have {n // 2 + 1} shells, got {fsc.shape}")
    scale, offset = 1.0, 0.0
    if settings.rescale:
        if region is None:
            weights = (real_space_radius(n) <= n / 2 - 1).astype(np.float64)
        else:
            weights = np.asarray(region, dtype=np.float64)
        wsum = weights.sum()
        if wsum <= 0:
            raise ValueError("the particle region is empty")
        mean_r = (weights * reg).sum() / wsum
        mean_p = (weights * pln).sum() / wsum
        dr = reg - mean_r
        var_r = (weights * dr * dr).sum()
        if var_r <= 0:
            raise ValueError("the regularized map is constant in the particle region")
        scale = float((weights * dr * (pln - mean_p)).sum() / var_r)
        offset = float(mean_p - scale * mean_r)
        reg = scale * reg + offset
    cutoff = fsc_cutoff_shell(fsc, threshold=settings.fsc_threshold)
    w = trailing_weights(n, cutoff_shell=cutoff, edge_width_shells=settings.edge_width_shells)
    reg_ft = scipy.fft.rfftn(reg)
    pln_ft = scipy.fft.rfftn(pln)
    power = np.abs(reg_ft) ** 2
    power[0, 0, 0] = 0.0
    # rfft stores the x > 0 half once: count those voxels twice for the full-spectrum power
    mult = np.full(reg_ft.shape[-1], 2.0)
    mult[0] = 1.0
    if n % 2 == 0:
        mult[-1] = 1.0
    total = float((power * mult).sum())
    removed = float((power * (1.0 - w) ** 2 * mult).sum()) / total if total > 0 else 0.0
    out = scipy.fft.irfftn(w * reg_ft + (1.0 - w) * pln_ft, s=reg.shape)
    return out, GuardReport(cutoff, removed, scale, offset)
