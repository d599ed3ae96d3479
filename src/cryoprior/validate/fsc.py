"""Fourier shell correlation, resolution at a threshold, and the gold-standard FSC.

The gold-standard FSC of two half-maps comes with the phase-randomisation correction of masked FSCs
(Chen et al., Ultramicroscopy 135:24, 2013), computed as ``relion_postprocess`` (RELION 3.1)
computes them.

Shells are those of :mod:`cryoprior.conventions`: ``ROUND(|k|)`` with |k| in Fourier voxels,
summed over the stored voxels of the half-complex transform (as RELION's ``getFSC``), shells
0..n//2. Resolution of shell s is ``n * voxel_size_angstrom / s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from cryoprior.fourier.correlation import crossing_shell, fourier_correlation
from cryoprior.fourier.grids import fourier_radius, shell_resolution_angstrom

__all__ = [
    "FscCurve",
    "GoldStandardFsc",
    "fourier_shell_correlation",
    "gold_standard_fsc",
    "randomize_phases_beyond",
    "resolution_at_threshold",
]

logger = logging.getLogger(__name__)


def fourier_shell_correlation(map_1, map_2, *, mask=None) -> np.ndarray:
    """FSC between two real maps, shell by shell.

    ``FSC(s) = sum Re(F1 conj(F2)) / sqrt(sum |F1|^2 * sum |F2|^2)`` over the half-complex
    voxels of shell s (RELION's ``getFSC``). Shells whose denominator is zero get 0.

    Parameters
    ----------
    map_1, map_2: real arrays, real space, shape (..., n, n, n), broadcast together
        (leading batch dimensions allowed).
    mask: optional real array, real space, shape (n, n, n) (or broadcastable to the maps),
        multiplied into both maps before the transform (soft masks allowed).

    Returns
    -------
    float64 array of shape (..., n//2+1), shells 0..n//2; shell 0 is 1 for maps with a
    non-zero mean of the same sign. Inputs are not modified.

    Example
    -------
    >>> v = np.random.default_rng(0).normal(size=(16, 16, 16))
    >>> bool(np.allclose(fourier_shell_correlation(v, 3.0 * v), 1.0))
    True
    """
    a = np.asarray(map_1, dtype=np.float64)
    b = np.asarray(map_2, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    n = _cubic_size(a, "map_1")
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        a = a * m
        b = b * m
    fa = scipy.fft.rfftn(a, axes=(-3, -2, -1))
    fb = scipy.fft.rfftn(b, axes=(-3, -2, -1))
    return fourier_correlation(fa, fb, n=n)


def resolution_at_threshold(
    fsc,
    *,
    threshold: float,
    box_size: int,
    voxel_size_angstrom: float,
    interpolate: bool = True,
) -> float:
    """Resolution (Angstrom) where an FSC curve first falls below ``threshold``.

    With ``interpolate=True`` the crossing is interpolated linearly in spatial frequency
    between the two shells around it (:func:`cryoprior.fourier.correlation.crossing_shell`). With ``interpolate=False`` it
    is RELION's rule (``relion_postprocess``, 3.1): the resolution of the last shell before
    the first one below the threshold. A curve that never falls below the threshold gives the
    Nyquist resolution ``n * voxel_size_angstrom / (n//2)`` (a lower bound on the truth).

    Parameters
    ----------
    fsc: real array of shape (n//2+1,).
    threshold: FSC threshold.
    box_size: n, the real-space box size.
    voxel_size_angstrom: voxel size.
    interpolate: interpolate between shells (else RELION's shell rule).

    Returns
    -------
    Resolution in Angstrom.

    Example
    -------
    >>> fsc = np.array([1.0, 0.9, 0.6, 0.2, 0.1])
    >>> resolution_at_threshold(fsc, threshold=0.5, box_size=8, voxel_size_angstrom=1.0)
    3.5555555555555554
    >>> resolution_at_threshold(
    ...     fsc, threshold=0.5, box_size=8, voxel_size_angstrom=1.0, interpolate=False
    ... )
    4.0
    """
    values = np.asarray(fsc, dtype=np.float64)
    n = int(box_size)
    if values.shape != (n // 2 + 1,):
        raise ValueError(f"fsc must have shape ({n // 2 + 1},) for box {n}, not {values.shape}")
    nyquist = n * float(voxel_size_angstrom) / (n // 2)
    shell = float(crossing_shell(values, threshold=threshold))
    if np.isnan(shell):
        return nyquist
    if not interpolate:
        last_good = int(np.ceil(shell)) - 1
        return float("inf") if last_good == 0 else n * float(voxel_size_angstrom) / last_good
    return n * float(voxel_size_angstrom) / shell


@dataclass(frozen=True)
class FscCurve:
    """An FSC curve with the box it was measured in.

    Attributes
    ----------
    fsc: (n//2+1,) float64, shells 0..n//2.
    box_size: n.
    voxel_size_angstrom: voxel size of the maps.
    """

    fsc: np.ndarray
    box_size: int
    voxel_size_angstrom: float

    @property
    def shells(self) -> np.ndarray:
        """(n//2+1,) int shell numbers."""
        return np.arange(self.box_size // 2 + 1)

    @property
    def spatial_frequency_per_angstrom(self) -> np.ndarray:
        """(n//2+1,) shell frequencies s / (n * voxel size), in 1/Angstrom."""
        return self.shells / (self.box_size * self.voxel_size_angstrom)

    @property
    def resolution_per_shell_angstrom(self) -> np.ndarray:
        """(n//2+1,) shell resolutions in Angstrom (inf for shell 0)."""
        return shell_resolution_angstrom(
            self.box_size, voxel_size_angstrom=self.voxel_size_angstrom
        )

    def resolution_angstrom(self, threshold: float, *, interpolate: bool = True) -> float:
        """See :func:`resolution_at_threshold`."""
        return resolution_at_threshold(
            self.fsc,
            threshold=threshold,
            box_size=self.box_size,
            voxel_size_angstrom=self.voxel_size_angstrom,
            interpolate=interpolate,
        )

    def to_dict(self) -> dict:
        """JSON-ready: the curve and its resolutions at 0.143 and 0.5."""
        return {
            "spatial_frequency_per_angstrom": self.spatial_frequency_per_angstrom.tolist(),
            "fsc": self.fsc.tolist(),
            "resolution_0143_angstrom": self.resolution_angstrom(0.143),
            "resolution_05_angstrom": self.resolution_angstrom(0.5),
        }


def randomize_phases_beyond(volume, *, shell: int, seed: int | np.random.Generator) -> np.ndarray:
    """Replace the phases of all Fourier components with ``|k| >= shell`` by uniform random ones.

    As RELION's ``randomizePhasesBeyond``: on the half-complex transform, every voxel with
    ``kx^2 + ky^2 + kz^2 >= shell^2`` keeps its amplitude and gets a phase drawn uniformly
    in [0, 2 pi); the map is transformed back (``irfftn``).

    Parameters
    ----------
    volume: real array, real space, shape (n, n, n).
    shell: first randomised radius, in Fourier voxels (>= 0).
    seed: seed or numpy Generator for the phases.

    Returns
    -------
    float64 array, real space, shape (n, n, n). The input is not modified.

    Example
    -------
    >>> v = np.random.default_rng(1).normal(size=(16, 16, 16))
    >>> w = randomize_phases_beyond(v, shell=4, seed=0)
    >>> bool(np.allclose(fourier_shell_correlation(v, w)[:3], 1.0))
    True
    """
    vol = np.asarray(volume, dtype=np.float64)
    n = _cubic_size(vol, "volume")
    rng = np.random.default_rng(seed)
    spectrum = scipy.fft.rfftn(vol)
    beyond = fourier_radius(n) ** 2 >= float(shell) ** 2
    phases = rng.uniform(0.0, 2.0 * np.pi, size=int(beyond.sum()))
    spectrum[beyond] = np.abs(spectrum[beyond]) * np.exp(1j * phases)
    return scipy.fft.irfftn(spectrum, s=vol.shape)


@dataclass(frozen=True)
class GoldStandardFsc:
    """The FSC curves of two half-maps, as ``relion_postprocess`` reports them.

    Attributes
    ----------
    unmasked: FSC of the raw half-maps.
    masked: FSC of the masked half-maps (None without a mask).
    phase_randomised_masked: FSC of the masked half-maps after randomising their phases
        beyond ``randomize_from_shell`` (None without a mask).
    corrected: the curve to report: ``(FSC_t - FSC_n) / (1 - FSC_n)`` from two shells past
        the randomisation shell on (0 where FSC_n > FSC_t), the masked FSC below; the
        unmasked FSC when there is no mask.
    randomize_from_shell: the shell where phase randomisation starts (None without a mask).
    """

    unmasked: FscCurve
    masked: FscCurve | None
    phase_randomised_masked: FscCurve | None
    corrected: FscCurve
    randomize_from_shell: int | None

    @property
    def resolution_0143_angstrom(self) -> float:
        """Resolution of the corrected curve at FSC 0.143 (interpolated)."""
        return self.corrected.resolution_angstrom(0.143)

    @property
    def resolution_05_angstrom(self) -> float:
        """Resolution of the corrected curve at FSC 0.5 (interpolated)."""
        return self.corrected.resolution_angstrom(0.5)

    def to_dict(self) -> dict:
        """JSON-ready summary and curves."""
        out: dict[str, Any] = {
            "resolution_0143_angstrom": self.resolution_0143_angstrom,
            "resolution_05_angstrom": self.resolution_05_angstrom,
            "resolution_0143_relion_rule_angstrom": self.corrected.resolution_angstrom(
                0.143, interpolate=False
            ),
            "randomize_from_shell": self.randomize_from_shell,
            "curves": {"unmasked": self.unmasked.to_dict(), "corrected": self.corrected.to_dict()},
        }
        if self.masked is not None:
            out["curves"]["masked"] = self.masked.to_dict()
        if self.phase_randomised_masked is not None:
            out["curves"]["phase_randomised_masked"] = self.phase_randomised_masked.to_dict()
        return out


def gold_standard_fsc(
    half_map_1,
    half_map_2,
    *,
    mask=None,
    voxel_size_angstrom: float,
    randomize_at_fsc: float = 0.8,
    randomize_from_angstrom: float | None = None,
    seed: int = 0,
) -> GoldStandardFsc:
    """Gold-standard FSC of two half-maps, masked and corrected as ``relion_postprocess``.

    Without a mask: the FSC of the half-maps. With a mask (RELION 3.1's procedure): the
    unmasked FSC; the FSC of the masked half-maps (FSC_t); the half-maps' phases are
    randomised beyond the first shell s >= 1 where the unmasked FSC falls below
    ``randomize_at_fsc`` (or beyond ``ROUND(n * voxel / randomize_from_angstrom)``), masked,
    and correlated (FSC_n); the corrected curve is FSC_t up to shell s + 1 and
    ``(FSC_t - FSC_n) / (1 - FSC_n)`` (0 where FSC_n > FSC_t) from shell s + 2 on.

    Parameters
    ----------
    half_map_1, half_map_2: real arrays, real space, shape (n, n, n).
    mask: optional real array, real space, shape (n, n, n), values in [0, 1].
    voxel_size_angstrom: voxel size.
    randomize_at_fsc: unmasked-FSC value below which phases are randomised (RELION 0.8).
    randomize_from_angstrom: randomise from this resolution instead (RELION --randomize_at_A).
    seed: seed of the random phases (the two half-maps get independent phases).

    Returns
    -------
    :class:`GoldStandardFsc`. Inputs are not modified.

    Raises
    ------
    ValueError: shapes differ, the box is not cubic, or (with a mask) the unmasked FSC never
    falls below ``randomize_at_fsc`` (RELION stops with an error there too).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(16, 16, 16))
    >>> h1, h2 = signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape)
    >>> g = gold_standard_fsc(h1, h2, voxel_size_angstrom=1.0)
    >>> bool(abs(g.corrected.fsc[1:].mean() - 0.5) < 0.1)
    True
    """
    h1 = np.asarray(half_map_1, dtype=np.float64)
    h2 = np.asarray(half_map_2, dtype=np.float64)
    if h1.shape != h2.shape:
        raise ValueError(f"half-maps differ in shape: {h1.shape} and {h2.shape}")
    n = _cubic_size(h1, "half_map_1")
    if h1.ndim != 3:
        raise ValueError(f"half-maps must be single (n, n, n) maps, not {h1.shape}")

    def curve(values: np.ndarray) -> FscCurve:
        return FscCurve(values, n, float(voxel_size_angstrom))

    unmasked = curve(fourier_shell_correlation(h1, h2))
    if mask is None:
        return GoldStandardFsc(unmasked, None, None, unmasked, None)
    m = np.asarray(mask, dtype=np.float64)
    if m.shape != h1.shape:
        raise ValueError(f"mask shape {m.shape} differs from the half-maps' {h1.shape}")
    if m.min() < -1e-6 or m.max() > 1 + 1e-6:
        logger.warning("mask values outside [0, 1] (%.3g..%.3g)", m.min(), m.max())
    masked = curve(fourier_shell_correlation(h1, h2, mask=m))

    if randomize_from_angstrom is not None and randomize_from_angstrom > 0:
        start = int(np.floor(n * float(voxel_size_angstrom) / randomize_from_angstrom + 0.5))
    else:
        below = np.nonzero(unmasked.fsc[1:] < randomize_at_fsc)[0]
        if below.size == 0:
            raise ValueError(
                f"the unmasked FSC never falls below {randomize_at_fsc}: cannot choose where to "
                "randomise phases (check the mask and the half-maps)"
            )
        start = int(below[0]) + 1
    rng = np.random.default_rng(seed)
    r1 = randomize_phases_beyond(h1, shell=start, seed=rng)
    r2 = randomize_phases_beyond(h2, shell=start, seed=rng)
    randomised = curve(fourier_shell_correlation(r1, r2, mask=m))

    fsc_t, fsc_n = masked.fsc, randomised.fsc
    with np.errstate(invalid="ignore", divide="ignore"):
        true = np.where(fsc_n > fsc_t, 0.0, (fsc_t - fsc_n) / (1.0 - fsc_n))
    shells = np.arange(fsc_t.size)
    corrected = np.where(shells < start + 2, fsc_t, true)
    return GoldStandardFsc(unmasked, masked, randomised, curve(corrected), start)


def _cubic_size(array: np.ndarray, name: str) -> int:
    if array.ndim < 3 or array.shape[-3:] != (array.shape[-1],) * 3:
        raise ValueError(f"{name} must end in a cubic (n, n, n) box, not shape {array.shape}")
    return int(array.shape[-1])
