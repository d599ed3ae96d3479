"""Image formation for simulated particles: projection, shift, CTF, low-pass, noise.

For each particle: the Fourier slice of the map at its pose (:mod:`cryoprior.simulate.project`),
times the phase factor of its origin, times its CTF (if any), times the low-pass filter (if
any), back to real space, plus white Gaussian noise from the particle's own stream
(:func:`cryoprior.simulate.noise.gaussian_noise_stack`). Pure-noise particles get the noise
alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryoprior.fourier.filters import bfactor_filter, raised_cosine_lowpass
from cryoprior.poses import Poses
from cryoprior.simulate.ctf import CTFOptics, ctf_2d
from cryoprior.simulate.noise import gaussian_noise_stack
from cryoprior.simulate.project import (
    FourierVolume,
    images_from_slices,
    project_slices,
    shift_phases,
)

__all__ = [
    "CTFValues",
    "ImageFormation",
    "lowpass_zero_beyond_angstrom",
    "paper_lowpass",
    "render_particles",
]


@dataclass(frozen=True)
class ImageFormation:
    """How particle images are made from the map's projections.

    Attributes
    ----------
    voxel_size_angstrom: pixel size of the images (= voxel size of the map).
    ctf_optics: microscope parameters; None for images without CTF.
    envelope_b_factor_angstrom2: the images' envelope ``exp(-B s^2 / 4)``, after the CTF (0: none).
    lowpass_resolution_angstrom: low-pass the projections at this resolution (None: no filter).
    lowpass_width_frequency: width of the raised-cosine edge in frequency normalised to 0.5
        (cycles/pixel), as in the paper (0.0064): the filter is 1 up to the cut-off
        ``voxel / resolution`` and reaches 0 at ``voxel / resolution + width``.
    noise_sd: standard deviation of the added white Gaussian noise, in image units (0: none).
    """

    voxel_size_angstrom: float
    ctf_optics: CTFOptics | None = None
    envelope_b_factor_angstrom2: float = 0.0
    lowpass_resolution_angstrom: float | None = None
    lowpass_width_frequency: float = 0.0064
    noise_sd: float = 0.0

    def __post_init__(self) -> None:
        """Check the voxel size, low-pass and noise settings (ValueError naming the bad one)."""
        if self.voxel_size_angstrom <= 0:
            raise ValueError("voxel_size_angstrom must be positive")
        if self.lowpass_resolution_angstrom is not None and self.lowpass_resolution_angstrom <= 0:
            raise ValueError("lowpass_resolution_angstrom must be positive")
        if self.lowpass_width_frequency <= 0:
            raise ValueError("lowpass_width_frequency must be positive")
        if self.noise_sd < 0:
            raise ValueError("noise_sd must be >= 0")
        if not self.envelope_b_factor_angstrom2 >= 0:
            raise ValueError("envelope_b_factor_angstrom2 must be >= 0")


@dataclass(frozen=True, eq=False)
class CTFValues:
    """Per-particle CTF parameters; float64 arrays of shape (n,).

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom, defocus_angle_degrees: ``rlnDefocusU``,
        ``rlnDefocusV``, ``rlnDefocusAngle``.
    """

    defocus_u_angstrom: np.ndarray
    defocus_v_angstrom: np.ndarray
    defocus_angle_degrees: np.ndarray

    def __post_init__(self) -> None:
        """Store the values as read-only float64 (n,) arrays; ValueError if lengths differ."""
        n = np.size(self.defocus_u_angstrom)
        for name in ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees"):
            array = np.array(getattr(self, name), dtype=np.float64).reshape(-1)
            if array.shape != (n,):
                raise ValueError(f"{name} has {array.size} values, expected {n}")
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        """Return the number of particles."""
        return int(self.defocus_u_angstrom.size)

    def take(self, indices) -> CTFValues:
        """Return the values at ``indices`` (any numpy index), as a new CTFValues."""
        return CTFValues(
            self.defocus_u_angstrom[indices],
            self.defocus_v_angstrom[indices],
            self.defocus_angle_degrees[indices],
        )


def paper_lowpass(
    n: int,
    *,
    resolution_angstrom: float,
    voxel_size_angstrom: float,
    width_frequency: float,
    ndim: int = 2,
) -> np.ndarray:
    """Return the paper's raised-cosine low-pass on the rfft grid (as Xmipp's).

    1 for frequencies f <= f_c = voxel / resolution (cycles/pixel), 0 beyond f_c + width,
    ``0.5 + 0.5 cos(pi (f - f_c) / width)`` between. ``ndim=2`` filters the particle images;
    ``ndim=3`` is the same filter on a map (a map made from the filtered images holds no more).

    Returns
    -------
    float64 array, Fourier space, shape (n, n//2+1) or (n, n, n//2+1), rfft layout.

    Example
    -------
    >>> f = paper_lowpass(100, resolution_angstrom=4.0, voxel_size_angstrom=1.0,
    ...                   width_frequency=0.02)
    >>> f[0, [24, 25, 26, 27]].round(3).tolist()
    [1.0, 1.0, 0.5, 0.0]
    """
    cutoff = float(voxel_size_angstrom) / float(resolution_angstrom)
    centre = cutoff + 0.5 * float(width_frequency)
    return raised_cosine_lowpass(
        n,
        resolution_angstrom=float(voxel_size_angstrom) / centre,
        voxel_size_angstrom=float(voxel_size_angstrom),
        width_fourier_voxels=float(width_frequency) * n,
        ndim=ndim,
    )


def lowpass_zero_beyond_angstrom(
    *, resolution_angstrom: float, voxel_size_angstrom: float, width_frequency: float
) -> float:
    """Resolution beyond which :func:`paper_lowpass` is zero: ``voxel / (voxel/res + w)``.

    Example
    -------
    >>> round(lowpass_zero_beyond_angstrom(resolution_angstrom=3.0, voxel_size_angstrom=0.637,
    ...                                    width_frequency=0.0064), 2)
    2.91
    """
    return voxel_size_angstrom / (voxel_size_angstrom / resolution_angstrom + width_frequency)


def render_particles(
    fvol: FourierVolume,
    poses: Poses,
    *,
    formation: ImageFormation,
    ctf: CTFValues | None = None,
    particle_indices,
    is_signal=None,
    seed: int,
    backend: str = "eager",
) -> np.ndarray:
    """Particle images for one batch.

    Parameters
    ----------
    fvol: the map prepared by :func:`cryoprior.simulate.project.fourier_volume`.
    poses: (b) poses of the batch.
    formation: CTF optics, low-pass and noise level.
    ctf: (b) per-particle defocus values; required when ``formation.ctf_optics`` is set.
    particle_indices: (b,) positions of the particles in the dataset (the noise streams).
    is_signal: (b,) bool, False for pure-noise particles (default: all True).
    seed: the dataset's seed (for the noise).
    backend: projector backend (see :func:`cryoprior.simulate.project.project_slices`).

    Returns
    -------
    float32 array, real space, shape (b, N, N), (y, x), centre at pixel N//2.

    The same inputs give the same bytes. Float rounding in the batched torch operations can
    depend on a particle's position in the batch, so the same particle in another batch may
    differ in the last bits: :func:`cryoprior.simulate.dataset.simulate_dataset` therefore
    always renders the same fixed, index-aligned batches.
    """
    n = fvol.box_size
    b = len(poses)
    indices = np.asarray(particle_indices, dtype=np.int64).reshape(-1)
    if indices.size != b:
        raise ValueError(f"particle_indices has {indices.size} values for {b} poses")
    signal = np.ones(b, dtype=bool) if is_signal is None else np.asarray(is_signal, dtype=bool)
    images = gaussian_noise_stack(
        indices, n, sd=formation.noise_sd, seed=seed, threads=torch.get_num_threads()
    )
    if signal.any():
        # every row is projected (pure-noise rows too, then dropped), so that a particle's
        # position in the computed tensors does not depend on its neighbours
        clean = _signal_images(fvol, poses, formation=formation, ctf=ctf, backend=backend)
        images[signal] += clean[signal]
    return images


def _signal_images(
    fvol: FourierVolume,
    poses: Poses,
    *,
    formation: ImageFormation,
    ctf: CTFValues | None,
    backend: str,
) -> np.ndarray:
    n = fvol.box_size
    device = fvol.device
    slices = project_slices(fvol, poses.matrices(), backend=backend)
    shifts = poses.shifts_pixels(formation.voxel_size_angstrom)
    if np.any(shifts != 0):
        slices = slices * shift_phases(n, shifts, device=device, dtype=slices.dtype)
    real = torch.float64 if slices.dtype == torch.complex128 else torch.float32
    if formation.ctf_optics is not None:
        if ctf is None or len(ctf) != len(poses):
            raise ValueError("per-particle CTF values are needed when ctf_optics is set")
        slices = slices * ctf_2d(
            n,
            voxel_size_angstrom=formation.voxel_size_angstrom,
            defocus_u_angstrom=ctf.defocus_u_angstrom,
            defocus_v_angstrom=ctf.defocus_v_angstrom,
            defocus_angle_degrees=ctf.defocus_angle_degrees,
            optics=formation.ctf_optics,
            device=device,
            dtype=real,
        )
    if formation.envelope_b_factor_angstrom2 > 0:
        envelope = bfactor_filter(
            n,
            b_factor_angstrom2=formation.envelope_b_factor_angstrom2,
            voxel_size_angstrom=formation.voxel_size_angstrom,
            ndim=2,
        )
        slices = slices * torch.from_numpy(envelope).to(device=device, dtype=real)
    if formation.lowpass_resolution_angstrom is not None:
        lowpass = paper_lowpass(
            n,
            resolution_angstrom=formation.lowpass_resolution_angstrom,
            voxel_size_angstrom=formation.voxel_size_angstrom,
            width_frequency=formation.lowpass_width_frequency,
        )
        slices = slices * torch.from_numpy(lowpass).to(device=device, dtype=real)
    return images_from_slices(slices).to(torch.float32).cpu().numpy()
