"""The guard every learned regularizer passes through before its map goes back to RELION.

1. Greyscale: the regularized map is brought to RELION's greyscale by a least-squares fit
   (scale and offset) to the plain reconstruction inside the particle region - not by
   matching maxima, which a single bright voxel can skew.
2. Spectral limit, one of two methods (``GuardSettings.method``):

   - ``"trailing"`` (guard v1): the regularized map is kept only up to the shell where the
     current gold-standard FSC first falls below 1/7 (interpolated between shells), with a
     raised-cosine edge that ends exactly at that shell; beyond it the plain reconstruction is
     used. So nothing the regularizer adds past the resolution the data support reaches RELION
     - but neither does the regularizer's noise removal there: the plain map's noise comes back.
   - ``"bounded"`` (guard v2, the default; docs/guard.md): up to the same edge the regularized map is kept
     as it is; beyond it, in each Fourier shell s, the regularized map is kept but its RMS
     amplitude is capped at ``sqrt(FSC_s)`` times the plain map's RMS amplitude in that shell
     - the expected amplitude of the signal a half-map holds there (for two independent
     halves of equal SNR, FSC_s = signal power / total power) - and shells whose FSC is not
     significantly above zero (below ``significance_sigmas`` / sqrt(2 n_s), n_s the shell's
     half-complex voxels: the SD of the FSC of two independent noise maps) are set to zero,
     and so is every shell after the first such one (the data's support has ended there; a
     later shell that passes by chance is not support) - below the cut-off too, where only the
     few-voxel lowest shells of pure noise can be affected. Corners beyond Nyquist (no FSC)
     are set to zero.
     So beyond the cut-off the regularizer may remove noise (its output there is never larger
     than the signal the data hold), but where the data hold nothing the output holds nothing;
     the plain map's noise is never put back. The edge ends at the lower face of the first
     shell (RELION's rounded shells) whose FSC is below the threshold, so that no voxel of a
     shell the data do not support carries the regularized map unbounded.

   With ``cross_half_support`` the support also ends where the regularized map of this half
   stops correlating with the *other* half's plain map (the same ``significance_sigmas``
   floor): the two halves can share content beyond the data's resolution that is not the
   signal (e.g. interpolation leakage past a sharp cut-off), which the FSC of the plain halves
   takes for signal; a regularizer that extrapolates correlates with the truth there, but not
   with the other half's data. Only one number per shell crosses between the halves, as with
   the FSC, so the halves stay independent.

The report records how much of the regularized map's power the spectral limit removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoprior.conventions import shell_index
from cryoprior.fourier.correlation import crossing_shell
from cryoprior.fourier.grids import fourier_radius, real_space_radius

__all__ = [
    "GUARD_METHODS",
    "HOOK_GUARD",
    "GuardReport",
    "GuardSettings",
    "apply_guard",
    "cross_half_support_end",
    "fsc_cutoff_shell",
    "shell_amplitude_limit",
    "significant_fsc",
    "trailing_weights",
]

#: The guard's spectral methods: "bounded" (v2, the default) and "trailing" (v1).
GUARD_METHODS = ("trailing", "bounded")


@dataclass(frozen=True)
class GuardSettings:
    """Guard parameters.

    fsc_threshold: FSC value that ends the freely regularized band (1/7).
    edge_width_shells: width of the raised-cosine edge below the cut-off, in Fourier shells.
    rescale: fit scale and offset to the plain map in the particle region.
    method: "bounded" (v2, the default: the regularized map beyond the cut-off, its
        amplitude per shell capped by what the data hold; see the module docstring and
        docs/guard.md) or "trailing" (v1: the plain map beyond the cut-off).
    significance_sigmas: "bounded" only: a shell's FSC counts as signal only above this many
        SDs of the FSC of pure noise (1 / sqrt(2 n_s)); the first shell below it and all
        shells after it are set to zero.
    cross_half_support: "bounded" only: the support also ends at the first shell where the
        regularized map does not correlate with the other half's plain map above the same
        floor (:func:`cross_half_support_end`; :func:`apply_guard` then needs ``other_plain``).
        Off here, since it needs the other half; the hook turns it on with guard v2
        (``cryoprior-extrec --guard-cross-half``, its default).
    """

    fsc_threshold: float = 1.0 / 7.0
    edge_width_shells: float = 3.0
    rescale: bool = True
    method: str = "bounded"
    significance_sigmas: float = 3.0
    cross_half_support: bool = False

    def __post_init__(self):
        """Refuse an unknown method or a negative significance."""
        if self.method not in GUARD_METHODS:
            raise ValueError(
                f"unknown guard method {self.method!r}; choose one of {', '.join(GUARD_METHODS)}"
            )
        if not self.significance_sigmas >= 0:
            raise ValueError("significance_sigmas must be >= 0")


#: The guard of ``cryoprior-extrec --guard`` by default: guard v2 with cross-half support (the
#: two half calls meet; one half alone falls back to guard v2 without it).
HOOK_GUARD = GuardSettings(method="bounded", cross_half_support=True)


@dataclass(frozen=True)
class GuardReport:
    """What the guard did (for the log).

    cutoff_shell: shell (original box, may be fractional) beyond which the regularized map is
        no longer kept as it is.
    power_removed_fraction: fraction of the (rescaled) regularized map's power, DC excluded,
        that the spectral limit removed ("trailing": replaced by the plain map; "bounded":
        the power of the difference between the regularized map and the output).
    scale, offset: greyscale fit (1, 0 when not rescaled).
    method: the spectral method used.
    support_end_shell: with cross-half support, the first shell the other half did not
        support (None otherwise).
    """

    cutoff_shell: float
    power_removed_fraction: float
    scale: float
    offset: float
    method: str = "trailing"
    support_end_shell: int | None = None


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


def significant_fsc(fsc: np.ndarray, *, n: int, sigmas: float = 3.0) -> np.ndarray:
    """Clip the FSC to [0, 1] and zero it from the first shell not significantly above 0.

    A shell of n_s half-complex voxels (RELION's rounded shells) is significant when its FSC
    exceeds ``sigmas / sqrt(2 n_s)``: the FSC of two independent Gaussian noise maps over such
    a shell has mean 0 and SD 1 / sqrt(2 n_s). The data's support ends at the first shell
    (from shell 1 on) that is not: a later shell that passes by chance (3 SD: about 1 in 740
    shells of pure noise) is not support. Shell 0 (the mean) is 1.

    fsc: (n//2+1,) FSC per shell. Returns (n//2+1,) float64.
    """
    values = np.clip(np.asarray(fsc, dtype=np.float64), 0.0, 1.0)
    counts = np.bincount(shell_index(n).ravel(), minlength=n // 2 + 1)[: n // 2 + 1]
    floor = sigmas / np.sqrt(2.0 * np.maximum(counts, 1))
    out = values.copy()
    out[0] = 1.0
    failing = np.flatnonzero(values[1:] <= floor[1:])
    if failing.size:
        out[failing[0] + 1 :] = 0.0
    return out


def cross_half_support_end(
    regularized_rfft: np.ndarray, other_plain_rfft: np.ndarray, *, n: int, sigmas: float = 3.0
) -> int:
    """Return the first shell (from 1) where the regularized map stops matching the other half.

    The correlation per shell is ``Re sum(R conj(O)) / sqrt(sum |R|^2 sum |O|^2)`` over the
    shell's half-complex voxels (an FSC between the regularized map of one half and the plain
    map of the other); a shell supports the map when it exceeds ``sigmas / sqrt(2 n_s)``, the
    floor of :func:`significant_fsc`. Returns n//2+1 when every shell does.

    regularized_rfft, other_plain_rfft: (n, n, n//2+1) rfft of the two maps.
    """
    idx = shell_index(n)
    size = n // 2 + 1
    inside = idx < size
    shells = idx[inside]
    r, o = regularized_rfft[inside], other_plain_rfft[inside]
    cross = np.bincount(shells, weights=(r * np.conj(o)).real, minlength=size)
    power_r = np.bincount(shells, weights=np.abs(r) ** 2, minlength=size)
    power_o = np.bincount(shells, weights=np.abs(o) ** 2, minlength=size)
    counts = np.bincount(shells, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.nan_to_num(cross / np.sqrt(power_r * power_o), nan=0.0)
    floor = sigmas / np.sqrt(2.0 * np.maximum(counts, 1))
    failing = np.flatnonzero(corr[1:] <= floor[1:])
    return int(failing[0] + 1) if failing.size else size


def shell_amplitude_limit(
    regularized_rfft: np.ndarray, plain_rfft: np.ndarray, fsc: np.ndarray, *, n: int
) -> np.ndarray:
    """Compute per-shell factors in [0, 1] capping the regularized map's RMS per shell.

    The cap is ``sqrt(fsc_s)`` times the plain map's RMS in the shell; a factor never raises.
    regularized_rfft, plain_rfft: (n, n, n//2+1) rfft of the two maps; fsc: (n//2+1,) FSC per
    shell in [0, 1] (e.g. from :func:`significant_fsc`). Returns (n//2+2,) float64: shells
    0..n//2, and one more for the corners beyond Nyquist (factor 0).
    """
    idx = np.minimum(shell_index(n), n // 2 + 1)
    size = n // 2 + 2
    power_r = np.bincount(
        idx.ravel(), weights=(np.abs(regularized_rfft) ** 2).ravel(), minlength=size
    )
    power_p = np.bincount(idx.ravel(), weights=(np.abs(plain_rfft) ** 2).ravel(), minlength=size)
    allowed = np.append(np.asarray(fsc, dtype=np.float64), 0.0) * power_p
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(power_r > allowed, np.sqrt(allowed / power_r), 1.0)
    factor = np.nan_to_num(factor, nan=0.0, posinf=0.0)
    factor[-1] = 0.0
    return np.clip(factor, 0.0, 1.0)


def apply_guard(
    regularized: np.ndarray,
    plain: np.ndarray,
    *,
    fsc: np.ndarray,
    mask: np.ndarray | None = None,
    settings: GuardSettings = GuardSettings(),
    other_plain: np.ndarray | None = None,
) -> tuple[np.ndarray, GuardReport]:
    """Limit a regularized map to what the data support (see the module docstring).

    Parameters
    ----------
    regularized: (N, N, N) real-space map from a regularizer.
    plain: (N, N, N) the plain reconstruction of the same half.
    fsc: (N//2+1,) current gold-standard FSC per shell.
    mask: (N, N, N) bool or [0, 1] weights of the particle region for the greyscale fit
        (default: the sphere of radius N/2 - 1).
    settings: GuardSettings.
    other_plain: (N, N, N) the other half's plain reconstruction (needed, and only used, with
        ``settings.cross_half_support``).

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
    if not np.all(np.isfinite(fsc)):
        raise ValueError("the FSC has non-finite values")
    cross_half = settings.method == "bounded" and settings.cross_half_support
    if cross_half and (other_plain is None or np.shape(other_plain) != reg.shape):
        raise ValueError("cross-half support needs the other half's plain map, of the same shape")
    support_end = None
    scale, offset = 1.0, 0.0
    if settings.rescale:
        if mask is None:
            weights = (real_space_radius(n) <= n / 2 - 1).astype(np.float64)
        else:
            weights = np.asarray(mask, dtype=np.float64)
        wsum = weights.sum()
        if wsum <= 0:
            raise ValueError("the particle region (mask) is empty")
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
    reg_ft = scipy.fft.rfftn(reg)
    pln_ft = scipy.fft.rfftn(pln)
    if settings.method == "bounded":
        # the edge ends at the lower face of the first rounded shell below the threshold
        # (the DC term is no shell: two zero-mean half-maps can have any FSC there)
        below = np.flatnonzero(fsc[1:] < settings.fsc_threshold) + 1
        if below.size:
            cutoff = min(cutoff, max(float(below[0]) - 0.5, 0.0))
        w = trailing_weights(n, cutoff_shell=cutoff, edge_width_shells=settings.edge_width_shells)
        significant = significant_fsc(fsc, n=n, sigmas=settings.significance_sigmas)
        if cross_half:
            other_ft = scipy.fft.rfftn(np.asarray(other_plain, dtype=np.float64))
            support_end = cross_half_support_end(
                reg_ft, other_ft, n=n, sigmas=settings.significance_sigmas
            )
            significant[support_end:] = 0.0
        factor = shell_amplitude_limit(reg_ft, pln_ft, significant, n=n)
        # a shell whose FSC is not significant holds nothing, below the cut-off too (the FSC of
        # few-voxel low shells of pure noise can cross 1/7 by chance)
        keep = np.append(significant > 0, False).astype(np.float64)
        idx = np.minimum(shell_index(n), n // 2 + 1)
        out_ft = reg_ft * (w * keep[idx] + (1.0 - w) * factor[idx])
        out_ft[0, 0, 0] = reg_ft[0, 0, 0]
        removed_ft = reg_ft - out_ft
    else:
        w = trailing_weights(n, cutoff_shell=cutoff, edge_width_shells=settings.edge_width_shells)
        out_ft = w * reg_ft + (1.0 - w) * pln_ft
        removed_ft = (1.0 - w) * reg_ft
    power = np.abs(reg_ft) ** 2
    power[0, 0, 0] = 0.0
    lost = np.abs(removed_ft) ** 2
    lost[0, 0, 0] = 0.0
    # rfft stores the x > 0 half once: count those voxels twice for the full-spectrum power
    mult = np.full(reg_ft.shape[-1], 2.0)
    mult[0] = 1.0
    if n % 2 == 0:
        mult[-1] = 1.0
    total = float((power * mult).sum())
    removed = float((lost * mult).sum()) / total if total > 0 else 0.0
    out = scipy.fft.irfftn(out_ft, s=reg.shape)
    return out, GuardReport(cutoff, removed, scale, offset, settings.method, support_end)
