"""Memory and disk a simulated dataset needs, what the machine has, and refusal if it won't fit.

:func:`estimate_resources` is a model of the peak memory and the bytes written by
:func:`cryoprior.simulate.dataset.simulate_dataset`, meant to be a little above the truth. Its
constants were measured as the peak RSS over the RSS after a warm-up run
(``resource.getrusage``; CPU, eager backend, torch 1 thread, the shipped beta-galactosidase
model, default batch sizes):

=============================================  =============  ==========
configuration                                  measured peak  this model
=============================================  =============  ==========
box 64, 16 particles                           71 MB          105 MB
box 128, 16 particles (density map dominates)  438 MB         486 MB
box 128, 512 particles (batch 256)             740 MB         982 MB
box 32, 20,000 particles (batch 4096)          726 MB         790 MB
box 32, 60,000 particles                       780 MB         838 MB
box 16, 50,000 particles                       213 MB         289 MB
box 16, 250,000 particles, CTF, shifts         402 MB         529 MB
=============================================  =============  ==========

The terms: 50 MB fixed; the density map of a model is computed on a grid ``oversampling``
times finer (about 26 bytes per fine voxel: gemmi's float32 grid, a float64 copy, its
transform); the projector's padded 3D transform (about 100 bytes per voxel of the box at
padding 2, scaling with padding^3); two batches of images in flight (170 bytes per pixel of a
batch); the per-particle tables (poses, CTF, image names, the STAR text: 1,200 bytes per
particle). The files: the stacks exactly (float32 and a 1024-byte header per stack), the two
maps, and 512 bytes of STAR text per particle (257 are written with CTF and shifts).

:func:`available_resources` reads ``/proc/meminfo`` (``MemAvailable``), a cgroup v2 memory
limit, ``RLIMIT_AS`` and :func:`shutil.disk_usage`; :func:`check_resources` refuses with one
line giving the need and what is there.
"""

from __future__ import annotations

import logging
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AvailableResources",
    "InsufficientResourcesError",
    "ResourceEstimate",
    "available_resources",
    "check_resources",
    "estimate_resources",
    "format_bytes",
]

logger = logging.getLogger(__name__)

MRC_HEADER_BYTES = 1024
_MODEL_MAP_BYTES_PER_FINE_VOXEL = 26
_FOURIER_VOLUME_BYTES_PER_VOXEL = 100  # at padding 2; scales with (padding / 2)^3
_BATCH_BYTES_PER_PIXEL = 170  # two batches in flight (one rendered while one is written)
_BYTES_PER_PARTICLE_MEMORY = 1200
_FIXED_MEMORY_BYTES = 50_000_000  # small arrays, allocator slack
_STAR_BYTES_PER_PARTICLE = 512


class InsufficientResourcesError(ValueError):
    """The dataset would not fit in the free memory or disk (one-line message)."""


@dataclass(frozen=True)
class ResourceEstimate:
    """Peak memory and bytes written by one simulation.

    Attributes
    ----------
    memory_bytes: estimated peak memory above the running process's.
    disk_bytes: bytes the dataset's files take.
    stack_bytes: of which the image stacks.
    n_particles, box_size: what the estimate is for.
    """

    memory_bytes: int
    disk_bytes: int
    stack_bytes: int
    n_particles: int
    box_size: int


@dataclass(frozen=True)
class AvailableResources:
    """Free memory and disk (None: unknown, not checked).

    Attributes
    ----------
    memory_bytes: the smallest of MemAvailable, a cgroup's free memory and the address space
        left under RLIMIT_AS.
    disk_bytes: free bytes on the output folder's file system (for an unprivileged user).
    disk_folder: the existing folder that was measured.
    """

    memory_bytes: int | None
    disk_bytes: int | None
    disk_folder: Path | None = None


def estimate_resources(
    *,
    n_particles: int,
    box_size: int,
    batch_size: int,
    particles_per_stack: int,
    padding_factor: float = 2.0,
    model_oversampling: int | None = None,
) -> ResourceEstimate:
    """Memory and disk of a simulation (see the module docstring for the model).

    Parameters
    ----------
    n_particles: particles in all (signal and pure noise).
    box_size: N, the images are N x N and the maps N^3.
    batch_size: particles per projection batch.
    particles_per_stack: particles per ``.mrcs`` file.
    padding_factor: the projector's padding.
    model_oversampling: the density grid oversampling when the map is made from a model;
        None when a map file is projected.

    Example
    -------
    >>> e = estimate_resources(n_particles=1000, box_size=64, batch_size=1000,
    ...                        particles_per_stack=10000)
    >>> e.stack_bytes
    16385024
    """
    n = int(box_size)
    count = int(n_particles)
    voxels = n**3
    if model_oversampling is not None:
        map_phase = _MODEL_MAP_BYTES_PER_FINE_VOXEL * (n * int(model_oversampling)) ** 3
    else:
        map_phase = 16 * voxels  # the map read as float32, and a float64 copy
    fourier = _FOURIER_VOLUME_BYTES_PER_VOXEL * voxels * (float(padding_factor) / 2.0) ** 3
    batch = _BATCH_BYTES_PER_PIXEL * min(int(batch_size), max(count, 1)) * n * n
    projection_phase = 4 * voxels + int(fourier) + batch
    memory = (
        _FIXED_MEMORY_BYTES + max(map_phase, projection_phase) + _BYTES_PER_PARTICLE_MEMORY * count
    )
    n_stacks = -(-count // int(particles_per_stack))
    stacks = count * n * n * 4 + n_stacks * MRC_HEADER_BYTES
    maps = 2 * (voxels * 4 + MRC_HEADER_BYTES)
    disk = stacks + maps + _STAR_BYTES_PER_PARTICLE * count + 65536
    return ResourceEstimate(
        memory_bytes=int(memory),
        disk_bytes=int(disk),
        stack_bytes=int(stacks),
        n_particles=count,
        box_size=n,
    )


def available_resources(folder: str | Path) -> AvailableResources:
    """Measure free memory (and process limits) and free disk where ``folder`` is.

    For a folder not created yet, the disk of its nearest existing parent.
    """
    existing = Path(folder).resolve()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        disk = int(shutil.disk_usage(existing).free)
    except OSError as exc:
        logger.debug("free disk of %s unknown: %s", existing, exc)
        disk = None
    return AvailableResources(
        memory_bytes=_available_memory(), disk_bytes=disk, disk_folder=existing
    )


def check_resources(
    estimate: ResourceEstimate,
    available: AvailableResources,
    *,
    output_dir: Path,
    reclaimed_disk_bytes: int = 0,
    what: str = "",
) -> None:
    """Raise :class:`InsufficientResourcesError` when the estimate exceeds what is available.

    Parameters
    ----------
    estimate, available: from :func:`estimate_resources` and :func:`available_resources`.
    output_dir: named in the message.
    reclaimed_disk_bytes: bytes of old files the run deletes first (an overwrite).
    what: a description of where the size comes from, appended to the message.
    """
    size = f"{estimate.n_particles:,} particles of {estimate.box_size}x{estimate.box_size} px"
    if what:
        size += f"; {what}"
    short = []
    if available.disk_bytes is not None:
        free = available.disk_bytes + int(reclaimed_disk_bytes)
        if estimate.disk_bytes > free:
            short.append(f"{format_bytes(estimate.disk_bytes)} of disk ({format_bytes(free)} free)")
    if available.memory_bytes is not None and estimate.memory_bytes > available.memory_bytes:
        short.append(
            f"about {format_bytes(estimate.memory_bytes)} of memory "
            f"({format_bytes(available.memory_bytes)} available)"
        )
    if short:
        raise InsufficientResourcesError(
            f"{output_dir}: the dataset does not fit: it needs {' and '.join(short)} for "
            f"{size}; use --force to try anyway"
        )


def format_bytes(count: float) -> str:
    """1234567 -> '1.2 MB' (powers of 1000)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000.0
    raise AssertionError("unreachable")


def _available_memory() -> int | None:
    """min(MemAvailable, cgroup v2 limit - usage, RLIMIT_AS - VmSize); None when unknown."""
    candidates = []
    meminfo = _read_kib_fields("/proc/meminfo")
    if "MemAvailable" in meminfo:
        candidates.append(meminfo["MemAvailable"])
    cgroup = _cgroup_free_memory()
    if cgroup is not None:
        candidates.append(cgroup)
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        size = _read_kib_fields("/proc/self/status").get("VmSize", 0)
        candidates.append(max(soft - size, 0))
    return min(candidates) if candidates else None


def _read_kib_fields(path: str) -> dict[str, int]:
    """'Name:   123 kB' lines of a /proc file as bytes."""
    out: dict[str, int] = {}
    try:
        with open(path) as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                    out[name] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def _cgroup_free_memory() -> int | None:
    """memory.max - memory.current of this process's cgroup v2, or None."""
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            base = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
            try:
                limit = (base / "memory.max").read_text().strip()
                current = int((base / "memory.current").read_text().strip())
            except (OSError, ValueError):
                return None
            if limit == "max" or not limit.isdigit():
                return None
            return max(int(limit) - current, 0)
    return None
