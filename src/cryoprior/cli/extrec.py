"""``cryoprior-extrec``: the program RELION calls through RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def extrec(
    job_star: Annotated[
        Path, typer.Argument(help="<root>_external_reconstruct.star (RELION adds it last)")
    ],
    regularizer: Annotated[str, typer.Option(help="none, or module:factory")] = "none",
    when: Annotated[
        str, typer.Option(help="always | never | local-searches | resolution<=X | iteration>=N")
    ] = "local-searches",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="regularizer option KEY=VALUE (repeatable)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file with any of these options (command line wins)")
    ] = None,
    regularize_final: Annotated[
        bool, typer.Option("--regularize-final", help="also regularize the final joined call")
    ] = False,
    pair_timeout: Annotated[
        float, typer.Option(help="seconds half 1 waits for half 2 (joint regularizers)")
    ] = 300.0,
    timeout: Annotated[
        float, typer.Option(help="seconds allowed for regularization before falling back")
    ] = 1800.0,
    mask: Annotated[Path | None, typer.Option(help="solvent mask for the regularizer")] = None,
    no_map: Annotated[
        bool, typer.Option("--no-map", help="plain map without the MAP term (as --no_map)")
    ] = False,
    skip_gridding: Annotated[
        bool, typer.Option("--skip-gridding", help="no iterative gridding (as --skip_gridding)")
    ] = False,
    guard: Annotated[
        bool | None,
        typer.Option(
            "--guard/--no-guard",
            help="spectral trailing + greyscale fit (default: on for learned priors)",
        ),
    ] = None,
    guard_fsc_threshold: Annotated[
        float,
        typer.Option(
            help="guard: keep the regularized map up to the shell where the FSC falls below this"
        ),
    ] = 1.0 / 7.0,
    guard_edge_shells: Annotated[
        float, typer.Option(help="guard: width of the cosine edge, in Fourier shells")
    ] = 3.0,
    write_fsc_star: Annotated[
        bool,
        typer.Option(
            "--write-fsc-star",
            help="hand RELION a SIDESPLITTER-wrapper style FSC (raises its resolution estimate; off by default)",
        ),
    ] = False,
    log_file: Annotated[
        Path | None, typer.Option(help="JSON-lines log (default: beside RELION's output)")
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Reconstruct RELION's half-map, regularize it when the schedule says so, write it back.

    Example, for RELION:

        export RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE="cryoprior-extrec --regularizer none"
        mpirun -np 3 -x RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE relion_refine_mpi ... --external_reconstruct

    Exit 0 whenever a map was written (falling back to the plain reconstruction if the
    regularizer fails); exit 1 with a one-line message only if no map could be made.
    """
    from cryoprior.cli._common import parse_key_values, setup_logging

    setup_logging(verbose)
    from cryoprior.errors import InputFileError
    from cryoprior.extrec.run import ExtrecConfig, run_extrec
    from cryoprior.extrec.schedule import parse_schedule
    from cryoprior.reconstruct.relion_map import ReconstructionOptions
    from cryoprior.regularizers.guard import GuardSettings

    try:
        file_options: dict = {}
        if config is not None:
            try:
                file_options = tomllib.loads(config.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise InputFileError(config, f"not a readable TOML file ({exc})") from exc
        reg_options = dict(file_options.get("options", {}))
        reg_options.update(parse_key_values(option))
        cfg = ExtrecConfig(
            regularizer=regularizer
            if regularizer != "none"
            else file_options.get("regularizer", "none"),
            regularizer_options=reg_options,
            schedule=parse_schedule(
                file_options.get("when", when) if when == "local-searches" else when
            ),
            regularize_final=regularize_final or bool(file_options.get("regularize_final", False)),
            pair_timeout_seconds=float(file_options.get("pair_timeout", pair_timeout)),
            regularizer_timeout_seconds=float(file_options.get("timeout", timeout)),
            mask_path=str(mask) if mask else file_options.get("mask"),
            reconstruction=ReconstructionOptions(do_map=not no_map, skip_gridding=skip_gridding),
            log_path=str(log_file) if log_file else None,
            guard=guard if guard is not None else file_options.get("guard"),
            guard_settings=GuardSettings(
                fsc_threshold=float(file_options.get("guard_fsc_threshold", guard_fsc_threshold)),
                edge_width_shells=float(file_options.get("guard_edge_shells", guard_edge_shells)),
            ),
            write_fsc_star=write_fsc_star or bool(file_options.get("write_fsc_star", False)),
        )
        run_extrec(job_star, cfg)
    except InputFileError as exc:
        print(f"cryoprior-extrec: error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except ValueError as exc:  # bad options
        print(f"cryoprior-extrec: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except MemoryError:
        print(
            f"cryoprior-extrec: error: {job_star}: out of memory while reconstructing",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
