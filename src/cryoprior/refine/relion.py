"""Build and run RELION 3.1's gold-standard auto-refine with an external-reconstruction hook.

Gold-standard refinement needs MPI (plain ``relion_refine`` refuses
``--split_random_halves``): ``mpirun -np 3 relion_refine_mpi`` runs a leader and one rank
per half-set. The hook command goes into ``RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE`` and is
exported to every rank (``mpirun -x``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AutoRefineSettings",
    "RefineResult",
    "RelionNotFoundError",
    "build_refine_command",
    "relion_project_uniform",
    "run_auto_refine",
    "require_programs",
]

logger = logging.getLogger(__name__)

HOOK_VARIABLE = "RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE"


class RelionNotFoundError(RuntimeError):
    """A RELION or MPI program is not on PATH."""


def require_programs(*names: str) -> dict[str, str]:
    """Absolute paths of programs on PATH; RelionNotFoundError naming the missing ones."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, p in found.items() if p is None]
    if missing:
        raise RelionNotFoundError(
            f"not found on PATH: {', '.join(missing)} "
            "(install RELION 3.1 and OpenMPI, e.g. `apt-get install -y relion`)"
        )
    return {name: str(p) for name, p in found.items()}


@dataclass(frozen=True)
class AutoRefineSettings:
    """Options of one ``relion_refine_mpi --auto_refine --split_random_halves`` run.

    Paths are relative to the working folder the run starts in (RELION's project folder).
    Defaults fit tiny tests (box 32): coarse global searches, local searches from healpix
    order 2.
    """

    particles_star: str
    reference_map: str
    output_root: str
    particle_diameter_angstrom: float
    symmetry: str = "C1"
    ini_high_angstrom: float = 30.0
    padding_factor: float = 2.0
    healpix_order: int = 1
    auto_local_healpix_order: int = 2
    offset_range_pixels: float = 2.0
    offset_step_pixels: float = 2.0
    low_resol_join_halves_angstrom: float = 40.0
    oversampling: int = 1
    flatten_solvent: bool = True
    zero_mask: bool = True
    ctf: bool = False
    random_seed: int = 0
    auto_iter_max: int | None = None
    external_reconstruct: bool = True
    sequential_halves_recons: bool = False
    mpi_ranks: int = 3
    threads: int = 1
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def build_refine_command(settings: AutoRefineSettings, *, hook_variable: bool = True) -> list[str]:
    """The ``mpirun ... relion_refine_mpi ...`` argument list for ``settings``."""
    s = settings
    cmd = ["mpirun", "--oversubscribe", "-np", str(s.mpi_ranks)]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    if hook_variable and s.external_reconstruct:
        cmd += ["-x", HOOK_VARIABLE]
    cmd += [
        "relion_refine_mpi",
        "--o", s.output_root,
        "--auto_refine", "--split_random_halves",
        "--i", s.particles_star,
        "--ref", s.reference_map,
        "--ini_high", f"{s.ini_high_angstrom:g}",
        "--pad", f"{s.padding_factor:g}",
        "--particle_diameter", f"{s.particle_diameter_angstrom:g}",
        "--oversampling", str(s.oversampling),
        "--healpix_order", str(s.healpix_order),
        "--auto_local_healpix_order", str(s.auto_local_healpix_order),
        "--offset_range", f"{s.offset_range_pixels:g}",
        "--offset_step", f"{s.offset_step_pixels:g}",
        "--sym", s.symmetry,
        "--low_resol_join_halves", f"{s.low_resol_join_halves_angstrom:g}",
        "--j", str(s.threads),
        "--dont_combine_weights_via_disc",
        "--random_seed", str(s.random_seed),
    ]  # fmt: skip
    if s.flatten_solvent:
        cmd.append("--flatten_solvent")
    if s.zero_mask:
        cmd.append("--zero_mask")
    if s.ctf:
        cmd.append("--ctf")
    if s.auto_iter_max is not None:
        cmd += ["--auto_iter_max", str(s.auto_iter_max)]
    if s.external_reconstruct:
        cmd.append("--external_reconstruct")
    if s.sequential_halves_recons:
        cmd.append("--sequential_halves_recons")
    cmd += list(s.extra_args)
    return cmd


@dataclass(frozen=True)
class RefineResult:
    """What a finished auto-refine left behind.

    Attributes
    ----------
    returncode: mpirun's exit status.
    output_root: absolute ``--o`` root.
    final_map: ``<root>_class001.mrc`` (None if the run did not finish).
    iterations: number of the last iteration written (``_itNNN_half1_model.star``).
    final_resolution_angstrom: from ``run.out`` "Final resolution (without masking) is: X"
        or None.
    wall_seconds: elapsed time.
    """

    returncode: int
    output_root: Path
    final_map: Path | None
    iterations: int
    final_resolution_angstrom: float | None
    wall_seconds: float


_FINAL_RES_RE = re.compile(r"Final resolution \(without masking\) is:\s*([0-9.]+)")


def run_auto_refine(
    settings: AutoRefineSettings,
    *,
    workdir: str | Path,
    hook_command: str | None = None,
    timeout_seconds: float | None = None,
    env: dict[str, str] | None = None,
) -> RefineResult:
    """Run an auto-refine in ``workdir`` and wait for it.

    Parameters
    ----------
    settings: the refinement.
    workdir: RELION's project folder; paths in ``settings`` are relative to it. stdout and
        stderr go to ``<root>.out``-style files ``<dirname(root)>/run.out`` and ``run.err``.
    hook_command: value of RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE (None: RELION's default,
        ``relion_external_reconstruct``).
    timeout_seconds: kill the run after this long (subprocess.TimeoutExpired is raised).
    env: environment for the run (default: this process's).
    """
    require_programs("mpirun", "relion_refine_mpi")
    workdir = Path(workdir)
    out_dir = workdir / Path(settings.output_root).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    run_env = dict(os.environ if env is None else env)
    if hook_command is not None:
        run_env[HOOK_VARIABLE] = hook_command
    run_env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    cmd = build_refine_command(settings, hook_variable=HOOK_VARIABLE in run_env)
    logger.info("running in %s: %s", workdir, " ".join(cmd))
    start = time.monotonic()
    with open(out_dir / "run.out", "w") as out, open(out_dir / "run.err", "w") as err:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=run_env,
            stdout=out,
            stderr=err,
            timeout=timeout_seconds,
            check=False,
        )
    wall = time.monotonic() - start
    root = (workdir / settings.output_root).resolve()
    final_map = Path(f"{root}_class001.mrc")
    iterations = 0
    for model in root.parent.glob(f"{root.name}_it*_half1_model.star"):
        match = re.search(r"_it(\d+)_half1_model\.star$", model.name)
        if match:
            iterations = max(iterations, int(match.group(1)))
    text = (out_dir / "run.out").read_text(errors="replace")
    match = _FINAL_RES_RE.search(text)
    return RefineResult(
        returncode=proc.returncode,
        output_root=root,
        final_map=final_map if final_map.exists() else None,
        iterations=iterations,
        final_resolution_angstrom=float(match.group(1)) if match else None,
        wall_seconds=wall,
    )


def relion_project_uniform(
    map_path: str | Path,
    *,
    output_root: str | Path,
    n_particles: int,
    voxel_size_angstrom: float,
    workdir: str | Path | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Noise-free projections at random uniform angles with ``relion_project --nr_uniform``.

    RELION draws new angles on every call (it takes no seed). Returns the paths of the
    ``.mrcs`` stack and the ``.star`` file (RELION 3.1 format with an optics block).
    """
    require_programs("relion_project")
    cmd = [
        "relion_project", "--i", str(map_path), "--o", str(output_root),
        "--nr_uniform", str(n_particles), "--angpix", f"{voxel_size_angstrom:g}",
        *extra_args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    base = Path(workdir or ".") / str(output_root)
    stack, star = Path(f"{base}.mrcs"), Path(f"{base}.star")
    if proc.returncode != 0 or not stack.exists() or not star.exists():
        raise RuntimeError(
            f"relion_project failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return stack, star
