"""``cryoprior validate``: every validation metric of a finished RELION refinement (or of
explicit maps), written as JSON and PNG figures, with a short table on the terminal."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["RelionJobFiles", "find_relion_job_files", "validate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelionJobFiles:
    """The outputs of a RELION auto-refine that validation reads.

    Attributes
    ----------
    output_root: the ``--o`` root (``Refine3D/job001/run``).
    half_map_1, half_map_2: ``<root>_half{1,2}_class001_unfil.mrc`` (final), or the last
        iteration's ``<root>_itNNN_half{1,2}_class001.mrc`` for an unfinished run.
    full_map: ``<root>_class001.mrc`` (None for an unfinished run).
    particles_star: ``<root>_data.star`` or the last iteration's ``_data.star``.
    model_star: ``<root>_model.star`` / last ``_half1_model.star`` (pixel size), or None.
    sampling_star: ``<root>_sampling.star`` / last ``_sampling.star`` (symmetry), or None.
    finished: whether the final files were found.
    """

    output_root: Path
    half_map_1: Path
    half_map_2: Path
    full_map: Path | None
    particles_star: Path | None
    model_star: Path | None
    sampling_star: Path | None
    finished: bool


def find_relion_job_files(job: str | Path) -> RelionJobFiles:
    """Locate the maps and STAR files of an auto-refine from its folder or its ``--o`` root.

    A folder holding several roots (``run``, ``run_ct5``...) uses the one whose final half-map
    is newest. Without final maps, the last iteration's half-maps are used.

    Raises
    ------
    FileNotFoundError: no half-maps could be found.
    """
    job = Path(job)
    if job.is_dir():
        finals = sorted(job.glob("*_half1_class001_unfil.mrc"), key=lambda p: p.stat().st_mtime)
        if finals:
            root = Path(str(finals[-1])[: -len("_half1_class001_unfil.mrc")])
        else:
            iterations = sorted(job.glob("*_it[0-9][0-9][0-9]*_half1_class001.mrc"))
            if not iterations:
                raise FileNotFoundError(f"{job}: no RELION half-maps (*_half1_class001*.mrc)")
            root = Path(re.sub(r"_it\d+_half1_class001\.mrc$", "", str(iterations[-1])))
    else:
        root = job
    final_1 = Path(f"{root}_half1_class001_unfil.mrc")
    final_2 = Path(f"{root}_half2_class001_unfil.mrc")
    if final_1.is_file() and final_2.is_file():

        def existing(path: Path) -> Path | None:
            return path if path.is_file() else None

        return RelionJobFiles(
            output_root=root,
            half_map_1=final_1,
            half_map_2=final_2,
            full_map=existing(Path(f"{root}_class001.mrc")),
            particles_star=existing(Path(f"{root}_data.star")),
            model_star=existing(Path(f"{root}_model.star")),
            sampling_star=existing(Path(f"{root}_sampling.star")),
            finished=True,
        )
    numbers = []
    for path in root.parent.glob(f"{root.name}_it*_half1_class001.mrc"):
        match = re.search(r"_it(\d+)_half1_class001\.mrc$", path.name)
        if match:
            numbers.append(int(match.group(1)))
    if not numbers:
        raise FileNotFoundError(f"{root}: no final or per-iteration half-maps")
    stem = f"{root}_it{max(numbers):03d}"
    logger.warning("%s has no final maps: using iteration %d", root, max(numbers))

    def maybe(path: str) -> Path | None:
        return Path(path) if Path(path).is_file() else None

    return RelionJobFiles(
        output_root=root,
        half_map_1=Path(f"{stem}_half1_class001.mrc"),
        half_map_2=Path(f"{stem}_half2_class001.mrc"),
        full_map=None,
        particles_star=maybe(f"{stem}_data.star"),
        model_star=maybe(f"{stem}_half1_model.star"),
        sampling_star=maybe(f"{stem}_sampling.star"),
        finished=False,
    )


def _json_ready(value):
    """Non-finite floats to None, numpy scalars to Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(_json_ready(data), handle, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def validate(
    job: Annotated[
        Path | None,
        typer.Argument(
            help="a finished RELION auto-refine: its folder or --o root (Refine3D/job001)"
        ),
    ] = None,
    half_map_1: Annotated[Path | None, typer.Option("--half1", help="half-map 1 (MRC)")] = None,
    half_map_2: Annotated[Path | None, typer.Option("--half2", help="half-map 2 (MRC)")] = None,
    full_map: Annotated[
        Path | None, typer.Option("--map", help="final map (default: the job's, else mean)")
    ] = None,
    mask: Annotated[Path | None, typer.Option(help="soft mask (MRC, values 0..1)")] = None,
    truth_map: Annotated[
        Path | None, typer.Option("--truth-map", help="true map of a simulation (MRC)")
    ] = None,
    truth_star: Annotated[
        Path | None, typer.Option("--truth-star", help="ground-truth particles STAR")
    ] = None,
    particles: Annotated[
        Path | None, typer.Option("--particles", help="refined particles STAR (default: job's)")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="atomic model (PDB/mmCIF) in the map's frame")
    ] = None,
    model_map: Annotated[
        Path | None, typer.Option("--model-map", help="map computed from the model (MRC)")
    ] = None,
    voxel_size: Annotated[
        float | None, typer.Option("--angpix", help="voxel size in A (default: from the job)")
    ] = None,
    symmetry: Annotated[
        str | None, typer.Option("--sym", help="point group (default: from the job, else C1)")
    ] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("validation"),
    local_window: Annotated[int, typer.Option(help="local-resolution window (voxels)")] = 20,
    seed: Annotated[int, typer.Option(help="seed of the phase randomisation")] = 0,
    per_atom: Annotated[
        bool, typer.Option("--per-atom/--no-per-atom", help="per-atom values in the JSON")
    ] = True,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Validate a refinement: gold-standard FSC (masked, phase-randomisation corrected), local
    and directional resolution, and - when given - scores against the true map and poses of a
    simulation, Q-score and FSC-Q of an atomic model. Writes OUT/validation.json and PNG
    figures; prints a short table.

    Example: cryoprior validate Refine3D/job001 --truth-map truth.mrc --truth-star truth.star
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from cryoprior.cli._common import setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.io.mrc import read_map, read_map_header_voxel_size
    from cryoprior.io.relion import read_model_star, read_particles_star, read_sampling_star
    from cryoprior.report.figures import write_validation_figures
    from cryoprior.validate.atoms import model_density_map, read_atomic_model
    from cryoprior.validate.poses import pose_table_from_particles
    from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps

    setup_logging(verbose)
    console = Console()
    try:
        files = None
        if job is not None:
            files = find_relion_job_files(job)
        h1_path = half_map_1 or (files.half_map_1 if files else None)
        h2_path = half_map_2 or (files.half_map_2 if files else None)
        if h1_path is None or h2_path is None:
            raise typer.BadParameter("give a RELION job, or both --half1 and --half2")
        full_path = full_map or (files.full_map if files else None)
        particles_path = particles or (files.particles_star if files else None)
        voxel = voxel_size
        if voxel is None and files is not None and files.model_star is not None:
            voxel = read_model_star(files.model_star).pixel_size_angstrom
        if voxel is None:
            voxel = read_map_header_voxel_size(h1_path)
        if not voxel or voxel <= 0:
            raise typer.BadParameter(f"{h1_path} has no voxel size in its header: give --angpix")
        sym = symmetry
        if sym is None and files is not None and files.sampling_star is not None:
            sym = read_sampling_star(files.sampling_star).symmetry_group
        sym = sym or "C1"

        def load(path: Path | None):
            return None if path is None else read_map(path, dtype=np.float64)

        h1 = load(h1_path)
        refined = truth_poses = None
        if particles_path is not None:
            table = read_particles_star(particles_path)
            refined = pose_table_from_particles(
                table.particles, pixel_size_angstrom=table.pixel_size_angstrom
            )
        if truth_star is not None:
            table = read_particles_star(truth_star)
            truth_poses = pose_table_from_particles(
                table.particles, pixel_size_angstrom=table.pixel_size_angstrom
            )
        atoms = read_atomic_model(model) if model is not None else None
        model_grid = load(model_map)
        if atoms is not None and model_grid is None:
            model_grid = model_density_map(model, box_size=h1.shape[-1], voxel_size_angstrom=voxel)
        inputs = ValidationInputs(
            half_map_1=h1,
            half_map_2=load(h2_path),
            voxel_size_angstrom=float(voxel),
            full_map=load(full_path),
            mask=load(mask),
            truth_map=load(truth_map),
            model=atoms,
            model_map=model_grid,
            refined_poses=refined,
            true_poses=truth_poses,
        )
        settings = ValidationSettings(symmetry=sym, local_window_voxels=local_window, seed=seed)
        with console.status("computing validation metrics..."):
            report = validate_maps(inputs, settings)
    except (InputFileError, FileNotFoundError, KeyError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None

    data = report.to_dict(per_atom=per_atom)
    data["inputs"] = {
        "job": str(job) if job is not None else None,
        "half_map_1": str(h1_path),
        "half_map_2": str(h2_path),
        "full_map": str(full_path) if full_path else None,
        "mask": str(mask) if mask else None,
        "truth_map": str(truth_map) if truth_map else None,
        "truth_star": str(truth_star) if truth_star else None,
        "particles_star": str(particles_path) if particles_path else None,
        "model": str(model) if model else None,
        "model_map": str(model_map) if model_map else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "validation.json"
    _write_json(json_path, data)
    figures = write_validation_figures(report, out)

    table = Table(title=f"cryoprior validate ({report.box_size}^3, {voxel:g} A/voxel, {sym})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.summary_rows():
        table.add_row(name, value)
    console.print(table)
    console.print(f"metrics: {json_path}")
    console.print("figures: " + ", ".join(str(p) for p in figures))
