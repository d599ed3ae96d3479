"""A simulated single-particle dataset in a folder RELION reads as is, with its ground truth.

Layout of the output folder (paths in the STAR files are relative to it, so RELION runs
started in it find the images)::

    particles.star            RELION 3.1 optics + particles (image names, CTF; no poses)
    Particles/particles_NNNN.mrcs   image stacks (float32), written batch by batch
    ground_truth.star         the signal particles again, with their true poses
    pure_noise.star           the pure-noise particles (only when there are some)
    true_map.mrc              the map the particles are projections of
    initial_reference.mrc     the true map low-passed (default 20 A), for --ref
    simulation.json           every parameter, the seed, and what was derived from them

Randomness: every random quantity has its own stream ``default_rng([seed, STREAM])`` (poses,
psi of grids, cone views, shifts, defocus, placement of pure-noise particles), and each
particle's noise its own stream (:mod:`cryoprior.simulate.noise`). Particles are rendered in
fixed blocks of ``batch_size`` aligned to their indices (the last one padded), so the same
configuration and seed on the same machine, device and projector backend give the same bytes
whatever the stack size; another ``batch_size`` gives the same particles to float rounding
(about 1e-7 relative; torch's vectorised loops may round a value differently at another
position in a tensor).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import tomllib
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pandas as pd
import starfile
import torch

from cryoprior.errors import InputFileError
from cryoprior.fourier.filters import apply_filter, raised_cosine_lowpass
from cryoprior.io._atomic import write_text_atomic
from cryoprior.io.mrc import read_map, read_map_header_voxel_size
from cryoprior.simulate.ctf import CTFOptics
from cryoprior.simulate.density import model_to_map, read_model, structure_summary
from cryoprior.simulate.images import (
    CTFValues,
    ImageFormation,
    lowpass_zero_beyond_angstrom,
    render_particles,
)
from cryoprior.simulate.models import resolve_model_path
from cryoprior.simulate.poses import (
    Poses,
    cone_fraction,
    grid_poses,
    over_represent_cone,
    poses_from_star,
    uniform_poses,
    with_random_shifts,
)
from cryoprior.simulate.project import fourier_volume
from cryoprior.simulate.resources import (
    AvailableResources,
    available_resources,
    check_resources,
    estimate_resources,
    format_bytes,
    reserve_file_space,
)

__all__ = [
    "SimulationConfig",
    "SimulationResult",
    "auto_batch_size",
    "config_from_dict",
    "load_config",
    "simulate_dataset",
]

logger = logging.getLogger(__name__)

# Random streams: default_rng([seed, STREAM]); 1 is the per-particle noise (noise.py).
_POSES_STREAM = 2
_CONE_STREAM = 3
_SHIFT_STREAM = 4
_DEFOCUS_STREAM = 5
_MIX_STREAM = 6
_BELT_STREAM = 7

PARTICLES_STAR = "particles.star"
GROUND_TRUTH_STAR = "ground_truth.star"
PURE_NOISE_STAR = "pure_noise.star"
TRUE_MAP = "true_map.mrc"
TRUE_MAP_PROTEIN = "true_map_protein.mrc"  # the protein without its membrane belt
INITIAL_REFERENCE = "initial_reference.mrc"
RECORD_JSON = "simulation.json"
STACK_DIR = "Particles"

_SNR_REFERENCE_IMAGES = 500  # signal SD for a target SNR
_SIGNAL_SD_IMAGES = 64  # signal SD recorded alongside a given noise SD


@dataclass(frozen=True)
class SimulationConfig:
    """Every parameter of a simulated dataset (one flat table: TOML keys = CLI options).

    Source
    ------
    model: a shipped model name (``beta-galactosidase``, ``proteasome``) or a PDB/mmCIF
        path (gzip too). Ignored when ``map_path`` is given.
    map_path: an MRC map to project instead of a model (cubic, centre at voxel N//2).
    box_size: N; None: the map's size, or for a model the smallest even box holding the
        model's largest radius plus 10 A of solvent on each side.
    voxel_size_angstrom: None: the map's header value, or 1.0 for a model.
    b_factor_angstrom2: None keeps the model's B-factors; a number replaces all of them.
    density_oversampling: gemmi grid oversampling (see ``model_to_map``).
    remove_waters: drop the model's waters.
    belt_width_angstrom: > 0 wraps a detergent-micelle-like belt of this radial width around
        the model's transmembrane band (:mod:`cryoprior.simulate.belt`: the band is found from
        the residues); 0: none. The particles and ``true_map.mrc`` hold the belt;
        ``true_map_protein.mrc`` is the protein alone.
    belt_relative_density: the belt's density relative to the protein's mean density.
    belt_roughness_angstrom: amplitude of the belt outline's smooth random modulation.

    Orientations
    ------------
    orientations: ``uniform`` (random over SO(3)), ``grid`` (even directions at
        ``angular_step_degrees``, random psi) or ``star`` (the poses of ``angles_star``).
    n_particles: number of uniform random poses (``uniform`` only).
    angular_step_degrees: step of the ``grid`` (the paper: 1.5 -> 18,338 directions).
    angles_star: STAR file with rlnAngleRot/Tilt/Psi (and optionally rlnOriginX/YAngst).
    cone_overrepresentation: >= 1; views inside the tilt cone are made this many times as
        dense by adding views there (1: isotropic; the paper's proteasome set of 24,359 views
        is ``grid`` at 1.5 degrees with 3.8401 in the cone 0-40 degrees).
    cone_tilt_min_degrees, cone_tilt_max_degrees: the cone (the paper: tilt 0-40).
    shift_sd_angstrom: SD of random origins added in x and y (Angstrom).

    Image formation
    ---------------
    ctf: apply a CTF (RELION's convention) and write the CTF parameters to the STAR files.
    defocus_min_angstrom, defocus_max_angstrom: defocus U drawn uniformly in this range.
    astigmatism_angstrom: defocus U - defocus V; the angle is uniform in [0, 180).
    voltage_kv, spherical_aberration_mm, amplitude_contrast: optics (written also without CTF).
    lowpass_resolution_angstrom: low-pass the projections (the paper: 3, 5, 8 A); None: no.
    lowpass_width_frequency: raised-cosine width in frequency normalised to 0.5 (0.0064).
    noise_sd: Gaussian noise SD in image units (the paper: 50-1000); exclusive with ``snr``.
    snr: target SNR instead: the noise SD is ``mean(std of clean images) / sqrt(snr)`` over
        the first 500 signal particles (after CTF and low-pass). Neither: noise-free images.
    n_pure_noise: pure-noise particles (no signal, the same noise) mixed in at random places.
    pure_noise_only: make every particle pure noise (the count is that of the poses plus
        ``n_pure_noise``).

    Outputs and run
    ---------------
    reference_lowpass_angstrom: resolution of the initial reference (the true map low-passed
        with a raised cosine 2 Fourier voxels wide).
    seed: the seed of every random stream.
    batch_size: particles per projection batch (index-aligned blocks; the images do not depend
        on it beyond float rounding, and not at all on ``particles_per_stack``). None: about
        4 million pixels per batch (1024 particles at box 64, 256 at 128, 64 at 256).
    particles_per_stack: particles per ``.mrcs`` file.
    padding_factor: Fourier padding of the projector (RELION's default 2).
    device: torch device, or ``auto`` (a GPU when there is one).
    backend: projector backend: ``eager``, ``compiled`` (``torch.compile``: its interpolation
        is 2-3 times faster on 2 CPU cores, after a compilation of about 11 s the first time on
        a machine and 2 s later), or ``auto``: compiled on CPU for datasets where that pays
        (particles x (box/128)^2 >= 20000), else eager.
    """

    model: str = "beta-galactosidase"
    map_path: str | None = None
    box_size: int | None = None
    voxel_size_angstrom: float | None = None
    b_factor_angstrom2: float | None = None
    density_oversampling: int = 2
    remove_waters: bool = False
    belt_width_angstrom: float = 0.0
    belt_relative_density: float = 0.4
    belt_roughness_angstrom: float = 3.0

    orientations: str = "uniform"
    n_particles: int = 1000
    angular_step_degrees: float = 1.5
    angles_star: str | None = None
    cone_overrepresentation: float = 1.0
    cone_tilt_min_degrees: float = 0.0
    cone_tilt_max_degrees: float = 40.0
    shift_sd_angstrom: float = 0.0

    ctf: bool = False
    defocus_min_angstrom: float = 10000.0
    defocus_max_angstrom: float = 25000.0
    astigmatism_angstrom: float = 0.0
    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.1
    lowpass_resolution_angstrom: float | None = None
    lowpass_width_frequency: float = 0.0064
    noise_sd: float | None = None
    snr: float | None = None
    n_pure_noise: int = 0
    pure_noise_only: bool = False

    reference_lowpass_angstrom: float = 20.0
    seed: int = 0
    batch_size: int | None = None
    particles_per_stack: int = 10000
    padding_factor: float = 2.0
    device: str = "auto"
    backend: str = "auto"

    def __post_init__(self) -> None:
        """Check every field; one ValueError lists all the problems found."""
        problems = []
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{item.name} must be a finite number, not {value}")
        if problems:  # NaN passes no comparison below: stop here
            raise ValueError("; ".join(problems))
        if self.orientations not in ("uniform", "grid", "star"):
            problems.append(
                f"orientations must be uniform, grid or star, not {self.orientations!r}"
            )
        if self.orientations == "star" and not self.angles_star:
            problems.append("orientations 'star' needs angles_star")
        if self.orientations == "uniform" and self.n_particles < 0:
            problems.append("n_particles must be >= 0")
        if self.orientations == "grid" and not 0 < self.angular_step_degrees <= 180:
            problems.append(
                f"angular_step_degrees must be in (0, 180], not {self.angular_step_degrees}"
            )
        if self.cone_overrepresentation > 1 and not (
            0 <= self.cone_tilt_min_degrees < self.cone_tilt_max_degrees <= 180
        ):
            problems.append("need 0 <= cone_tilt_min_degrees < cone_tilt_max_degrees <= 180")
        if self.box_size is not None and (self.box_size < 8 or self.box_size % 2):
            problems.append(f"box_size must be even and >= 8, not {self.box_size}")
        if self.voxel_size_angstrom is not None and self.voxel_size_angstrom <= 0:
            problems.append("voxel_size_angstrom must be positive")
        if self.noise_sd is not None and self.snr is not None:
            problems.append("give noise_sd or snr, not both")
        if self.noise_sd is not None and self.noise_sd < 0:
            problems.append("noise_sd must be >= 0")
        if self.snr is not None and self.snr <= 0:
            problems.append("snr must be positive")
        if self.cone_overrepresentation < 1:
            problems.append("cone_overrepresentation must be >= 1")
        if self.shift_sd_angstrom < 0:
            problems.append("shift_sd_angstrom must be >= 0")
        if min(self.belt_width_angstrom, self.belt_relative_density) < 0:
            problems.append("belt_width_angstrom and belt_relative_density must be >= 0")
        if self.belt_roughness_angstrom < 0:
            problems.append("belt_roughness_angstrom must be >= 0")
        if self.belt_width_angstrom > 0 and self.map_path:
            problems.append("a membrane belt needs an atomic model (belt_width_angstrom > 0)")
        if self.n_pure_noise < 0:
            problems.append("n_pure_noise must be >= 0")
        if not 0 < self.defocus_min_angstrom <= self.defocus_max_angstrom:
            problems.append("need 0 < defocus_min_angstrom <= defocus_max_angstrom")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if (self.batch_size is not None and self.batch_size < 1) or self.particles_per_stack < 1:
            problems.append("batch_size and particles_per_stack must be >= 1")
        if self.reference_lowpass_angstrom <= 0:
            problems.append("reference_lowpass_angstrom must be positive")
        if self.lowpass_resolution_angstrom is not None and self.lowpass_resolution_angstrom <= 0:
            problems.append("lowpass_resolution_angstrom must be positive")
        if self.padding_factor < 1:
            problems.append(f"padding_factor must be >= 1, not {self.padding_factor}")
        if self.density_oversampling < 2:
            problems.append(f"density_oversampling must be >= 2, not {self.density_oversampling}")
        if self.voltage_kv <= 0:
            problems.append("voltage_kv must be positive")
        if self.backend not in ("auto", "eager", "compiled"):
            problems.append(f"backend must be auto, eager or compiled, not {self.backend!r}")
        if problems:
            raise ValueError("; ".join(problems))


def config_from_dict(values: dict[str, Any]) -> SimulationConfig:
    """Build a SimulationConfig from a flat dict (unknown keys are an error naming them).

    A ``simulation.json`` record (which holds the config under ``"config"``) is accepted too.
    """
    if "config" in values and isinstance(values["config"], dict):
        values = values["config"]
    known = {f.name for f in dataclasses.fields(SimulationConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown simulation parameter(s): {', '.join(unknown)}")
    return SimulationConfig(**values)


def load_config(path: str | Path) -> SimulationConfig:
    """Read a SimulationConfig from a TOML or JSON file (flat keys, as the fields).

    Raises InputFileError naming the file for a missing or unreadable file or bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file does not exist")
    try:
        if path.suffix.lower() == ".json":
            values = json.loads(path.read_text())
        else:
            with open(path, "rb") as handle:
                values = tomllib.load(handle)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a readable TOML/JSON file ({exc})") from exc
    try:
        return config_from_dict(values)
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, str(exc)) from exc


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate_dataset` wrote (absolute paths) and what it derived.

    Attributes
    ----------
    output_dir, particles_star, ground_truth_star, true_map, initial_reference, record_json:
        the files (see the module docstring).
    pure_noise_star: None when there are no pure-noise particles.
    stacks: the ``.mrcs`` files in order.
    n_particles, n_signal, n_pure_noise: counts.
    box_size, voxel_size_angstrom: of the images and maps.
    noise_sd: the noise SD used (from ``noise_sd`` or ``snr``).
    signal_sd: mean standard deviation of the clean images of the first 500 signal particles
        (64 when the noise SD is given rather than an SNR).
    symmetry: point group of a shipped model (e.g. "D2"), else None.
    """

    output_dir: Path
    particles_star: Path
    ground_truth_star: Path
    pure_noise_star: Path | None
    true_map: Path
    initial_reference: Path
    record_json: Path
    stacks: tuple[Path, ...]
    n_particles: int
    n_signal: int
    n_pure_noise: int
    box_size: int
    voxel_size_angstrom: float
    noise_sd: float
    signal_sd: float
    symmetry: str | None


def simulate_dataset(
    config: SimulationConfig,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    resources: Callable[[Path], AvailableResources] = available_resources,
) -> SimulationResult:
    """Simulate a dataset (see the module docstring for the files) and return what it wrote.

    Before anything is written, the size of the dataset is worked out from the configuration
    (the box from the model or map, the number of particles without making them) and the
    estimated peak memory and disk use (:func:`cryoprior.simulate.resources.estimate_resources`)
    are compared with what is free; a dataset that does not fit is refused.

    Parameters
    ----------
    config: every parameter.
    output_dir: the dataset folder (created; must be empty unless ``overwrite``).
    overwrite: replace an existing dataset's files in ``output_dir``.
    progress: called as ``progress(done, total)`` after each batch of particles.
    force: skip the memory and disk checks.
    resources: what is free where the dataset goes (memory and disk); the default probes this
        machine (:func:`cryoprior.simulate.resources.available_resources`).

    Raises
    ------
    ValueError: a configuration that gives no particles; InsufficientResourcesError (a
        ValueError) when the dataset would not fit.
    InputFileError: an unreadable or invalid model, map or angles STAR.
    FileExistsError: ``output_dir`` is a file, or a non-empty folder without ``overwrite``.
    OSError: the folder or a file cannot be written (its path in ``filename``); no temporary
        file is left behind.

    Example
    -------
    >>> cfg = SimulationConfig(box_size=48, voxel_size_angstrom=5.0, n_particles=200,
    ...                        noise_sd=1.0)
    >>> simulate_dataset(cfg, "sim_betagal").particles_star.name  # doctest: +SKIP
    'particles.star'
    """
    out = Path(output_dir).resolve()
    device = _resolve_device(config.device)
    _check_output_dir(out, overwrite=overwrite)
    plan = _plan_source(config)
    star_poses = poses_from_star(str(config.angles_star)) if config.orientations == "star" else None
    n_total = _count_particles(config, star_poses) + config.n_pure_noise
    if n_total == 0:
        raise ValueError("the configuration gives no particles")
    estimate = estimate_resources(
        n_particles=n_total,
        box_size=plan.box_size,
        batch_size=config.batch_size or auto_batch_size(plan.box_size),
        particles_per_stack=config.particles_per_stack,
        padding_factor=config.padding_factor,
        model_oversampling=config.density_oversampling if plan.structure is not None else None,
    )
    logger.info(
        "estimated peak memory %s, disk %s",
        format_bytes(estimate.memory_bytes),
        format_bytes(estimate.disk_bytes),
    )
    if not force:
        old_stacks = (
            sum(p.stat().st_size for p in (out / STACK_DIR).glob("particles_*.mrcs"))
            if overwrite and (out / STACK_DIR).is_dir()
            else 0
        )
        check_resources(
            estimate,
            resources(out),
            output_dir=out,
            reclaimed_disk_bytes=old_stacks,
            what=plan.box_note,
        )
    if "stray atoms?" in plan.box_note:  # it fits, but is probably not what was meant
        logger.warning("%s: %s", plan.path, plan.box_note)
    _prepare_output_dir(out, overwrite=overwrite)

    truth, voxel, source, protein_only = _true_map(config, plan)
    n = truth.shape[0]
    poses = _poses(config, star_poses)
    n_signal_poses = len(poses)
    n_total = n_signal_poses + config.n_pure_noise
    is_signal = np.zeros(n_total, dtype=bool)
    if not config.pure_noise_only:
        mix = np.random.default_rng([config.seed, _MIX_STREAM])
        noise_places = np.sort(mix.permutation(n_total)[: config.n_pure_noise])
        is_signal[:] = True
        is_signal[noise_places] = False
    signal_index = np.cumsum(is_signal) - 1  # row in `poses` of each signal particle
    n_signal = int(is_signal.sum())

    optics = CTFOptics(config.voltage_kv, config.spherical_aberration_mm, config.amplitude_contrast)
    ctf_values = _defocus(config, n_total) if config.ctf else None
    fvol = fourier_volume(truth, padding_factor=config.padding_factor, device=device)
    backend = _resolve_backend(config.backend, device, n_total, n)
    batch_size = min(config.batch_size or auto_batch_size(n), n_total)
    config = dataclasses.replace(config, batch_size=batch_size)  # the record shows the value
    formation = ImageFormation(
        voxel_size_angstrom=voxel,
        ctf_optics=optics if config.ctf else None,
        lowpass_resolution_angstrom=config.lowpass_resolution_angstrom,
        lowpass_width_frequency=config.lowpass_width_frequency,
        noise_sd=0.0,
    )
    signal_sd, noise_sd = _noise_level(
        config, fvol, poses, formation, ctf_values, is_signal, backend
    )
    formation = dataclasses.replace(formation, noise_sd=noise_sd)
    logger.info(
        "simulating %d particles (%d signal, %d pure noise), box %d, %.4g A/px, noise SD %.4g",
        n_total, n_signal, n_total - n_signal, n, voxel, noise_sd,
    )  # fmt: skip

    _write_map(out / TRUE_MAP, truth, voxel)
    if protein_only is not None:
        _write_map(out / TRUE_MAP_PROTEIN, protein_only, voxel)
    reference = apply_filter(
        truth,
        raised_cosine_lowpass(
            n, resolution_angstrom=config.reference_lowpass_angstrom, voxel_size_angstrom=voxel
        ),
    )
    _write_map(out / INITIAL_REFERENCE, reference, voxel)

    (out / STACK_DIR).mkdir(exist_ok=True)
    stack_sizes = [
        min(config.particles_per_stack, n_total - start)
        for start in range(0, n_total, config.particles_per_stack)
    ]
    stacks = [out / f"{STACK_DIR}/particles_{k:04d}.mrcs" for k in range(1, len(stack_sizes) + 1)]
    image_names = [
        f"{i + 1:06d}@{stack.relative_to(out)}"
        for stack, size in zip(stacks, stack_sizes, strict=True)
        for i in range(size)
    ]

    def render_block(start: int) -> np.ndarray:
        """Render the index-aligned block of ``batch_size`` particles from ``start``.

        The last block is padded with copies of its first particle: every block has the same
        shapes.
        """
        b = int(batch_size)
        stop = min(start + b, n_total)
        rows = np.arange(start, start + b)
        rows[stop - start :] = start
        signal = is_signal[rows]
        images = render_particles(
            fvol,
            _batch_poses(poses, signal_index[rows][signal], signal),
            formation=formation,
            ctf=None if ctf_values is None else ctf_values.take(rows),
            particle_indices=rows,
            is_signal=signal,
            seed=config.seed,
            backend=backend,
        )
        return images[: stop - start]

    def blocks():
        """Yield the blocks in order, the next one rendered (in a thread) while this is written."""
        starts = list(range(0, n_total, config.batch_size))
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(render_block, starts[0])
            for following in [*starts[1:], None]:
                images = pending.result()
                if following is not None:
                    pending = pool.submit(render_block, following)
                yield images

    _write_stacks(stacks, stack_sizes, blocks(), n, voxel, progress)

    particles, truth_table, noise_table = _star_tables(
        image_names, is_signal, signal_index, poses, ctf_values
    )
    optics_table = _optics_table(n, voxel, optics)
    _write_star(out / PARTICLES_STAR, {"optics": optics_table, "particles": particles})
    _write_star(out / GROUND_TRUTH_STAR, {"optics": optics_table, "particles": truth_table})
    pure_noise_star = None
    if len(noise_table):
        pure_noise_star = out / PURE_NOISE_STAR
        _write_star(pure_noise_star, {"optics": optics_table, "particles": noise_table})
    elif (out / PURE_NOISE_STAR).exists():
        (out / PURE_NOISE_STAR).unlink()

    symmetry = source.get("symmetry")
    record = {
        "cryoprior_version": _version(),
        "config": dataclasses.asdict(config),
        "derived": {
            "box_size": n,
            "voxel_size_angstrom": voxel,
            "n_particles": n_total,
            "n_signal": n_signal,
            "n_pure_noise": n_total - n_signal,
            "noise_sd": noise_sd,
            "signal_sd": signal_sd,
            "snr": (signal_sd / noise_sd) ** 2 if noise_sd > 0 else None,
            "lowpass_zero_beyond_angstrom": (
                lowpass_zero_beyond_angstrom(
                    resolution_angstrom=config.lowpass_resolution_angstrom,
                    voxel_size_angstrom=voxel,
                    width_frequency=config.lowpass_width_frequency,
                )
                if config.lowpass_resolution_angstrom is not None
                else None
            ),
            "padding_factor": fvol.padding_factor,
            "backend": backend,
            "device": str(device),
            "source": source,
            "files": {
                "particles_star": PARTICLES_STAR,
                "ground_truth_star": GROUND_TRUTH_STAR,
                "pure_noise_star": PURE_NOISE_STAR if pure_noise_star else None,
                "true_map": TRUE_MAP,
                "true_map_protein": (TRUE_MAP_PROTEIN if "membrane_belt" in source else None),
                "initial_reference": INITIAL_REFERENCE,
                "stacks": [str(p.relative_to(out)) for p in stacks],
            },
            "random_streams": {
                "poses": [config.seed, _POSES_STREAM],
                "cone_views": [config.seed, _CONE_STREAM],
                "shifts": [config.seed, _SHIFT_STREAM],
                "defocus": [config.seed, _DEFOCUS_STREAM],
                "pure_noise_placement": [config.seed, _MIX_STREAM],
                "noise_of_particle_i": [config.seed, 1, "i"],
            },
        },
        "software": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "gemmi": _package_version("gemmi"),
        },
    }
    with _naming(out / RECORD_JSON):
        write_text_atomic(out / RECORD_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return SimulationResult(
        output_dir=out,
        particles_star=out / PARTICLES_STAR,
        ground_truth_star=out / GROUND_TRUTH_STAR,
        pure_noise_star=pure_noise_star,
        true_map=out / TRUE_MAP,
        initial_reference=out / INITIAL_REFERENCE,
        record_json=out / RECORD_JSON,
        stacks=tuple(stacks),
        n_particles=n_total,
        n_signal=n_signal,
        n_pure_noise=n_total - n_signal,
        box_size=n,
        voxel_size_angstrom=voxel,
        noise_sd=noise_sd,
        signal_sd=signal_sd,
        symmetry=symmetry,
    )


# --- steps ------------------------------------------------------------------------------------


def _check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder without ``overwrite`` (nothing is created)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty (use overwrite to replace a dataset)")


def _prepare_output_dir(out: Path, *, overwrite: bool) -> None:
    """Create the folder (and Particles/) and check it can be written.

    Remove an old dataset's stacks when overwriting. OSError names the folder.
    """
    with _naming(out):
        out.mkdir(parents=True, exist_ok=True)
        (out / STACK_DIR).mkdir(exist_ok=True)
        # a folder can exist and still refuse files (read-only mount, immutable, permissions)
        fd, probe = tempfile.mkstemp(prefix=".cryoprior-write-test.", dir=out / STACK_DIR)
        os.close(fd)
        os.unlink(probe)
    if overwrite:
        for old in (out / STACK_DIR).glob("particles_*.mrcs"):
            with _naming(old):
                old.unlink()


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Give an OSError that names no file (ENOSPC from a write, say) the path at hand."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def _resolve_device(name: str) -> torch.device:
    """Return the torch device of ``device``.

    ValueError for a name torch does not know or a GPU that is not there.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device {name!r} is not a torch device (auto, cpu, cuda, cuda:N)"
        ) from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r}: no CUDA GPU is available to torch")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: there are only {count} CUDA GPU(s)")
    return device


def auto_batch_size(box_size: int) -> int:
    """Particles per batch for a box: about 4 million pixels (between 16 and 4096)."""
    return int(max(16, min(4096, 2**22 // (box_size * box_size))))


def _resolve_backend(name: str, device: torch.device, n_particles: int, box: int) -> str:
    if name != "auto":
        return name
    worth_compiling = device.type == "cpu" and n_particles * (box / 128.0) ** 2 >= 20000
    return "compiled" if worth_compiling else "eager"


@dataclass(frozen=True)
class _SourcePlan:
    """The source's geometry, known before any map is made.

    path: the map or model file; structure, info, shipped: the model (None for a map);
    box_size, voxel_size_angstrom: of the maps and images; box_note: where an automatic box
    comes from (for a refusal message), else "".
    """

    path: Path
    box_size: int
    voxel_size_angstrom: float
    structure: Any = None
    info: Any = None
    shipped: Any = None
    box_note: str = ""


def _plan_source(config: SimulationConfig) -> _SourcePlan:
    """Read the model (or the map's header) and work out the box and voxel size."""
    if config.map_path is not None:
        path = Path(config.map_path)
        shape = _map_shape(path)
        if len(shape) != 3 or len(set(shape)) != 1:
            raise InputFileError(path, f"the map must be cubic, not of shape {shape}")
        if config.box_size is not None and config.box_size != shape[0]:
            raise InputFileError(path, f"box {shape[0]} differs from box_size {config.box_size}")
        voxel = config.voxel_size_angstrom or read_map_header_voxel_size(path)
        if not voxel or not math.isfinite(voxel) or voxel <= 0:
            raise InputFileError(path, "no voxel size in the header: give voxel_size_angstrom")
        return _SourcePlan(path=path, box_size=shape[0], voxel_size_angstrom=float(voxel))

    path, shipped = resolve_model_path(config.model)
    structure = read_model(path, remove_waters=config.remove_waters)
    info = structure_summary(structure)
    voxel = float(config.voxel_size_angstrom or 1.0)
    box = config.box_size
    note = ""
    if box is None:
        needed = 2.0 * (info.max_radius_angstrom + 10.0) / voxel
        box = int(np.ceil(needed / 2.0)) * 2
        note = (
            f"box {box} chosen to hold {path.name} at {voxel:g} A/px: its farthest atom, "
            f"{info.farthest_atom}, is {info.max_radius_angstrom:.0f} A from the centre of mass"
        )
        if info.max_radius_angstrom > 2.0 * info.radius_99_angstrom + 20.0:
            note += f" (99% of the atoms are within {info.radius_99_angstrom:.0f} A: stray atoms?)"
        note += "; give box_size (--box) or a larger voxel size"
    return _SourcePlan(
        path=path,
        box_size=int(box),
        voxel_size_angstrom=voxel,
        structure=structure,
        info=info,
        shipped=shipped,
        box_note=note,
    )


def _map_shape(path: Path) -> tuple[int, ...]:
    """(nz, ny, nx) of an MRC file from its header (no data read); InputFileError if not."""
    if not path.is_file():
        raise InputFileError(path, "file does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                header = mrc.header
                shape = (int(header.nz), int(header.ny), int(header.nx))
    except Exception as exc:  # mrcfile raises ValueError/OSError/etc. for bad files
        raise InputFileError(path, f"not a readable MRC file ({exc})") from exc
    return shape[1:] if shape[0] == 1 else shape


def _count_particles(config: SimulationConfig, star_poses: Poses | None) -> int:
    """Count the signal particles the orientations give, without making them.

    Uniform with a cone: the expected count.
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


def _true_map(
    config: SimulationConfig, plan: _SourcePlan
) -> tuple[np.ndarray, float, dict[str, Any], np.ndarray | None]:
    """Return the map to project, its voxel size and a description of where it came from.

    Also the protein alone when a membrane belt was added (else None).
    """
    if plan.structure is None:
        path = plan.path
        volume = read_map(path, dtype=np.float32)
        if volume.shape != (plan.box_size,) * 3:
            raise InputFileError(path, f"the map must be cubic, not of shape {volume.shape}")
        if not np.isfinite(volume).all():
            bad = int((~np.isfinite(volume)).sum())
            raise InputFileError(path, f"{bad} voxel(s) are not finite (NaN or infinite)")
        source: dict[str, Any] = {
            "kind": "map",
            "path": str(path.resolve()),
            "sha256": _sha256(path),
        }
        return volume, plan.voxel_size_angstrom, source, None

    path, shipped, structure, info = plan.path, plan.shipped, plan.structure, plan.info
    voxel = plan.voxel_size_angstrom
    box = plan.box_size
    volume = model_to_map(
        structure,
        box_size=box,
        voxel_size_angstrom=voxel,
        b_factor_angstrom2=config.b_factor_angstrom2,
        oversampling=config.density_oversampling,
    )
    source = {
        "kind": "model",
        "model": config.model,
        "path": str(path.resolve()),
        "sha256": _sha256(path),
        "shipped_name": shipped.name if shipped else None,
        "pdb_id": shipped.pdb_id if shipped else None,
        "symmetry": shipped.symmetry if shipped else None,
        "n_atoms": info.n_atoms,
        "n_chains": info.n_chains,
        "centre_of_mass_angstrom": list(info.centre_of_mass_angstrom),
        "max_radius_angstrom": info.max_radius_angstrom,
    }
    if config.belt_width_angstrom > 0:
        protein = volume
        volume, source["membrane_belt"] = _with_belt(protein, config, plan)
        return volume, voxel, source, protein
    return volume, voxel, source, None


def _with_belt(
    protein: np.ndarray, config: SimulationConfig, plan: _SourcePlan
) -> tuple[np.ndarray, dict[str, Any]]:
    """Add a membrane belt around the model's transmembrane band to the protein map.

    The map holds the model's centre of mass at voxel N//2, as ``model_to_map(centre=True)``.
    """
    from cryoprior.io.atomic_model import atomic_model_from_structure
    from cryoprior.simulate.belt import add_membrane_belt, transmembrane_band

    model = atomic_model_from_structure(plan.structure)
    band = transmembrane_band(model)
    voxel = plan.voxel_size_angstrom
    com = np.asarray(plan.info.centre_of_mass_angstrom, dtype=np.float64)
    origin = com - (plan.box_size // 2) * voxel
    volume = add_membrane_belt(
        protein,
        band,
        voxel_size_angstrom=voxel,
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
        "protein_map": TRUE_MAP_PROTEIN,
    }
    return volume, record


def _poses(config: SimulationConfig, star_poses: Poses | None = None) -> Poses:
    seed = config.seed
    if star_poses is not None:
        poses = star_poses
    elif config.orientations == "uniform":
        poses = uniform_poses(config.n_particles, seed=np.random.default_rng([seed, _POSES_STREAM]))
    elif config.orientations == "grid":
        poses = grid_poses(
            config.angular_step_degrees, seed=np.random.default_rng([seed, _POSES_STREAM])
        )
    else:
        poses = poses_from_star(str(config.angles_star))
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


def _defocus(config: SimulationConfig, n_total: int) -> CTFValues:
    rng = np.random.default_rng([config.seed, _DEFOCUS_STREAM])
    du = rng.uniform(config.defocus_min_angstrom, config.defocus_max_angstrom, n_total)
    angle = rng.uniform(0.0, 180.0, n_total)
    return CTFValues(du, du - config.astigmatism_angstrom, angle)


def _batch_poses(poses: Poses, pose_rows: np.ndarray, signal: np.ndarray) -> Poses:
    """Poses aligned with a batch's rows (pure-noise rows get a placeholder pose)."""
    if len(poses) == 0:
        return _zero_poses(signal.size)
    rows = np.zeros(signal.size, dtype=np.int64)
    rows[signal] = pose_rows
    return poses.take(rows)


def _zero_poses(n: int) -> Poses:
    zeros = np.zeros(n)
    return Poses(zeros, zeros, zeros)


def _noise_level(
    config, fvol, poses, formation, ctf_values, is_signal, backend
) -> tuple[float, float]:
    """Return (signal SD, noise SD).

    The signal SD is the mean SD of the clean images of the first 500 signal particles (SNR
    mode) or the first 64 (recorded only, with a given noise SD).
    """
    n_ref = min(len(poses), _SNR_REFERENCE_IMAGES if config.snr is not None else _SIGNAL_SD_IMAGES)
    signal_sd = 0.0
    if n_ref:
        # the particles that carry poses 0..n_ref-1 (the CTF belongs to the particle)
        owners = np.flatnonzero(is_signal)[:n_ref] if is_signal.any() else np.arange(n_ref)
        sds = []
        b = config.batch_size
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


def _write_stacks(stacks, sizes, blocks, n: int, voxel: float, progress) -> None:
    """Write float32 image stacks of the given sizes from a stream of image blocks (any sizes).

    One stack at a time through a memory map; each stack is renamed into place when complete.

    The whole file is reserved (``posix_fallocate``) before the map is written, so a full disk
    is an OSError (ENOSPC, naming the stack) here rather than a SIGBUS while writing the map;
    on any error or interruption the temporary file is removed.
    """
    total = int(sum(sizes))
    done = 0
    pending = np.zeros((0, n, n), dtype=np.float32)
    block_iter = iter(blocks)
    for path, size in zip(stacks, sizes, strict=True):
        with _naming(path):
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=".tmp.mrcs", dir=path.parent
            )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with (
                _naming(path),
                mrcfile.new_mmap(tmp, shape=(size, n, n), mrc_mode=2, overwrite=True) as mrc,
            ):
                reserve = os.open(tmp, os.O_RDWR)
                try:
                    reserve_file_space(reserve, os.fstat(reserve).st_size)
                finally:
                    os.close(reserve)
                mrc.set_image_stack()
                mrc.voxel_size = voxel
                _label(mrc.header)
                stats = _Stats()
                position = 0
                while position < size:
                    if not len(pending):
                        pending = next(block_iter)
                    k = min(size - position, len(pending))
                    chunk, pending = pending[:k], pending[k:]
                    mrc.data[position : position + k] = chunk
                    stats.add(chunk)
                    position += k
                    done += k
                    if progress is not None:
                        progress(done, total)
                stats.write(mrc.header)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


_MRC_LABEL = "cryoprior simulate"


def _label(header) -> None:
    """Set a fixed label instead of mrcfile's time-stamped one (same dataset, same bytes)."""
    header.label[0] = _MRC_LABEL
    header.nlabl = 1


def _write_map(path: Path, volume: np.ndarray, voxel: float) -> None:
    """Write a float32 map atomically with a fixed label."""
    with _naming(path):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.mrc", dir=path.parent)
    os.close(fd)
    try:
        with _naming(path), mrcfile.new(tmp_name, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
            mrc.voxel_size = voxel
            mrc.update_header_stats()
            _label(mrc.header)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class _Stats:
    """Running min, max, mean and RMS deviation of float32 images (MRC header fields)."""

    def __init__(self) -> None:
        self.low, self.high, self.total, self.total2, self.count = np.inf, -np.inf, 0.0, 0.0, 0

    def add(self, images: np.ndarray) -> None:
        flat = images.reshape(len(images), -1)
        self.low = min(self.low, float(images.min()))
        self.high = max(self.high, float(images.max()))
        self.total += float(flat.sum(dtype=np.float64))
        self.total2 += float(np.einsum("ij,ij->", flat, flat, dtype=np.float64))
        self.count += images.size

    def write(self, header) -> None:
        mean = self.total / self.count
        header.dmin = self.low
        header.dmax = self.high
        header.dmean = mean
        header.rms = float(np.sqrt(max(self.total2 / self.count - mean * mean, 0.0)))


def _optics_table(n: int, voxel: float, optics: CTFOptics) -> pd.DataFrame:
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


def _star_tables(image_names, is_signal, signal_index, poses, ctf_values):
    """Build the particles table (no poses), the ground truth and the pure-noise rows.

    The ground truth holds the signal rows with their poses.
    """
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


def _write_star(path: Path, blocks: dict[str, pd.DataFrame]) -> None:
    """Write STAR through starfile, with RELION's version line instead of starfile's time stamp.

    The same dataset thus gives the same bytes.
    """
    lines = starfile.to_string(blocks, float_format="%.6f").splitlines()
    while lines and (lines[0].startswith("# Created by") or not lines[0].strip()):
        lines.pop(0)
    with _naming(path):
        write_text_atomic(path, "\n# version 30001\n\n" + "\n".join(lines) + "\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version() -> str:
    from cryoprior import __version__

    return __version__


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
