"""Copy real RELION job files into a scratch project so tests can overwrite outputs freely."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryoprior.io.relion_extrec import read_external_reconstruct_job


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


#: The committed tiny RELION 3.1.3 job (tests/data/relion_job_tiny/README.md).
TINY_JOB = Path(__file__).parent / "data" / "relion_job_tiny"
TINY_STARS = {
    "half1": Path("Refine3D/job001/run_it006_half1_class001_external_reconstruct.star"),
    "half2": Path("Refine3D/job001/run_it006_half2_class001_external_reconstruct.star"),
    "final": Path("Refine3D/job001/run_it017_class001_external_reconstruct.star"),
}


def unpack_tiny_job(dest: Path) -> Path:
    """Copy the tiny job into ``dest`` (arrays gunzipped, as RELION wrote them); returns dest."""
    import gzip

    for src in (TINY_JOB / "Refine3D").rglob("*"):
        if src.is_dir():
            continue
        rel = src.relative_to(TINY_JOB)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".gz":
            target.with_suffix("").write_bytes(gzip.decompress(src.read_bytes()))
        else:
            shutil.copyfile(src, target)
    return dest


def tiny_reference(call: str):
    """The stock relion_external_reconstruct output for one committed call (float32 array)."""
    import mrcfile

    name = TINY_STARS[call].name.replace(".star", ".mrc.gz")
    with mrcfile.open(TINY_JOB / "reference" / name, permissive=True) as mrc:
        return mrc.data.copy()
