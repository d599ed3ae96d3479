"""``cryoprior refine | benchmark | report | demo``: thin shells over ``cryoprior.refine``.

And over ``cryoprior.report``; the only place here that prints, reads the environment or sets
up logging.
"""

from __future__ import annotations

import contextlib
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

MODE_HELP = "relion | sidesplitter | prior | prior-v1 | prior-bounded | prior-noguard"


def _progress_printer(console):
    """Make a rich Status whose text follows RefineProgress lines."""
    status = console.status("starting relion_refine_mpi...")

    def update(case: str, mode: str, progress) -> None:
        status.update(f"{case} / {mode}: {progress.line()}")

    return status, update


@contextlib.contextmanager
def _signals_stop_relion():
    """Make SIGTERM and SIGHUP end like Ctrl-C while RELION runs.

    SIGTERM (a queue's kill, `kill PID`) and SIGHUP (a closed terminal) raise
    KeyboardInterrupt: the runner stops every process of RELION's session instead of leaving it
    running. (SIGKILL cannot be caught: the watchdog mpirun runs under stops RELION then.)
    The previous handlers are restored afterwards.
    """

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {
        signum: signal.getsignal(signum)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    }
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
    if previous[signal.SIGINT] is signal.SIG_IGN:
        # started in the background by a non-interactive shell: kill -INT must still stop it
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load} at start."


PRESET_HELP = "default (RELION's GUI auto-refine sampling) | fast (the benchmark's coarse one)"


def refine(
    particles: Annotated[Path, typer.Argument(help="particles STAR file (RELION 3.1+)")],
    reference: Annotated[Path, typer.Option("--ref", help="initial reference map (MRC)")],
    relion_args: Annotated[
        list[str] | None,
        typer.Argument(help="after --: relion_refine options passed through (e.g. -- --gpu 0)"),
    ] = None,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "prior",
    symmetry: Annotated[str, typer.Option("--sym", help="point group (RELION's name)")] = "C1",
    diameter: Annotated[
        float | None,
        typer.Option("--diameter", help="particle diameter, A (default: 80 % of the box)"),
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option("--mask", help="solvent mask (MRC, 0..1; adds --solvent_correct_fsc)"),
    ] = None,
    ctf: Annotated[
        bool | None,
        typer.Option(
            "--ctf/--no-ctf", help="CTF correction (default: on when the STAR has defocus)"
        ),
    ] = None,
    ctf_intact_first_peak: Annotated[
        bool, typer.Option("--ctf-intact-first-peak", help="ignore CTFs until their first peak")
    ] = False,
    reference_ctf_corrected: Annotated[
        bool,
        typer.Option(
            "--ref-ctf-corrected/--ref-not-ctf-corrected",
            help="with CTF correction: the reference is free of CTF effects (a RELION, model "
            "or database map; RELION's --ctf_corrected_ref)",
        ),
    ] = True,
    preset: Annotated[str, typer.Option(help=PRESET_HELP)] = "default",
    ini_high: Annotated[
        float | None, typer.Option(help="initial low-pass of the reference, A (default 60)")
    ] = None,
    absolute_greyscale: Annotated[
        bool,
        typer.Option(
            "--absolute-greyscale",
            help="the reference is on RELION's absolute greyscale (no --firstiter_cc)",
        ),
    ] = False,
    rescale_ref: Annotated[
        bool,
        typer.Option("--rescale-ref", help="resample a reference of another pixel size or box"),
    ] = False,
    output: Annotated[Path, typer.Option("--o", help="job folder")] = Path("Refine3D/cryoprior"),
    resume: Annotated[
        bool, typer.Option("--continue", help="continue the job's run from its last iteration")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="remove an earlier run in the job folder first")
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
    """Run RELION's gold-standard auto-refine with cryoprior-extrec as external reconstruction.

    Works with RELION 3.1, 4.0 or 5.0; shows a live progress line and validates the result at
    the end.

    Run it in the RELION project folder (image paths in the STAR file are relative to it).
    Pixel size, box and CTF come from the STAR file; the sampling is RELION's GUI default
    (--preset fast: the benchmark's). Options after -- go to relion_refine as they are.

    Example: cryoprior refine particles.star --ref initial_reference.mrc --mode prior --sym D2
    """
    from rich.console import Console

    from cryoprior.cli._common import setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.refine.cases import MODES
    from cryoprior.refine.inputs import RefineInputError
    from cryoprior.refine.job import (
        RefineRequest,
        plan_refine,
        prepare_job_folder,
        write_record,
        write_rescaled_reference,
    )
    from cryoprior.refine.relion import (
        SUPPORTED_RELION,
        RefineFailedError,
        RefineTimeoutError,
        RelionNotFoundError,
        build_continue_command,
        build_refine_command,
        detect_relion_version,
        refine_failure_message,
        require_programs,
        run_auto_refine,
    )
    from cryoprior.refine.run import extrec_executable

    setup_logging(verbose)
    console = Console()

    def fail(message: str, code: int = 1):
        console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(code)

    if mode not in MODES:
        fail(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", 2)
    request = RefineRequest(
        particles_star=particles,
        reference_map=reference,
        mode=mode,
        symmetry=symmetry,
        diameter_angstrom=diameter,
        ini_high_angstrom=ini_high,
        preset=preset,
        mask=mask,
        ctf=ctf,
        ctf_intact_first_peak=ctf_intact_first_peak,
        reference_ctf_corrected=reference_ctf_corrected,
        rescale_reference=rescale_ref,
        absolute_greyscale=absolute_greyscale,
        output=output,
        mpi_ranks=mpi,
        threads=threads,
        cpu_count=os.cpu_count() or 1,
        seed=seed,
        extra_args=tuple(relion_args or ()),
    )
    workdir = Path.cwd()
    try:
        require_programs("mpirun", "relion_refine_mpi")
        version = detect_relion_version("relion_refine_mpi")
        if (version.major, version.minor) < (3, 1):
            fail(f"RELION {version} on PATH: cryoprior refine needs 3.1, 4.0 or 5.0")
        plan = plan_refine(
            request, workdir=workdir, hook_executable=extrec_executable(), version=version
        )
        removed = prepare_job_folder(output, resume=resume, overwrite=overwrite, mode=mode)
    except (RelionNotFoundError, RefineFailedError, InputFileError, RefineInputError) as exc:
        fail(str(exc))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if (version.major, version.minor) not in SUPPORTED_RELION:
        console.print(
            f"[yellow]warning:[/] RELION {version} on PATH; cryoprior was run with 3.1.3 and "
            "reads the files of 4.0 and 5.0",
            highlight=False,
            soft_wrap=True,
        )
    s = plan.settings
    p = plan.particles
    console.print(
        f"[bold]cryoprior refine[/] {particles} -> {output} ({MODES[mode].label}; "
        f"RELION {version})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  {p.n_particles} particles, {p.box_size} px at {p.pixel_size_angstrom:g} A; "
        + "; ".join(plan.notes)
        + f"; sampling: preset {plan.preset.name}; {s.mpi_ranks} ranks x {s.threads} threads",
        highlight=False,
        soft_wrap=True,
    )
    if removed:
        console.print(f"  removed the earlier run's {len(removed)} files (--overwrite)")
    try:
        if plan.rescale_reference is not None and not resume:
            output.mkdir(parents=True, exist_ok=True)
            reached = write_rescaled_reference(plan, request, workdir)
            console.print(
                f"[yellow]warning:[/] {plan.rescale_reference}; resampled (pixel size reached "
                f"{reached:.4g} A) to {s.reference_map}",
                highlight=False,
                soft_wrap=True,
            )
        output.mkdir(parents=True, exist_ok=True)
        if not resume:
            write_record(
                output,
                {
                    "mode": mode,
                    "hook": plan.hook,
                    "relion_version": version.text,
                    "command": build_refine_command(s),
                    "continue_command": build_continue_command(s, "<optimiser>", "<root>"),
                    "notes": list(plan.notes),
                },
            )
    except (InputFileError, OSError) as exc:
        fail(str(exc))
    status, update = _progress_printer(console)
    try:
        with _signals_stop_relion(), status:
            result = run_auto_refine(
                s,
                workdir=workdir,
                hook_command=plan.hook,
                timeout_seconds=timeout,
                resume=resume,
                progress=lambda progress: update(str(output), mode, progress),
            )
    except RefineTimeoutError as exc:
        fail(str(exc))
    except (RelionNotFoundError, RefineFailedError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print(f"interrupted: resume with the same command and --continue ({output})")
        raise typer.Exit(130) from None
    if result.returncode != 0 or result.final_map is None:
        fail(
            f"relion_refine_mpi failed (exit {result.returncode}): "
            f"{refine_failure_message(s.output_root)}"
        )
    console.print(
        f"finished: {result.iterations} iterations, RELION's final resolution "
        f"{result.final_resolution_angstrom} A, {result.wall_seconds / 60:.1f} min; "
        f"map {result.final_map}",
        highlight=False,
        soft_wrap=True,
    )
    if validate:
        _validate_job(console, output, truth_map, truth_star, mask, seed)
    console.print(
        f"the final half-maps are RELION's, unregularized: `cryoprior enhance {output}` applies "
        "the prior once to them, through the guard",
        highlight=False,
        soft_wrap=True,
    )


def _validate_job(console, job: Path, truth_map, truth_star, mask, seed: int) -> None:
    """Validate the finished job and print a table; a failure is one line, not fatal."""
    from cryoprior.cli._common import print_validation
    from cryoprior.errors import InputFileError
    from cryoprior.refine.job import validate_refinement

    try:
        with console.status("computing validation metrics..."):
            report, json_path, figures = validate_refinement(
                job,
                job / "validation",
                truth_map=truth_map,
                truth_star=truth_star,
                mask=mask,
                seed=seed,
            )
    except (InputFileError, FileNotFoundError, KeyError, ValueError) as exc:
        console.print(f"[yellow]validation skipped:[/] {exc}", highlight=False, soft_wrap=True)
        return
    print_validation(
        console,
        report,
        title=f"validation ({report.box_size}^3)",
        json_path=json_path,
        figures=figures,
    )


def _run_suite(
    console,
    suite_name: str,
    root: Path,
    *,
    cases_wanted=None,
    modes_wanted=None,
    cluster=None,
    repeats=None,
    records: Path | None = None,
):
    """Run the suite's cases; return (results, number of failed refinements).

    Here one after another, or as submitit jobs when ``cluster`` (a ClusterSettings) is given;
    every repeat of a case (at most ``repeats``), then the results derived from the runs (the
    post-processing arm, pose differences between modes). With ``records``, the finished runs
    kept there are imported first and every finished run is exported there at once
    (:mod:`cryoprior.refine.records`).
    """
    from cryoprior.refine.cases import repeat_cases
    from cryoprior.refine.config import SUITE_SCALES, suite
    from cryoprior.refine.records import export_records, import_records
    from cryoprior.refine.run import run_mode, write_manifest

    if records is not None:
        imported = import_records(records, root)
        if imported:
            console.print(
                f"{len(imported)} record file(s) of finished runs imported from {records}"
            )
    cases = suite(suite_name)
    # the manifest lists the whole suite (the report marks what has not run yet)
    write_manifest(
        root, cases, suite=suite_name, scale=SUITE_SCALES[suite_name], machine=_machine()
    )
    if cases_wanted:
        unknown = sorted(set(cases_wanted) - {c.name for c in cases})
        if unknown:
            raise typer.BadParameter(f"unknown case(s) {unknown}; see --list")
        cases = [c for c in cases if c.name in cases_wanted]
    tasks = [
        (r, m)
        for c in cases
        for r in repeat_cases(c, repeats)
        for m in c.modes
        if not modes_wanted or m in modes_wanted
    ]
    results = []
    failures = 0

    def done(run) -> None:
        r, s = run.data["refine"], run.data.get("summary", {})
        console.print(
            f"{run.case} / {run.mode}: {'cached' if run.cached else 'done'}, "
            f"RELION {r.get('final_resolution_angstrom')} A, vs truth FSC 0.5 / 0.143 "
            f"{_num(s.get('truth_fsc_05_angstrom'))} / {_num(s.get('truth_fsc_0143_angstrom'))} A, "
            f"{(r.get('wall_seconds') or 0) / 60:.1f} min"
        )
        results.append(run)
        if records is not None:
            export_records(root, records)

    if cluster is not None:
        from cryoprior.refine.dispatch import run_with_submitit

        console.print(
            f"{len(tasks)} runs: those not in the cache go to submitit "
            f"({cluster.cluster or 'auto'}) as jobs"
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
    _derive(console, [r for c in cases for r in repeat_cases(c, repeats)], root)
    if records is not None:
        export_records(root, records)
    if failures:
        console.print(f"[red]{failures} refinement(s) failed[/]: rerun the command to retry them")
    return results, failures


def _derive(console, repeats, root: Path) -> None:
    """Derive the post-processing arms and pose differences of every finished repeat (cached)."""
    from cryoprior.errors import InputFileError
    from cryoprior.refine.derived import pose_difference, run_postprocess

    for case in repeats:
        for mode in case.modes:
            try:
                done = run_postprocess(case, root, mode=mode)
                pose_difference(case, mode, root)
            except (InputFileError, OSError, ValueError, KeyError, RuntimeError) as exc:
                # one failed derivation (a missing map, the prior's error) must not cost the others
                console.print(f"[red]{case.name} / {mode}: derived results failed:[/] {exc}")
                continue
            if done:
                console.print(
                    f"{case.name} (seed {case.refine.random_seed}): post-processing arm, vs truth "
                    "FSC 0.5 / 0.143 "
                    + ", ".join(
                        f"{d['label']} {_num(d['summary'].get('truth_fsc_05_angstrom'))} / "
                        f"{_num(d['summary'].get('truth_fsc_0143_angstrom'))} A"
                        for d in done.values()
                    )
                )


def _run_suite_or_exit(console, suite_name: str, root: Path, **options) -> int:
    """_run_suite (the same arguments) with the CLI's error handling.

    Returns the number of failed refinements.
    """
    from cryoprior.refine.relion import RefineFailedError, RelionNotFoundError

    try:
        with _signals_stop_relion():
            _, failures = _run_suite(console, suite_name, root, **options)
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


def _calibration_notes(suite_name: str | None, given: list[Path] | None) -> list[Path]:
    """Return the calibration notes a report shows: the given files, else the suite's.

    Only the realistic suite has them: ``benchmarks/results/calibration_*.md`` under the
    current folder (the repository), when there.
    """
    if given:
        return list(given)
    if suite_name != "realistic":
        return []
    return sorted(Path("benchmarks/results").glob("calibration_*.md"))


CALIBRATION_HELP = (
    "calibration note (Markdown) to show in the report (repeatable; default for the realistic "
    "suite: benchmarks/results/calibration_*.md)"
)


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def benchmark(
    suite_name: Annotated[
        str, typer.Option("--suite", help="realistic | full | demo | mini")
    ] = "realistic",
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
    repeats: Annotated[
        int | None,
        typer.Option(help="run at most this many repeats of each case (default: the suite's)"),
    ] = None,
    calibration: Annotated[list[Path] | None, typer.Option(help=CALIBRATION_HELP)] = None,
    records: Annotated[
        Path | None,
        typer.Option(
            help="records folder: finished runs kept there are imported into ROOT first (a "
            "fresh machine goes on where another stopped), and each finished run is exported "
            "there (its JSON files, no maps)"
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Run the paper's simulated experiments (every case in every mode), then write the report.

    Runs are cached: a rerun does only what changed or was interrupted.

    Example: cryoprior benchmark --root benchmark_runs   (the realistic suite)
    On a Slurm cluster: cryoprior benchmark --executor submitit --slurm-partition cpu
    """
    from rich.console import Console

    from cryoprior.cli._common import setup_logging
    from cryoprior.refine.cases import MODES
    from cryoprior.refine.config import SUITES, suite
    from cryoprior.report.build import build_report

    setup_logging(verbose)
    console = Console()
    if suite_name not in SUITES:
        console.print(
            f"[red]error:[/] unknown suite {suite_name!r}; choose one of {', '.join(SUITES)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    unknown = sorted(set(mode or ()) - set(MODES))
    if unknown:
        console.print(
            f"[red]error:[/] unknown mode(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(MODES)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    if list_cases:
        for c in suite(suite_name):
            console.print(  # not markup: the modes' [...] is text (it was swallowed)
                f"{c.name}: {c.title} [{', '.join(c.modes)}]"
                + (f" x{c.repeats} repeats" if c.repeats > 1 else ""),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
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
    if repeats is not None and repeats < 1:
        raise typer.BadParameter(f"--repeats must be >= 1, not {repeats}")
    failures = _run_suite_or_exit(
        console,
        suite_name,
        root,
        cases_wanted=case,
        modes_wanted=mode,
        cluster=settings,
        repeats=repeats,
        records=records,
    )
    path = build_report(
        root,
        report_dir or root / "report",
        title=f"cryoprior {suite_name}",
        calibration=_calibration_notes(suite_name, calibration),
    )
    console.print(f"report: {path} and {path.with_suffix('.html')}")
    if failures:
        raise typer.Exit(1)


def report(
    root: Annotated[Path, typer.Argument(help="experiment folder written by `benchmark`")],
    out: Annotated[Path | None, typer.Option(help="report folder (default: ROOT/report)")] = None,
    title: Annotated[str, typer.Option(help="report title")] = "cryoprior benchmark",
    calibration: Annotated[list[Path] | None, typer.Option(help=CALIBRATION_HELP)] = None,
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
    from cryoprior.io.json import read_json

    suite_name = (read_json(root / "benchmark.json") or {}).get("suite")
    try:
        path = build_report(
            root,
            out or root / "report",
            title=title,
            calibration=_calibration_notes(suite_name, calibration),
        )
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"report: {path} and {path.with_suffix('.html')}")


def demo(
    root: Annotated[Path, typer.Option(help="experiment folder")] = Path("demo_runs"),
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Simulate a beta-galactosidase dataset with CTFs; refine it with plain RELION and the prior.

    The realistic suite's isotropic case (box 80 at 2.5 A, 1,000 particles, CTF). Both
    refinements are real relion_refine_mpi runs calling cryoprior-extrec (the second with the
    learned prior); the comparison is printed and the report written. About 10 minutes on 2
    idle cores.

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
        "[bold]cryoprior demo[/]: beta-galactosidase (5a1a, D2), box 80 at 2.5 A, 1,000 particles"
        f" with CTFs, refined with RELION and with the prior, in {root}"
    )
    failures = _run_suite_or_exit(console, "demo", root)
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
