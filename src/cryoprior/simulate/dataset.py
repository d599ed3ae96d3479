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

This module is the simulation's shell: it reads the source (model, map, angles STAR), checks
the machine, and writes the folder. The configuration is :mod:`cryoprior.simulate.config`;
what the particles are (counts, poses, defocus, noise level, rendering in blocks, the STAR
tables) is the pure core :mod:`cryoprior.simulate.particles`; the stacks are written by
:mod:`cryoprior.io.stacks`.

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

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cryoprior.errors import InputFileError
from cryoprior.fourier.filters import apply_filter, raised_cosine_lowpass
from cryoprior.io._atomic import write_text_atomic
from cryoprior.io.atomic_model import AtomicModel, read_atomic_model
from cryoprior.io.model_map import model_to_map
from cryoprior.io.mrc import (
    read_map,
    read_map_header,
    write_map_atomic,
)
from cryoprior.io.relion import poses_from_star
from cryoprior.io.stacks import naming_os_errors, write_stacks
from cryoprior.io.star import write_star_atomic
from cryoprior.simulate.config import SimulationConfig, config_from_dict
from cryoprior.simulate.ctf import CTFOptics
from cryoprior.simulate.density import StructureSummary, structure_summary
from cryoprior.simulate.images import ImageFormation, lowpass_zero_beyond_angstrom
from cryoprior.simulate.models import resolve_model_path
from cryoprior.simulate.particles import (
    auto_batch_size,
    automatic_box,
    count_particles,
    draw_defocus,
    make_poses,
    membrane_belt,
    noise_level,
    optics_table,
    random_streams,
    render_block,
    resolve_backend,
    signal_mask,
    star_tables,
)
from cryoprior.simulate.project import fourier_volume
from cryoprior.simulate.resources import (
    AvailableResources,
    available_resources,
    check_resources,
    estimate_resources,
    format_bytes,
)

__all__ = [
    "SimulationResult",
    "load_config",
    "simulate_dataset",
]

logger = logging.getLogger(__name__)

PARTICLES_STAR = "particles.star"
GROUND_TRUTH_STAR = "ground_truth.star"
PURE_NOISE_STAR = "pure_noise.star"
TRUE_MAP = "true_map.mrc"
TRUE_MAP_PROTEIN = "true_map_protein.mrc"  # the protein without its membrane belt
INITIAL_REFERENCE = "initial_reference.mrc"
RECORD_JSON = "simulation.json"
STACK_DIR = "Particles"
_MRC_LABEL = "cryoprior simulate"


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
    n_total = count_particles(config, star_poses) + config.n_pure_noise
    if n_total == 0:
        raise ValueError("the configuration gives no particles")
    _check_it_fits(config, plan, n_total, out, overwrite=overwrite, force=force, free=resources)
    if "stray atoms?" in plan.box_note:  # it fits, but is probably not what was meant
        logger.warning("%s: %s", plan.path, plan.box_note)
    _prepare_output_dir(out, overwrite=overwrite)

    truth, voxel, source, protein_only = _true_map(config, plan)
    n = truth.shape[0]
    poses = make_poses(config, star_poses)
    is_signal = signal_mask(config, len(poses))
    n_total = is_signal.size
    n_signal = int(is_signal.sum())

    optics = CTFOptics(config.voltage_kv, config.spherical_aberration_mm, config.amplitude_contrast)
    ctf_values = draw_defocus(config, n_total) if config.ctf else None
    fvol = fourier_volume(truth, padding_factor=config.padding_factor, device=device)
    backend = resolve_backend(config.backend, device, n_total, n)
    batch_size = min(config.batch_size or auto_batch_size(n), n_total)
    config = dataclasses.replace(config, batch_size=batch_size)  # the record shows the value
    formation = ImageFormation(
        voxel_size_angstrom=voxel,
        ctf_optics=optics if config.ctf else None,
        envelope_b_factor_angstrom2=config.envelope_b_factor_angstrom2,
        lowpass_resolution_angstrom=config.lowpass_resolution_angstrom,
        lowpass_width_frequency=config.lowpass_width_frequency,
        noise_sd=0.0,
    )
    signal_sd, noise_sd = noise_level(
        config, fvol, poses, formation, ctf_values, is_signal, backend
    )
    formation = dataclasses.replace(formation, noise_sd=noise_sd)
    logger.info(
        "simulating %d particles (%d signal, %d pure noise), box %d, %.4g A/px, noise SD %.4g",
        n_total, n_signal, n_total - n_signal, n, voxel, noise_sd,
    )  # fmt: skip

    _write_maps(out, truth, protein_only, voxel, config.reference_lowpass_angstrom)
    stacks, stack_sizes = _stack_layout(out, n_total, config.particles_per_stack)
    render = partial(
        render_block,
        fvol,
        poses,
        batch_size=batch_size,
        is_signal=is_signal,
        signal_index=np.cumsum(is_signal) - 1,
        formation=formation,
        ctf_values=ctf_values,
        seed=config.seed,
        backend=backend,
    )
    write_stacks(
        stacks,
        stack_sizes,
        _prefetched(render, range(0, n_total, batch_size)),
        box_size=n,
        voxel_size_angstrom=voxel,
        label=_MRC_LABEL,
        progress=progress,
    )

    image_names = [
        f"{i + 1:06d}@{stack.relative_to(out)}"
        for stack, size in zip(stacks, stack_sizes, strict=True)
        for i in range(size)
    ]
    particles, truth_table, noise_table = star_tables(image_names, is_signal, poses, ctf_values)
    optics_block = optics_table(n, voxel, optics)
    _write_star(out / PARTICLES_STAR, {"optics": optics_block, "particles": particles})
    _write_star(out / GROUND_TRUTH_STAR, {"optics": optics_block, "particles": truth_table})
    pure_noise_star = None
    if len(noise_table):
        pure_noise_star = out / PURE_NOISE_STAR
        _write_star(pure_noise_star, {"optics": optics_block, "particles": noise_table})
    elif (out / PURE_NOISE_STAR).exists():
        (out / PURE_NOISE_STAR).unlink()

    derived = {
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
        "random_streams": random_streams(config.seed),
    }
    _write_record(out / RECORD_JSON, config, derived)
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
        symmetry=source.get("symmetry"),
    )


# --- steps ------------------------------------------------------------------------------------


def _check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder without ``overwrite`` (nothing is created)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty (use overwrite to replace a dataset)")


def _check_it_fits(
    config: SimulationConfig,
    plan: _SourcePlan,
    n_total: int,
    out: Path,
    *,
    overwrite: bool,
    force: bool,
    free: Callable[[Path], AvailableResources],
) -> None:
    """Log the estimated peak memory and disk use; refuse a dataset that does not fit.

    ``force`` skips the refusal; an overwritten dataset's stacks count as free disk.
    """
    estimate = estimate_resources(
        n_particles=n_total,
        box_size=plan.box_size,
        batch_size=config.batch_size or auto_batch_size(plan.box_size),
        particles_per_stack=config.particles_per_stack,
        padding_factor=config.padding_factor,
        model_oversampling=config.density_oversampling if plan.model is not None else None,
    )
    logger.info(
        "estimated peak memory %s, disk %s",
        format_bytes(estimate.memory_bytes),
        format_bytes(estimate.disk_bytes),
    )
    if force:
        return
    old_stacks = (
        sum(p.stat().st_size for p in (out / STACK_DIR).glob("particles_*.mrcs"))
        if overwrite and (out / STACK_DIR).is_dir()
        else 0
    )
    check_resources(
        estimate, free(out), output_dir=out, reclaimed_disk_bytes=old_stacks, what=plan.box_note
    )


def _prepare_output_dir(out: Path, *, overwrite: bool) -> None:
    """Create the folder (and Particles/) and check it can be written.

    Remove an old dataset's stacks when overwriting. OSError names the folder.
    """
    with naming_os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        (out / STACK_DIR).mkdir(exist_ok=True)
        # a folder can exist and still refuse files (read-only mount, immutable, permissions)
        fd, probe = tempfile.mkstemp(prefix=".cryoprior-write-test.", dir=out / STACK_DIR)
        os.close(fd)
        os.unlink(probe)
    if overwrite:
        for old in (out / STACK_DIR).glob("particles_*.mrcs"):
            with naming_os_errors(old):
                old.unlink()


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


@dataclass(frozen=True)
class _SourcePlan:
    """The source's geometry, known before any map is made.

    path: the map or model file; model, info, shipped: the model (None for a map);
    box_size, voxel_size_angstrom: of the maps and images; box_note: where an automatic box
    comes from (for a refusal message), else "".
    """

    path: Path
    box_size: int
    voxel_size_angstrom: float
    model: AtomicModel | None = None
    info: StructureSummary | None = None
    shipped: Any = None
    box_note: str = ""


def _plan_source(config: SimulationConfig) -> _SourcePlan:
    """Read the model (or the map's header) and work out the box and voxel size."""
    if config.map_path is not None:
        path = Path(config.map_path)
        header = read_map_header(path)
        shape = header.shape[1:] if header.shape[0] == 1 else header.shape
        if len(shape) != 3 or len(set(shape)) != 1:
            raise InputFileError(path, f"the map must be cubic, not of shape {shape}")
        if config.box_size is not None and config.box_size != shape[0]:
            raise InputFileError(path, f"box {shape[0]} differs from box_size {config.box_size}")
        voxel = config.voxel_size_angstrom or header.voxel_size_angstrom
        if not voxel or not math.isfinite(voxel) or voxel <= 0:
            raise InputFileError(path, "no voxel size in the header: give voxel_size_angstrom")
        return _SourcePlan(path=path, box_size=shape[0], voxel_size_angstrom=float(voxel))

    path, shipped = resolve_model_path(config.model)
    # every atom in the file is imaged: hydrogens kept, waters unless remove_waters
    model = read_atomic_model(path, remove_hydrogens=False, remove_waters=config.remove_waters)
    info = structure_summary(model)
    voxel = float(config.voxel_size_angstrom or 1.0)
    box = config.box_size
    note = ""
    if box is None:
        box = automatic_box(max_radius_angstrom=info.max_radius_angstrom, voxel_size_angstrom=voxel)
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
        model=model,
        info=info,
        shipped=shipped,
        box_note=note,
    )


def _true_map(
    config: SimulationConfig, plan: _SourcePlan
) -> tuple[np.ndarray, float, dict[str, Any], np.ndarray | None]:
    """Return the map to project, its voxel size and a description of where it came from.

    Also the protein alone when a membrane belt was added (else None).
    """
    if plan.model is None or plan.info is None:
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

    path, shipped, model, info = plan.path, plan.shipped, plan.model, plan.info
    voxel = plan.voxel_size_angstrom
    box = plan.box_size
    volume = model_to_map(
        model,
        box_size=box,
        voxel_size_angstrom=voxel,
        centre=True,
        b_factor_angstrom2=config.b_factor_angstrom2,
        band_limited=True,
        oversampling=config.density_oversampling,
    ).astype(np.float32)
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
        volume, belt = membrane_belt(
            protein,
            config,
            model=model,
            centre_of_mass_angstrom=info.centre_of_mass_angstrom,
            voxel_size_angstrom=voxel,
        )
        source["membrane_belt"] = {**belt, "protein_map": TRUE_MAP_PROTEIN}
        return volume, voxel, source, protein
    return volume, voxel, source, None


def _write_map(path: Path, volume: np.ndarray, voxel: float) -> None:
    """Write a float32 map atomically with the fixed label (an OSError names ``path``)."""
    with naming_os_errors(path):
        write_map_atomic(path, volume, voxel_size_angstrom=voxel, label=_MRC_LABEL)


def _write_maps(
    out: Path,
    truth: np.ndarray,
    protein_only: np.ndarray | None,
    voxel: float,
    reference_lowpass_angstrom: float,
) -> None:
    """Write the true map, the protein alone (when there is a belt) and the initial reference."""
    _write_map(out / TRUE_MAP, truth, voxel)
    if protein_only is not None:
        _write_map(out / TRUE_MAP_PROTEIN, protein_only, voxel)
    reference = apply_filter(
        truth,
        raised_cosine_lowpass(
            truth.shape[0],
            resolution_angstrom=reference_lowpass_angstrom,
            voxel_size_angstrom=voxel,
        ),
    )
    _write_map(out / INITIAL_REFERENCE, reference, voxel)


def _stack_layout(out: Path, n_total: int, per_stack: int) -> tuple[list[Path], list[int]]:
    """Return the stacks' paths (Particles/particles_NNNN.mrcs) and their sizes."""
    (out / STACK_DIR).mkdir(exist_ok=True)
    sizes = [min(per_stack, n_total - start) for start in range(0, n_total, per_stack)]
    stacks = [out / f"{STACK_DIR}/particles_{k:04d}.mrcs" for k in range(1, len(sizes) + 1)]
    return stacks, sizes


def _prefetched(render: Callable[[int], np.ndarray], starts: range) -> Iterator[np.ndarray]:
    """Yield ``render(start)`` in order, rendering the next one (in a thread) during the write."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(render, starts[0])
        for following in [*starts[1:], None]:
            images = pending.result()
            if following is not None:
                pending = pool.submit(render, following)
            yield images


def _write_record(path: Path, config: SimulationConfig, derived: dict[str, Any]) -> None:
    """Write simulation.json: the version, every parameter and what was derived from them."""
    record = {
        "cryoprior_version": _version(),
        "config": dataclasses.asdict(config),
        "derived": derived,
        "software": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "gemmi": _package_version("gemmi"),
        },
    }
    with naming_os_errors(path):
        write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _write_star(path: Path, blocks: dict[str, pd.DataFrame | dict[str, Any]]) -> None:
    """Write RELION 3.1 STAR atomically, with its version line (the same dataset, the same bytes)."""
    with naming_os_errors(path):
        write_star_atomic(path, blocks, relion_version=30001)


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
