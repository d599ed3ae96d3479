"""``cryoprior validate``: every validation metric of a finished RELION refinement.

Or of explicit maps; written as JSON and PNG figures, with a short table on the terminal.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cryoprior.cli._common import HalfMap1Option, HalfMap2Option, JobArgument, error_exit

__all__ = ["validate"]

logger = logging.getLogger(__name__)


def validate(
    job: JobArgument = None,
    half_map_1: HalfMap1Option = None,
    half_map_2: HalfMap2Option = None,
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
    """Validate a refinement; write OUT/validation.json and PNG figures, print a short table.

    Gold-standard FSC (masked, phase-randomisation corrected), local and directional resolution,
    and - when given - scores against the true map and poses of a simulation, Q-score and FSC-Q
    of an atomic model.

    Refused with one line: maps whose headers give different voxel sizes, maps with NaN or
    infinite voxels, constant half-maps, an unknown --sym, an invalid --angpix, an --out that
    cannot be written. Warned (and listed under "warnings" in validation.json): a model mostly
    outside the map box, particles that share none with --truth-star.

    Example: cryoprior validate Refine3D/job001 --truth-map truth.mrc --truth-star truth.star
    """
    from rich.console import Console
    from rich.markup import escape

    from cryoprior.cli._common import print_validation, setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.io.json import write_json_atomic
    from cryoprior.report.figures import write_validation_figures
    from cryoprior.validate.job import load_validation_inputs
    from cryoprior.validate.summary import ValidationSettings, validate_maps
    from cryoprior.validate.symmetry import validate_symmetry_name

    setup_logging(verbose)
    console = Console()
    fail = error_exit

    if voxel_size is not None and not (math.isfinite(voxel_size) and voxel_size > 0):
        raise fail(f"--angpix {voxel_size:g}: not a valid voxel size (give a positive number, A)")
    if symmetry is not None:
        try:
            symmetry = validate_symmetry_name(symmetry)
        except ValueError as exc:
            raise fail(f"--sym {symmetry}: {exc}") from None
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out}: exists and is not a folder")
    try:
        loaded = load_validation_inputs(
            job,
            half_map_1=half_map_1,
            half_map_2=half_map_2,
            full_map=full_map,
            mask=mask,
            truth_map=truth_map,
            truth_star=truth_star,
            particles_star=particles,
            model=model,
            model_map=model_map,
            voxel_size_angstrom=voxel_size,
            symmetry=symmetry,
        )
        sym = loaded.symmetry
        voxel = loaded.inputs.voxel_size_angstrom
        try:  # before the metrics are computed: the output folder must be writable
            _check_output_folder(out)
        except OSError as exc:
            raise fail(f"--out {exc.filename or out}: {exc.strerror or exc}") from None
        settings = ValidationSettings(symmetry=sym, local_window_voxels=local_window, seed=seed)
        with console.status("computing validation metrics..."):
            report = validate_maps(loaded.inputs, settings)
        data = report.to_dict(per_atom=per_atom)
        data["inputs"] = loaded.paths
        data["warnings"] = [*loaded.warnings, *report.warnings]
        json_path = out / "validation.json"
        write_json_atomic(json_path, data)
        figures = write_validation_figures(report, out)
    except (InputFileError, FileNotFoundError, KeyError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # writing the results: disk full, folder removed meanwhile
        raise fail(f"{exc.filename or out}: {exc.strerror or exc}") from None
    except MemoryError:
        raise fail("out of memory computing the validation metrics") from None

    print_validation(
        console,
        report,
        title=f"cryoprior validate ({report.box_size}^3, {voxel:g} A/voxel, {sym})",
        json_path=json_path,
        figures=figures,
    )
    for message in data["warnings"]:
        console.print(f"warning: {escape(message)}", highlight=False, soft_wrap=True)


def _check_output_folder(out: Path) -> None:
    """Create ``out`` and write a file in it (OSError naming the folder when that fails)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(out))
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd, probe = tempfile.mkstemp(prefix=".cryoprior-write-test.", dir=out)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(out)) from exc
    os.close(fd)
    os.unlink(probe)
