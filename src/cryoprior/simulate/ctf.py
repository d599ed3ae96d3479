"""The contrast transfer function in RELION's convention (``CTF::getCTF`` of RELION 3.1).

For a spatial frequency (X, Y) in 1/Angstrom, u^2 = X^2 + Y^2, azimuth theta:

    defocus(theta) = defocus_u cos^2(theta - angle) + defocus_v sin^2(theta - angle)
    chi = pi lambda defocus(theta) u^2 - (pi/2) Cs lambda^3 u^4 + phase_shift + arcsin(Q0)
    CTF = scale * sin(chi) * exp(-B u^2 / 4)

(RELION writes it as ``-sin(K1 (u^T A u) + K2 u^4 - K5 - K3)`` with ``A`` built from
``-rlnDefocusU``, ``-rlnDefocusV`` rotated by ``rlnDefocusAngle``; the two are the same.)
lambda is the relativistic electron wavelength, ``12.2643247 / sqrt(V (1 + 0.978466e-6 V))``
Angstrom for an acceleration voltage V in volts. Positive defocus is underfocus; the CTF
is +Q0 at u = 0 (``sin(arcsin Q0)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CTFOptics", "ctf_2d", "electron_wavelength_angstrom"]


@dataclass(frozen=True)
class CTFOptics:
    """Microscope parameters shared by an optics group (RELION's ``data_optics``).

    Attributes
    ----------
    voltage_kv: acceleration voltage (``rlnVoltage``), kV.
    spherical_aberration_mm: ``rlnSphericalAberration``, mm.
    amplitude_contrast: ``rlnAmplitudeContrast``, in [0, 1).
    """

    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.1

    def __post_init__(self) -> None:
        """Check the voltage is positive and the amplitude contrast in [0, 1) (ValueError)."""
        if self.voltage_kv <= 0:
            raise ValueError(f"voltage_kv must be positive, not {self.voltage_kv}")
        if not 0.0 <= self.amplitude_contrast < 1.0:
            raise ValueError(f"amplitude_contrast must be in [0, 1), not {self.amplitude_contrast}")


def electron_wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom (RELION's formula).

    Example
    -------
    >>> round(electron_wavelength_angstrom(300.0), 5)
    0.01969
    """
    volts = float(voltage_kv) * 1e3
    return 12.2643247 / math.sqrt(volts * (1.0 + volts * 0.978466e-6))


def ctf_2d(
    n: int,
    *,
    voxel_size_angstrom: float,
    defocus_u_angstrom,
    defocus_v_angstrom,
    defocus_angle_degrees,
    optics: CTFOptics,
    phase_shift_degrees=0.0,
    b_factor_angstrom2=0.0,
    scale=1.0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """CTF of a batch of images on the half-complex (rfft) grid, as ``relion_project --ctf``.

    Parameters
    ----------
    n: image box size (square images).
    voxel_size_angstrom: pixel size.
    defocus_u_angstrom, defocus_v_angstrom, defocus_angle_degrees: per image, shape (b,)
        (scalars broadcast): ``rlnDefocusU``, ``rlnDefocusV``, ``rlnDefocusAngle``.
    optics: voltage, Cs and amplitude contrast.
    phase_shift_degrees, b_factor_angstrom2, scale: ``rlnPhaseShift``, ``rlnCtfBfactor``,
        ``rlnCtfScalefactor``, per image or scalars.
    device, dtype: of the result; computed in float64 and then cast.

    Returns
    -------
    real tensor, Fourier space, shape (b, n, n//2+1), rfft layout of
    :mod:`cryoprior.conventions` (row index i is ky = i for i <= n//2, else i - n).

    Example
    -------
    >>> c = ctf_2d(8, voxel_size_angstrom=1.0, defocus_u_angstrom=[1e4],
    ...            defocus_v_angstrom=[1e4], defocus_angle_degrees=[0.0], optics=CTFOptics())
    >>> tuple(c.shape), round(float(c[0, 0, 0]), 6)
    ((1, 8, 5), 0.1)
    """
    params = np.broadcast_arrays(
        *(
            np.atleast_1d(np.asarray(v, dtype=np.float64))
            for v in (
                defocus_u_angstrom,
                defocus_v_angstrom,
                defocus_angle_degrees,
                phase_shift_degrees,
                b_factor_angstrom2,
                scale,
            )
        )
    )
    du, dv, angle, phase, bfac, scl = (torch.from_numpy(np.array(p)).to(device) for p in params)
    half = n // 2 + 1
    ky = torch.arange(n, dtype=torch.float64, device=device)
    ky = torch.where(ky < half, ky, ky - n) / (n * voxel_size_angstrom)
    kx = torch.arange(half, dtype=torch.float64, device=device) / (n * voxel_size_angstrom)
    x = kx[None, :].expand(n, half).reshape(-1)
    y = ky[:, None].expand(n, half).reshape(-1)
    u2 = x * x + y * y
    lam = electron_wavelength_angstrom(optics.voltage_kv)
    cs = optics.spherical_aberration_mm * 1e7
    q0 = optics.amplitude_contrast
    k1 = math.pi * lam
    k2 = math.pi / 2.0 * cs * lam**3
    k3 = math.atan(q0 / math.sqrt(1.0 - q0 * q0))
    rad = torch.deg2rad(angle)
    c, s = torch.cos(rad), torch.sin(rad)
    # A = Q^T diag(-dU, -dV) Q with Q = [[c, s], [-s, c]] (RELION's CTF::initialise);
    # chi = K1 (Axx x^2 + 2 Axy x y + Ayy y^2) + K2 u^4 - K5 - K3, as one (b, 4) @ (4, p) product
    coefficients = torch.stack(
        [
            -k1 * (c * c * du + s * s * dv),
            -2.0 * k1 * (c * s * (du - dv)),
            -k1 * (s * s * du + c * c * dv),
            torch.full_like(du, k2),
        ],
        dim=1,
    )
    basis = torch.stack([x * x, x * y, y * y, u2 * u2])
    chi = coefficients @ basis - (torch.deg2rad(phase) + k3)[:, None]
    ctf = torch.sin(chi).neg_().mul_(scl[:, None])
    if bool((bfac != 0).any()):
        ctf.mul_(torch.exp(-bfac[:, None] / 4.0 * u2[None, :]))
    ctf = ctf.reshape(-1, n, half)
    return ctf.to(dtype)
