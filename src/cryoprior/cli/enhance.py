"""``cryoprior enhance``: the learned prior applied once to a refinement's final half-maps."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated

import typer

from cryoprior.cli._common import HalfMap1Option, HalfMap2Option, JobArgument, error_exit

__all__ = ["enhance"]

logger = logging.getLogger(__name__)


def enhance(
    job: JobArgument = None,
    half_map_1: HalfMap1Option = None,
    half_map_2: HalfMap2Option = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="output prefix: PREFIX_half1.mrc, PREFIX_half2.mrc, PREFIX.mrc, PREFIX.json "
            "(default: the job's --o root + _prior_once, else ./enhanced)"
        ),
    ] = None,
    voxel_size: Annotated[
        float | None,
        typer.Option("--angpix", help="voxel size in A (default: the job's, else the header)"),
    ] = None,
    diameter: Annotated[
        float | None,
        typer.Option(help="particle diameter in A (default: the job's --particle_diameter)"),
    ] = None,
    weights: Annotated[
        str, typer.Option(help="the prior's weights: a shipped name or a .pt file")
    ] = "default",
    guard: Annotated[
        bool,
        typer.Option(
            "--guard/--no-guard",
            help="through the hook's guard (v2 with cross-half support; docs/guard.md)",
        ),
    ] = True,
    device: Annotated[str | None, typer.Option(help="torch device (default: cpu)")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Apply the learned prior once to each final half-map, through the guard.

    Writes both processed halves and their average. RELION makes an auto-refine's final
    half-maps itself, so they are unregularized whatever ran in the loop; this is the prior's
    post-processing of them, each half independently (the realistic benchmark's "then prior +
    guard once"). The FSC of the processed halves is no resolution estimate: take the
    resolution from the unprocessed ones.

    Example: cryoprior enhance Refine3D/job001
    """
    from rich.console import Console

    from cryoprior.cli._common import setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.io.json import write_json_atomic
    from cryoprior.io.mrc import write_map_atomic
    from cryoprior.io.relion import (
        find_relion_job_files,
        latest_optimiser_star,
        read_optimiser_star,
    )
    from cryoprior.regularizers.guard import HOOK_GUARD
    from cryoprior.regularizers.postprocess import postprocess_half_maps, prior_enhancer
    from cryoprior.validate.job import maps_voxel_size, read_checked_map

    setup_logging(verbose)
    console = Console()
    fail = error_exit

    for flag, value in (("--angpix", voxel_size), ("--diameter", diameter)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise fail(f"{flag} {value:g}: not valid (give a positive number, A)")
    try:
        files = find_relion_job_files(job) if job is not None else None
        h1_path = half_map_1 or (files.half_map_1 if files else None)
        h2_path = half_map_2 or (files.half_map_2 if files else None)
        if h1_path is None or h2_path is None:
            raise fail("give a RELION job, or both --half1 and --half2")
        voxel, mismatch = maps_voxel_size([Path(h1_path), Path(h2_path)], voxel_size, files)
        if mismatch:
            logger.warning("%s", mismatch)
        if diameter is None and files is not None:
            latest = latest_optimiser_star(files.output_root)
            if latest is not None:
                diameter = read_optimiser_star(latest[0]).particle_diameter_angstrom
        h1 = read_checked_map(h1_path, constant_ok=False)
        h2 = read_checked_map(h2_path, constant_ok=False)
        if h1.ndim != 3 or len(set(h1.shape)) != 1:
            raise InputFileError(h1_path, f"shape {h1.shape}: not a cubic 3D map")
        if h2.shape != h1.shape:
            raise InputFileError(h2_path, f"shape {h2.shape}, but {h1_path} is {h1.shape}")
        if out is None:
            out = Path(f"{files.output_root}_prior_once") if files is not None else Path("enhanced")
        if not out.parent.is_dir():
            raise fail(f"--out {out}: the folder {out.parent} does not exist")
        with console.status("applying the prior to both half-maps..."):
            enhance_one = prior_enhancer(
                weights, voxel_size_angstrom=voxel, particle_diameter_angstrom=diameter,
                device=device, num_threads=0,
            )  # fmt: skip
            p1, p2, info = postprocess_half_maps(
                h1, h2, enhance_one, guard=HOOK_GUARD if guard else None
            )
        written = []
        for suffix, volume in (("_half1", p1), ("_half2", p2), ("", (p1 + p2) / 2)):
            path = Path(f"{out}{suffix}.mrc")
            write_map_atomic(path, volume.astype("float32"), voxel_size_angstrom=voxel)
            written.append(path)
        record = {
            "half_map_1": str(h1_path),
            "half_map_2": str(h2_path),
            "voxel_size_angstrom": voxel,
            "particle_diameter_angstrom": diameter,
            "weights": weights,
            "guard": info or None,
            "outputs": [str(p) for p in written],
        }
        write_json_atomic(Path(f"{out}.json"), record)
    except (InputFileError, FileNotFoundError, KeyError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # writing the results: disk full, read-only folder
        raise fail(f"{exc.filename or out}: {exc.strerror or exc}") from None
    except MemoryError:
        raise fail("out of memory applying the prior") from None
    console.print(
        f"prior{' + guard' if guard else ', no guard'} applied once to {h1_path} and {h2_path} "
        f"({h1.shape[0]}^3, {voxel:g} A/voxel): {', '.join(str(p) for p in written)}",
        highlight=False,
        soft_wrap=True,
    )
    if guard:
        console.print(
            f"guard: FSC = 1/7 at shell {info['cutoff_shell']}, support ends at shell "
            f"{info.get('support_end_shell')}, power removed {info['power_removed_fraction']}",
            highlight=False,
            soft_wrap=True,
        )
        if max(info["power_removed_fraction"]) > 0.99:
            console.print(
                "warning: the guard removed almost all of the prior's map (the other half-map "
                "does not support it): the output holds next to nothing; are these two "
                "half-maps of one particle, on one grid?",
                highlight=False,
                soft_wrap=True,
            )
