"""Copy real RELION job files into a scratch project so tests can overwrite outputs freely."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryoprior.io.relion import read_external_reconstruct_job


def copy_job(workdir: Path, star: Path, dest: Path) -> Path:
    """Copy ``star`` (absolute, inside ``workdir``) and its three arrays to ``dest``.

    Keeps the paths relative to the project folder, as RELION writes them. Returns the
    STAR path relative to ``dest``.
    """
    rel = star.relative_to(workdir)
    job = read_external_reconstruct_job(star)
    for p in (rel, job.data_real_path, job.data_imag_path, job.weight_path):
        target = dest / p
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(workdir / p, target)
    return rel


def copy_iteration_files(workdir: Path, output_root: str, iteration: int, dest: Path) -> None:
    """Copy <root>_itNNN_{sampling,optimiser}.star and _half1_model.star (those that exist)."""
    for suffix in ("sampling.star", "optimiser.star", "half1_model.star"):
        src = workdir / f"{output_root}_it{iteration:03d}_{suffix}"
        if src.exists():
            target = dest / src.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
