"""``cryoprior refine | benchmark | report | demo``: thin shells over ``cryoprior.refine`` and
``cryoprior.report``; the only place here that prints, reads the environment or sets up
logging."""

from __future__ import annotations

import logging
import os
import platform
import signal
import subprocess
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["benchmark", "demo", "refine", "report"]

logger = logging.getLogger(__name__)

MODE_HELP = "relion | sidesplitter | prior | prior-noguard"


def _progress_printer(console):
    """A rich Status whose text follows RefineProgress lines."""
    status = console.status("starting relion_refine_mpi...")

    def update(case: str, mode: str, progress) -> None:
        status.update(f"{case} / {mode}: {progress.line()}")

    return status, update


def _stop_relion_on_sigterm() -> None:
    """SIGTERM (a queue's kill, `kill PID`) ends like Ctrl-C: the runner stops RELION's
    process group (it runs in its own session) instead of leaving it running."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def _machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load} at start."


def refine(
    particles: Annotated[Path, typer.Argument(help="particles STAR file (RELION 3.1)")],
    reference: Annotated[Path, typer.Option("--ref", help="initial reference map (MRC)")],
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "prior",
    symmetry: Annotated[str, typer.Option("--sym", help="point group")] = "C1",
    diameter: Annotated[
        float | None,
        typer.Option("--diameter", help="particle diameter, A (default: 0.8 of the box)"),
    ] = None,
    ini_high: Annotated[float, typer.Option(help="initial low-pass of the reference, A")] = 30.0,
    healpix_order: Annotated[int, typer.Option(help="global search sampling order")] = 1,
    local_healpix_order: Annotated[int, typer.Option(help="order where local searches start")] = 3,
    output: Annotated[Path, typer.Option("--o", help="job folder")] = Path("Refine3D/cryoprior"),
    resume: Annotated[
        bool, typer.Option("--continue", help="continue an interrupted job from its last iteration")
    ] = False,
    mpi: Annotated[int, typer.Option(help="MPI ranks (a leader + one per half)")] = 3,
    threads: Annotated[
        int | None, typer.Option(help="threads per rank (default: CPUs / worker ranks)")
    ] = None,
    seed: Annotated[int, typer.Option(help="RELION's random seed")] = 0,
    timeout: Annotated[float, typer.Option(help="seconds before the job is stopped")] = 86400.0,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="run the validation at the end")
    ] = True,
    truth_map: Annotated[
        Path | None, typer.Option("--truth-map", help="true map, for validation")
    ] = None,
    truth_star: Annotated[
        Path | None, typer.Option("--truth-star", help="true poses, for validation")
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Run RELION 3.1's gold-standard auto-refine with cryoprior-extrec as the external
    reconstruction, showing a live progress line; validate the result at the end.

    Run it in the RELION project folder (image paths in the STAR file are relative to it).

    Example: cryoprior refine particles.star --ref initial_reference.mrc --mode prior --sym D2
    """
    from rich.console import Console

    from cryoprior.cli._common import setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.io.mrc import read_map
    from cryoprior.io.relion import read_particles_star
    from cryoprior.refine.experiment import MODES, extrec_executable
    from cryoprior.refine.relion import (
        AutoRefineSettings,
        RefineFailedError,
        RelionNotFoundError,
        run_auto_refine,
    )

    setup_logging(verbose)
    _stop_relion_on_sigterm()
    console = Console()
    if mode not in MODES:
        console.print(f"[red]error:[/] unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        raise typer.Exit(2)
    try:
        table = read_particles_star(particles)
        ref = read_map(reference)
    except (InputFileError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    box = ref.shape[-1]
    voxel = table.pixel_size_angstrom
    if diameter is None:
        if not voxel:
            console.print(f"[red]error:[/] {particles}: no pixel size; give --diameter")
            raise typer.Exit(1)
        diameter = 0.8 * box * voxel
    workers = max(1, mpi - 1)
    n_threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // workers)
    settings = AutoRefineSettings(
        particles_star=str(particles),
        reference_map=str(reference),
        output_root=str(output / "run"),
        particle_diameter_angstrom=diameter,
        symmetry=symmetry,
        ini_high_angstrom=ini_high,
        healpix_order=healpix_order,
        auto_local_healpix_order=local_healpix_order,
        random_seed=seed,
        mpi_ranks=mpi,
        threads=n_threads,
    )
    hook = " ".join([extrec_executable(), *MODES[mode].hook_arguments])
    console.print(f"[bold]cryoprior refine[/] {particles} -> {output} ({MODES[mode].label})")
    status, update = _progress_printer(console)
    try:
        with status:
            result = run_auto_refine(
                settings,
                workdir=Path.cwd(),
                hook_command=hook,
                timeout_seconds=timeout,
                resume=resume,
                progress=lambda p: update(str(output), mode, p),
            )
    except (RelionNotFoundError, RefineFailedError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print(f"interrupted: resume with the same command and --continue ({output})")
        raise typer.Exit(130) from None
    if result.returncode != 0 or result.final_map is None:
        err = output / "run.err"
        tail = err.read_text(errors="replace").strip().splitlines()[-5:] if err.exists() else []
        console.print(
            f"[red]relion_refine_mpi failed[/] (exit {result.returncode}); {err}:\n"
            + "\n".join(tail)
        )
        raise typer.Exit(1)
    console.print(
        f"finished: {result.iterations} iterations, RELION's final resolution "
        f"{result.final_resolution_angstrom} A, {result.wall_seconds / 60:.1f} min; "
        f"map {result.final_map}"
    )
    if validate:
        from cryoprior.cli.validate import validate as validate_command

        validate_command(
            job=output,
            truth_map=truth_map,
            truth_star=truth_star,
            out=output / "validation",
            half_map_1=None,
            half_map_2=None,
            full_map=None,
            mask=None,
            particles=None,
            model=None,
            model_map=None,
            voxel_size=None,
            symmetry=None,
            local_window=20,
            seed=seed,
            per_atom=False,
            verbose=verbose,
        )


def _run_suite(console, suite_name: str, root: Path, cases_wanted, modes_wanted, cluster=None):
    """Run the suite's cases, here one after another or as submitit jobs when ``cluster`` (a
    ClusterSettings) is given; returns (results, number of failed refinements)."""
    from cryoprior.refine.config import SCALE, suite
    from cryoprior.refine.experiment import run_mode, write_manifest

    cases = suite(suite_name)
    # the manifest lists the whole suite (the report marks what has not run yet)
    write_manifest(root, cases, suite=suite_name, scale=SCALE, machine=_machine())
    if cases_wanted:
        unknown = sorted(set(cases_wanted) - {c.name for c in cases})
        if unknown:
            raise typer.BadParameter(f"unknown case(s) {unknown}; see --list")
        cases = [c for c in cases if c.name in cases_wanted]
    tasks = [(c, m) for c in cases for m in c.modes if not modes_wanted or m in modes_wanted]
    results = []
    failures = 0

    def done(run) -> None:
        r, s = run.data["refine"], run.data.get("summary", {})
        console.print(
            f"{run.case} / {run.mode}: {'cached' if run.cached else 'done'}, "
            f"RELION {r.get('final_resolution_angstrom')} A, vs truth "
            f"{_num(s.get('truth_fsc_0143_angstrom'))} A, "
            f"{(r.get('wall_seconds') or 0) / 60:.1f} min"
        )
        results.append(run)

    if cluster is not None:
        from cryoprior.refine.dispatch import run_with_submitit

        console.print(
            f"submitting {len(tasks)} runs through submitit ({cluster.cluster or 'auto'})"
        )
        for outcome in run_with_submitit(tasks, root, cluster):
            if outcome.result is None:
                console.print(f"[red]{outcome.case} / {outcome.mode} failed:[/] {outcome.error}")
                failures += 1
            else:
                done(outcome.result)
    else:
        status, update = _progress_printer(console)
        with status:
            for case, mode in tasks:
                try:
                    done(run_mode(case, mode, root, progress=update))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    # one failed refinement must not cost the others: report it, go on
                    console.print(f"[red]{case.name} / {mode} failed:[/] {exc}")
                    failures += 1
    if failures:
        console.print(f"[red]{failures} refinement(s) failed[/]: rerun the command to retry them")
    return results, failures


def _run_suite_or_exit(
    console, suite_name: str, root: Path, cases_wanted, modes_wanted, cluster=None
) -> int:
    """_run_suite with the CLI's error handling; returns the number of failed refinements."""
    from cryoprior.refine.relion import RefineFailedError, RelionNotFoundError

    _stop_relion_on_sigterm()
    try:
        _, failures = _run_suite(console, suite_name, root, cases_wanted, modes_wanted, cluster)
    except (
        RelionNotFoundError,
        RefineFailedError,
        RuntimeError,
        FileNotFoundError,
        ImportError,
    ) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print(f"interrupted: run the same command again to resume ({root})")
        raise typer.Exit(130) from None
    return failures


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def benchmark(
    suite_name: Annotated[str, typer.Option("--suite", help="full | demo | mini")] = "full",
    root: Annotated[Path, typer.Option(help="experiment folder (cache)")] = Path("benchmark_runs"),
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="report folder (default: ROOT/report)")
    ] = None,
    case: Annotated[list[str] | None, typer.Option(help="only these cases (repeatable)")] = None,
    mode: Annotated[list[str] | None, typer.Option(help="only these modes (repeatable)")] = None,
    list_cases: Annotated[bool, typer.Option("--list", help="list the cases and stop")] = False,
    executor: Annotated[
        str,
        typer.Option(
            help="sequential (here, one run after another) | submitit (every run a job: Slurm "
            "when there, else local processes; pip install 'cryoprior[cluster]')"
        ),
    ] = "sequential",
    cluster: Annotated[
        str | None,
        typer.Option(help="with --executor submitit: slurm | local (default: auto)"),
    ] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
    job_minutes: Annotated[int, typer.Option(help="wall-time limit of each job (submitit)")] = 120,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Run the paper's simulated experiments (every case in every mode, cached: a rerun does
    only what changed or was interrupted), then write the report.

    Example: cryoprior benchmark --suite full --root benchmark_runs
    On a Slurm cluster: cryoprior benchmark --executor submitit --slurm-partition cpu
    """
    from rich.console import Console

    from cryoprior.cli._common import setup_logging
    from cryoprior.refine.config import suite
    from cryoprior.report.build import build_report

    setup_logging(verbose)
    console = Console()
    if list_cases:
        for c in suite(suite_name):
            console.print(f"{c.name}: {c.title} [{', '.join(c.modes)}]")
        return
    if executor not in ("sequential", "submitit"):
        raise typer.BadParameter(f"--executor must be sequential or submitit, not {executor!r}")
    if cluster not in (None, "slurm", "local"):
        raise typer.BadParameter(f"--cluster must be slurm or local, not {cluster!r}")
    settings = None
    if executor == "submitit":
        from cryoprior.refine.dispatch import ClusterSettings

        settings = ClusterSettings(
            cluster=cluster, timeout_minutes=job_minutes, slurm_partition=slurm_partition
        )
    elif cluster or slurm_partition:
        raise typer.BadParameter("--cluster and --slurm-partition need --executor submitit")
    failures = _run_suite_or_exit(console, suite_name, root, case, mode, settings)
    path = build_report(root, report_dir or root / "report", title=f"cryoprior {suite_name}")
    console.print(f"report: {path} and {path.with_suffix('.html')}")
    if failures:
        raise typer.Exit(1)


def report(
    root: Annotated[Path, typer.Argument(help="experiment folder written by `benchmark`")],
    out: Annotated[Path | None, typer.Option(help="report folder (default: ROOT/report)")] = None,
    title: Annotated[str, typer.Option(help="report title")] = "cryoprior benchmark",
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Rebuild the report (Markdown, HTML, results.json, figures) from cached runs.

    Example: cryoprior report benchmark_runs --out benchmarks/results/experiments
    """
    from rich.console import Console

    from cryoprior.cli._common import setup_logging
    from cryoprior.report.build import build_report

    setup_logging(verbose)
    console = Console()
    try:
        path = build_report(root, out or root / "report", title=title)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"report: {path} and {path.with_suffix('.html')}")


def demo(
    root: Annotated[Path, typer.Option(help="experiment folder")] = Path("demo_runs"),
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Simulate a small beta-galactosidase dataset, refine it with plain RELION and with the
    learned prior (real relion_refine_mpi calling cryoprior-extrec), print the comparison
    and write the report. About 6 minutes on 2 idle cores.

    Example: cryoprior demo --root demo_runs
    """
    from rich.console import Console
    from rich.table import Table

    from cryoprior.cli._common import setup_logging
    from cryoprior.report.build import TABLE_COLUMNS, build_report, comparison_rows, load_experiment

    setup_logging(verbose)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: the 12-column table unfolded
        console = Console(width=200)
    console.print(
        "[bold]cryoprior demo[/]: beta-galactosidase (5a1a, D2), box 48 at 4.4 A, 800 particles,"
        f" refined with RELION and with the prior, in {root}"
    )
    failures = _run_suite_or_exit(console, "demo", root, None, None)
    path = build_report(root, root / "report", title="cryoprior demo")
    manifest, cases = load_experiment(root)
    labels = {m: info["label"] for m, info in manifest["modes"].items()}
    for case, runs in cases:
        table = Table(title=case["title"])
        for column in TABLE_COLUMNS:
            table.add_column(column, justify="left" if column == "mode" else "right")
        for row in comparison_rows(runs, labels):
            table.add_row(*row)
        console.print(table)
    console.print(f"report: {path} and {path.with_suffix('.html')}")
    if failures:
        raise typer.Exit(1)
