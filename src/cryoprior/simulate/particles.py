"""The particles of a simulated dataset, on arrays: how many, their poses, CTF and rendering.

The pure core of :mod:`cryoprior.simulate.dataset` (its shell, which reads the source and
writes the folder). Randomness: every random quantity has its own stream
``default_rng([seed, STREAM])`` (poses, psi of grids, cone views, shifts, defocus, placement of
pure-noise particles, the membrane belt), and each particle's noise its own stream
(:mod:`cryoprior.simulate.noise`). Particles are rendered in fixed blocks of ``batch_size``
aligned to their indices (the last one padded), so the images do not depend on how they are
written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from cryoprior.io.atomic_model import AtomicModel
from cryoprior.poses import Poses
from cryoprior.simulate.config import SimulationConfig
from cryoprior.simulate.ctf import CTFOptics
from cryoprior.simulate.images import CTFValues, ImageFormation, render_particles
from cryoprior.simulate.poses import (
    cone_fraction,
    grid_poses,
    over_represent_cone,
    uniform_poses,
    with_random_shifts,
)
from cryoprior.simulate.project import FourierVolume

__all__ = [
    "auto_batch_size",
    "automatic_box",
    "count_particles",
    "draw_defocus",
    "make_poses",
    "membrane_belt",
    "noise_level",
    "optics_table",
    "random_streams",
    "render_block",
    "resolve_backend",
    "signal_mask",
    "star_tables",
]

# Random streams: default_rng([seed, STREAM]); 1 is the per-particle noise (noise.py).
_POSES_STREAM = 2
_CONE_STREAM = 3
_SHIFT_STREAM = 4
_DEFOCUS_STREAM = 5
_MIX_STREAM = 6
_BELT_STREAM = 7

_SNR_REFERENCE_IMAGES = 500  # signal SD for a target SNR
_SIGNAL_SD_IMAGES = 64  # signal SD recorded alongside a given noise SD


def random_streams(seed: int) -> dict[str, list[Any]]:
    """Return the seeds of the random streams, as the dataset's record lists them."""
    return {
        "poses": [seed, _POSES_STREAM],
        "cone_views": [seed, _CONE_STREAM],
        "shifts": [seed, _SHIFT_STREAM],
        "defocus": [seed, _DEFOCUS_STREAM],
        "pure_noise_placement": [seed, _MIX_STREAM],
        "noise_of_particle_i": [seed, 1, "i"],
    }


def auto_batch_size(box_size: int) -> int:
    """Particles per batch for a box: about 4 million pixels (between 16 and 4096)."""
    return int(max(16, min(4096, 2**22 // (box_size * box_size))))


def resolve_backend(name: str, device: torch.device, n_particles: int, box: int) -> str:
    """Return the projector backend of ``name`` (``auto``: compiled on CPU where it pays)."""
    if name != "auto":
        return name
    worth_compiling = device.type == "cpu" and n_particles * (box / 128.0) ** 2 >= 20000
    return "compiled" if worth_compiling else "eager"


def automatic_box(
    *, max_radius_angstrom: float, voxel_size_angstrom: float, solvent_angstrom: float = 10.0
) -> int:
    """Return the smallest even box holding a model's largest radius plus solvent on each side."""
    needed = 2.0 * (max_radius_angstrom + solvent_angstrom) / voxel_size_angstrom
    return int(np.ceil(needed / 2.0)) * 2


def count_particles(config: SimulationConfig, star_poses: Poses | None) -> int:
    """Count the signal particles the orientations give, without making them.

    Uniform with a cone: the expected count. ``star_poses``: the poses read for
    ``orientations="star"`` (else unused).
    """
    extra_factor = config.cone_overrepresentation - 1.0
    low, high = config.cone_tilt_min_degrees, config.cone_tilt_max_degrees
    if config.orientations == "star":
        assert star_poses is not None
        tilt = star_poses.tilt_degrees
        inside = int(((tilt >= low) & (tilt <= high)).sum())
        return len(star_poses) + int(np.floor(extra_factor * inside + 0.5))
    if config.orientations == "uniform":
        inside_expected = config.n_particles * cone_fraction(low, high)
        return config.n_particles + int(np.floor(extra_factor * inside_expected + 0.5))
    step = float(config.angular_step_degrees)
    n_rings = int(np.floor(180.0 / step + 1e-9)) + 1
    if n_rings > 10_000_000:  # far too many anyway: the area of the sphere over step^2
        total = 4.0 * np.pi / np.radians(step) ** 2
        return int(min(total * (1.0 + extra_factor * cone_fraction(low, high)), 2**62))
    tilts = np.minimum(np.arange(n_rings) * step, 180.0)
    counts = np.maximum(1, np.floor(360.0 * np.sin(np.radians(tilts)) / step + 0.5)).astype(
        np.int64
    )
    inside = int(counts[(tilts >= low) & (tilts <= high)].sum())
    return int(counts.sum()) + int(np.floor(extra_factor * inside + 0.5))


def make_poses(config: SimulationConfig, star_poses: Poses | None = None) -> Poses:
    """Return the signal particles' poses: the orientations, cone views added, then shifts.

    ``star_poses``: the poses read for ``orientations="star"`` (required then).
    """
    seed = config.seed
    if config.orientations == "star":
        if star_poses is None:
            raise ValueError("orientations 'star' needs the poses read from angles_star")
        poses = star_poses
    elif config.orientations == "uniform":
        poses = uniform_poses(config.n_particles, seed=np.random.default_rng([seed, _POSES_STREAM]))
    else:
        poses = grid_poses(
            config.angular_step_degrees, seed=np.random.default_rng([seed, _POSES_STREAM])
        )
    if config.cone_overrepresentation > 1:
        poses = over_represent_cone(
            poses,
            factor=config.cone_overrepresentation,
            tilt_min_degrees=config.cone_tilt_min_degrees,
            tilt_max_degrees=config.cone_tilt_max_degrees,
            seed=np.random.default_rng([seed, _CONE_STREAM]),
        )
    if config.shift_sd_angstrom > 0:
        poses = with_random_shifts(
            poses,
            sd_angstrom=config.shift_sd_angstrom,
            seed=np.random.default_rng([seed, _SHIFT_STREAM]),
        )
    return poses


def signal_mask(config: SimulationConfig, n_signal_poses: int) -> np.ndarray:
    """Return (n_total,) bool: True for a signal particle, pure-noise ones at random places.

    ``n_total = n_signal_poses + config.n_pure_noise``; all False for ``pure_noise_only``.
    """
    n_total = n_signal_poses + config.n_pure_noise
    is_signal = np.zeros(n_total, dtype=bool)
    if not config.pure_noise_only:
        mix = np.random.default_rng([config.seed, _MIX_STREAM])
        noise_places = np.sort(mix.permutation(n_total)[: config.n_pure_noise])
        is_signal[:] = True
        is_signal[noise_places] = False
    return is_signal


def draw_defocus(config: SimulationConfig, n_total: int) -> CTFValues:
    """Draw each particle's defocus U uniformly in the range, V = U - astigmatism, any angle."""
    rng = np.random.default_rng([config.seed, _DEFOCUS_STREAM])
    du = rng.uniform(config.defocus_min_angstrom, config.defocus_max_angstrom, n_total)
    angle = rng.uniform(0.0, 180.0, n_total)
    return CTFValues(du, du - config.astigmatism_angstrom, angle)


def membrane_belt(
    protein: np.ndarray,
    config: SimulationConfig,
    *,
    model: AtomicModel,
    centre_of_mass_angstrom: tuple[float, float, float],
    voxel_size_angstrom: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Add a membrane belt around the model's transmembrane band to the protein map.

    ``protein``: (N, N, N) with the model's centre of mass at voxel N//2, as
    ``model_to_map(centre=True)``. Returns the map with the belt and a record of the band and
    the belt (without the protein map's file name). ``model``: the atomic model of the map.
    """
    from cryoprior.simulate.belt import add_membrane_belt, transmembrane_band

    band = transmembrane_band(model)
    com = np.asarray(centre_of_mass_angstrom, dtype=np.float64)
    origin = com - (protein.shape[0] // 2) * voxel_size_angstrom
    volume = add_membrane_belt(
        protein,
        band,
        voxel_size_angstrom=voxel_size_angstrom,
        origin_angstrom=tuple(float(v) for v in origin),
        width_angstrom=config.belt_width_angstrom,
        relative_density=config.belt_relative_density,
        roughness_angstrom=config.belt_roughness_angstrom,
        seed=np.random.default_rng([config.seed, _BELT_STREAM]),
    )
    record = {
        **dataclasses.asdict(band),
        "width_angstrom": config.belt_width_angstrom,
        "relative_density": config.belt_relative_density,
        "roughness_angstrom": config.belt_roughness_angstrom,
        "belt_to_protein_mass": float((volume - protein).sum() / protein.sum()),
    }
    return volume, record


def _batch_poses(poses: Poses, pose_rows: np.ndarray, signal: np.ndarray) -> Poses:
    """Poses aligned with a batch's rows (pure-noise rows get a placeholder pose)."""
    if len(poses) == 0:
        zeros = np.zeros(signal.size)
        return Poses(zeros, zeros, zeros)
    rows = np.zeros(signal.size, dtype=np.int64)
    rows[signal] = pose_rows
    return poses.take(rows)


def noise_level(
    config: SimulationConfig,
    fvol: FourierVolume,
    poses: Poses,
    formation: ImageFormation,
    ctf_values: CTFValues | None,
    is_signal: np.ndarray,
    backend: str,
) -> tuple[float, float]:
    """Return (signal SD, noise SD).

    The signal SD is the mean SD of the clean images of the first 500 signal particles (SNR
    mode) or the first 64 (recorded only, with a given noise SD). ``config.batch_size`` must
    be set.
    """
    n_ref = min(len(poses), _SNR_REFERENCE_IMAGES if config.snr is not None else _SIGNAL_SD_IMAGES)
    signal_sd = 0.0
    if n_ref:
        # the particles that carry poses 0..n_ref-1 (the CTF belongs to the particle)
        owners = np.flatnonzero(is_signal)[:n_ref] if is_signal.any() else np.arange(n_ref)
        sds = []
        b = int(config.batch_size or 1)
        for start in range(0, n_ref, b):
            rows = np.arange(start, start + b)
            rows[min(n_ref - start, b) :] = start
            images = render_particles(
                fvol,
                poses.take(rows),
                formation=formation,
                ctf=None if ctf_values is None else ctf_values.take(owners[rows]),
                particle_indices=owners[rows],
                seed=config.seed,
                backend=backend,
            )
            sds.append(images[: min(n_ref - start, b)].astype(np.float64).std(axis=(-2, -1)))
        signal_sd = float(np.concatenate(sds).mean())
        if config.snr is not None:
            return signal_sd, signal_sd / float(np.sqrt(config.snr))
    if config.snr is not None:
        raise ValueError("snr needs signal particles to measure the signal")
    return signal_sd, float(config.noise_sd or 0.0)


def render_block(
    fvol: FourierVolume,
    poses: Poses,
    start: int,
    *,
    batch_size: int,
    is_signal: np.ndarray,
    signal_index: np.ndarray,
    formation: ImageFormation,
    ctf_values: CTFValues | None,
    seed: int,
    backend: str,
) -> np.ndarray:
    """Render the index-aligned block of ``batch_size`` particles from ``start``.

    ``is_signal``: (n_total,) bool; ``poses``: one per signal particle, in order;
    ``signal_index``: (n_total,) ``cumsum(is_signal) - 1``, each signal particle's row in
    ``poses``. The last
    block is rendered padded with copies of its first particle (every block has the same
    shapes) and returned without the padding: (min(batch_size, n_total - start), N, N).
    """
    n_total = is_signal.size
    stop = min(start + batch_size, n_total)
    rows = np.arange(start, start + batch_size)
    rows[stop - start :] = start
    signal = is_signal[rows]
    images = render_particles(
        fvol,
        _batch_poses(poses, signal_index[rows][signal], signal),
        formation=formation,
        ctf=None if ctf_values is None else ctf_values.take(rows),
        particle_indices=rows,
        is_signal=signal,
        seed=seed,
        backend=backend,
    )
    return images[: stop - start]


def optics_table(n: int, voxel: float, optics: CTFOptics) -> pd.DataFrame:
    """Return RELION 3.1's optics table: one group of ``n`` x ``n`` images at ``voxel`` A/px."""
    return pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [voxel],
            "rlnImageSize": [n],
            "rlnImageDimensionality": [2],
            "rlnVoltage": [optics.voltage_kv],
            "rlnSphericalAberration": [optics.spherical_aberration_mm],
            "rlnAmplitudeContrast": [optics.amplitude_contrast],
        }
    )


def star_tables(
    image_names: list[str], is_signal: np.ndarray, poses: Poses, ctf_values: CTFValues | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Build the particles table (no poses), the ground truth and the pure-noise rows.

    The ground truth holds the signal rows with their poses.
    """
    signal_index = np.cumsum(is_signal) - 1  # row in `poses` of each signal particle
    base = pd.DataFrame({"rlnImageName": image_names, "rlnOpticsGroup": 1})
    if ctf_values is not None:
        base["rlnDefocusU"] = ctf_values.defocus_u_angstrom
        base["rlnDefocusV"] = ctf_values.defocus_v_angstrom
        base["rlnDefocusAngle"] = ctf_values.defocus_angle_degrees
        base["rlnPhaseShift"] = 0.0
        base["rlnCtfBfactor"] = 0.0
        base["rlnCtfScalefactor"] = 1.0
    signal_rows = np.flatnonzero(is_signal)
    truth = base.iloc[signal_rows].reset_index(drop=True)
    pose_table = (
        poses.take(signal_index[signal_rows]).to_dataframe()
        if len(signal_rows)
        else (poses.take(np.zeros(0, dtype=np.int64)).to_dataframe())
    )
    truth = pd.concat([truth, pose_table], axis=1)
    noise = base.iloc[np.flatnonzero(~is_signal)].reset_index(drop=True)
    return base, truth, noise
