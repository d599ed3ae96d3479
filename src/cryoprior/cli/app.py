"""``cryoprior``: the user-facing command line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


def _extrec_executable() -> str:
    """Absolute path of cryoprior-extrec (next to this Python, else on PATH)."""
    beside = Path(sys.executable).parent / "cryoprior-extrec"
    if beside.exists():
        return str(beside)
    found = shutil.which("cryoprior-extrec")
    if found is None:
        raise typer.BadParameter("cryoprior-extrec is not installed (pip install the package)")
    return found


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="folder for the dataset and the RELION job")] = Path(
        "demo_run"
    ),
    particles: Annotated[int, typer.Option(help="number of particles")] = 400,
    regularizer: Annotated[str, typer.Option(help="regularizer for cryoprior-extrec")] = "none",
    seed: Annotated[int, typer.Option(help="random seed (phantom, noise, RELION)")] = 0,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Simulate a tiny dataset and refine it with real RELION calling cryoprior-extrec.

    Example: cryoprior demo --workdir demo_run
    """
    from rich.console import Console
    from rich.table import Table

    from cryoprior.cli._common import setup_logging
    from cryoprior.refine.demo import run_hook_demo
    from cryoprior.refine.relion import RelionNotFoundError

    setup_logging(verbose)
    console = Console()
    hook = f"{_extrec_executable()} --regularizer {regularizer}"
    console.print(
        f"[bold]cryoprior demo[/] in {workdir}: {particles} particles, box 32, hook: {hook}"
    )
    try:
        with console.status("simulating and refining with relion_refine_mpi (about a minute)..."):
            summary = run_hook_demo(workdir, hook_command=hook, n_particles=particles, seed=seed)
    except RelionNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    r = summary.refine
    table = Table(title="RELION auto-refine with cryoprior-extrec")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("relion_refine_mpi exit status", str(r.returncode))
    table.add_row("iterations", str(r.iterations))
    table.add_row("final resolution (A, RELION)", f"{r.final_resolution_angstrom}")
    table.add_row("cryoprior-extrec calls", str(summary.hook_calls))
    table.add_row("calls regularized", str(summary.regularized_calls))
    table.add_row("fallbacks to the plain map", str(summary.fallbacks))
    cc = summary.correlation_with_truth
    table.add_row("correlation of final map with truth", "n/a" if cc is None else f"{cc:.3f}")
    table.add_row("wall time (s)", f"{r.wall_seconds:.0f}")
    console.print(table)
    console.print(
        f"final map: {r.final_map}\nhook log: {r.output_root.parent / 'cryoprior_extrec.log'}"
    )
    if r.returncode != 0 or r.final_map is None:
        console.print(f"[red]refinement failed[/]: see {r.output_root.parent / 'run.err'}")
        raise typer.Exit(1)


def _register_commands() -> None:
    """Commands that live in their own modules (each a thin shell over one library call)."""
    from cryoprior.cli.simulate import simulate
    from cryoprior.cli.train_prior import train_prior
    from cryoprior.cli.validate import validate

    app.command()(simulate)
    app.command()(validate)
    app.command("train-prior")(train_prior)


_register_commands()


@app.command()
def version() -> None:
    """Print the package version."""
    from cryoprior import __version__

    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
