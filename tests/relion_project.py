"""Test support: projections made by RELION's own ``relion_project`` (was
``cryoprior.refine.relion.relion_project_uniform``).

Used by :mod:`demo_dataset` (the parity runs' tiny dataset) and by
``benchmarks/reconstruct_speed.py`` (which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryoprior.refine.relion import require_programs

__all__ = ["relion_project_uniform"]


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
