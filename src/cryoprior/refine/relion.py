"""Build and run RELION 3.1's gold-standard auto-refine with an external-reconstruction hook.

Gold-standard refinement needs MPI (plain ``relion_refine`` refuses
``--split_random_halves``): ``mpirun -np 3 relion_refine_mpi`` runs a leader and one rank
per half-set. The hook command goes into ``RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE`` and is
exported to every rank (``mpirun -x``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryoprior.io.hook_log import read_hook_log
from cryoprior.io.relion import (
    RunOutProgress,
    final_map_path,
    last_iteration,
    latest_optimiser_star,
    read_run_out,
    run_err_path,
    run_out_path,
)
from cryoprior.refine.watchdog import stop_session

__all__ = [
    "AutoRefineSettings",
    "RefineFailedError",
    "RefineProgress",
    "RefineResult",
    "RefineTimeoutError",
    "RelionNotFoundError",
    "RelionVersion",
    "build_continue_command",
    "build_refine_command",
    "detect_relion_version",
    "merge_options",
    "parse_relion_version",
    "read_progress",
    "refine_failure_message",
    "relion_error_message",
    "require_programs",
    "run_auto_refine",
]

logger = logging.getLogger(__name__)

HOOK_VARIABLE = "RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE"


class RelionNotFoundError(RuntimeError):
    """A RELION or MPI program is not on PATH."""


class RefineFailedError(RuntimeError):
    """relion_refine_mpi could not start or stopped with an error (message: its last words)."""


class RefineTimeoutError(RefineFailedError):
    """The run was stopped (every process of it) after its time limit."""


def require_programs(*names: str) -> dict[str, str]:
    """Absolute paths of programs on PATH; RelionNotFoundError naming the missing ones."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, p in found.items() if p is None]
    if missing:
        raise RelionNotFoundError(
            f"not found on PATH: {', '.join(missing)} "
            "(install RELION 3.1 and OpenMPI, e.g. `apt-get install -y relion`)"
        )
    return {name: str(p) for name, p in found.items()}


@dataclass(frozen=True)
class AutoRefineSettings:
    """Options of one ``relion_refine_mpi --auto_refine --split_random_halves`` run.

    Paths are relative to the working folder the run starts in (RELION's project folder).
    Defaults fit tiny tests (box 32): coarse global searches, local searches from healpix
    order 2. ``extra_args`` go last; an option named there replaces the same option set by a
    field (RELION reads the first occurrence of an option, so it is removed, not repeated).

    ``ctf_corrected_reference`` (with ``ctf``): the reference is free of CTF effects, as a map
    from a RELION refinement, a model map or a simulation's truth is (``--ctf_corrected_ref``,
    the GUI's "Has reference been CTF-corrected? Yes"). Without it RELION 3.1 takes the
    reference for a CTF-affected map and compares it with the images *without* their CTFs in
    the first iteration: with a CTF-free reference that iteration's poses are those of a run
    without ``--ctf`` (a CTF-free beta-galactosidase reference: median angular error 59 deg
    after iteration 1 against 8 deg with the option), and the refinement can settle on a wrong,
    self-consistent map (``benchmarks/results/calibration_realistic.md``).
    """

    particles_star: str
    reference_map: str
    output_root: str
    particle_diameter_angstrom: float
    symmetry: str = "C1"
    ini_high_angstrom: float = 30.0
    padding_factor: float = 2.0
    healpix_order: int = 1
    auto_local_healpix_order: int = 2
    offset_range_pixels: float = 2.0
    offset_step_pixels: float = 2.0
    low_resol_join_halves_angstrom: float = 40.0
    oversampling: int = 1
    flatten_solvent: bool = True
    zero_mask: bool = True
    ctf: bool = False
    ctf_intact_first_peak: bool = False
    ctf_corrected_reference: bool = True
    norm: bool = False
    scale: bool = False
    firstiter_cc: bool = False
    pool: int | None = None
    solvent_mask: str | None = None
    solvent_correct_fsc: bool = False
    random_seed: int = 0
    auto_iter_max: int | None = None
    external_reconstruct: bool = True
    sequential_halves_recons: bool = False
    mpi_ranks: int = 3
    threads: int = 1
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def build_refine_command(settings: AutoRefineSettings, *, hook_variable: bool = True) -> list[str]:
    """Build the ``mpirun ... relion_refine_mpi ...`` argument list for ``settings``."""
    s = settings
    options: list[list[str]] = [
        ["--o", s.output_root],
        ["--auto_refine"],
        ["--split_random_halves"],
        ["--i", s.particles_star],
        ["--ref", s.reference_map],
    ]
    if s.firstiter_cc:
        options.append(["--firstiter_cc"])
    options += [
        ["--ini_high", f"{s.ini_high_angstrom:g}"],
        ["--pad", f"{s.padding_factor:g}"],
        ["--particle_diameter", f"{s.particle_diameter_angstrom:g}"],
        ["--oversampling", str(s.oversampling)],
        ["--healpix_order", str(s.healpix_order)],
        ["--auto_local_healpix_order", str(s.auto_local_healpix_order)],
        ["--offset_range", f"{s.offset_range_pixels:g}"],
        ["--offset_step", f"{s.offset_step_pixels:g}"],
        ["--sym", s.symmetry],
        ["--low_resol_join_halves", f"{s.low_resol_join_halves_angstrom:g}"],
        ["--j", str(s.threads)],
        ["--dont_combine_weights_via_disc"],
        ["--random_seed", str(s.random_seed)],
    ]
    flags = (
        (s.flatten_solvent, "--flatten_solvent"),
        (s.zero_mask, "--zero_mask"),
        (s.ctf, "--ctf"),
        (s.ctf and s.ctf_corrected_reference, "--ctf_corrected_ref"),
        (s.ctf and s.ctf_intact_first_peak, "--ctf_intact_first_peak"),
        (s.norm, "--norm"),
        (s.scale, "--scale"),
    )
    options += [[flag] for on, flag in flags if on]
    if s.solvent_mask is not None:
        options.append(["--solvent_mask", s.solvent_mask])
        if s.solvent_correct_fsc:
            options.append(["--solvent_correct_fsc"])
    if s.auto_iter_max is not None:
        options.append(["--auto_iter_max", str(s.auto_iter_max)])
    return _command(s, options, hook_variable=hook_variable)


def _command(s: AutoRefineSettings, options: list[list[str]], *, hook_variable: bool) -> list[str]:
    """Return mpirun + relion_refine_mpi + ``options`` + what every run repeats + extra args.

    Every run repeats the pool size and the external reconstruction; the user's
    ``extra_args`` come last and replace options of the same name.
    """
    if s.pool is not None:
        options.append(["--pool", str(s.pool)])
    if s.external_reconstruct:
        options.append(["--external_reconstruct"])
    if s.sequential_halves_recons:
        options.append(["--sequential_halves_recons"])
    cmd = [*_mpirun_prefix(s, hook_variable=hook_variable), "relion_refine_mpi"]
    return cmd + merge_options(options, s.extra_args)


def option_names(args: Sequence[str]) -> set[str]:
    """Return the ``--name`` options of an argument list; values, even negative numbers, are not."""
    return {a for a in args if a.startswith("--") and len(a) > 2}


def merge_options(options: Sequence[Sequence[str]], extra_args: Sequence[str]) -> list[str]:
    """Flatten ``options`` (each ``[--name, values...]``), then append ``extra_args``.

    The options that ``extra_args`` names again are left out: the caller's option wins, and
    RELION (which reads the first occurrence) never sees an option twice.
    """
    override = option_names(extra_args)
    flat = [part for option in options if option[0] not in override for part in option]
    return flat + list(extra_args)


def _mpirun_prefix(settings: AutoRefineSettings, *, hook_variable: bool) -> list[str]:
    cmd = ["mpirun", "--oversubscribe", "-np", str(settings.mpi_ranks)]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    if hook_variable and settings.external_reconstruct:
        cmd += ["-x", HOOK_VARIABLE]
    return cmd


def build_continue_command(
    settings: AutoRefineSettings,
    optimiser_star: str,
    output_root: str,
    *,
    hook_variable: bool = True,
) -> list[str]:
    """``mpirun ... relion_refine_mpi --continue <optimiser> --o <root>`` for ``settings``.

    RELION takes the refinement's parameters from the optimiser STAR; only the options it
    re-reads on a continue (threads, disc use, pool, the external reconstruction, which RELION
    4.0.1+ switches off unless it is given again) are repeated, and ``extra_args`` (e.g.
    ``--gpu``) are passed again.
    """
    s = settings
    options: list[list[str]] = [
        ["--continue", optimiser_star],
        ["--o", output_root],
        ["--j", str(s.threads)],
        ["--dont_combine_weights_via_disc"],
    ]
    return _command(s, options, hook_variable=hook_variable)


@dataclass(frozen=True)
class RefineProgress(RunOutProgress):
    """Where a running auto-refine stands: RELION's standard output and the hook's log.

    The fields of :class:`cryoprior.io.relion.RunOutProgress`, and:

    Attributes
    ----------
    hook_calls: calls logged by cryoprior-extrec so far (0 for another hook).
    regularized: whether the last logged call applied its regularizer (None: no calls).
    fallbacks: logged calls that fell back to the plain map.
    """

    hook_calls: int = 0
    regularized: bool | None = None
    fallbacks: int = 0

    def line(self) -> str:
        """One status line: ``it 7 | 12.3 A | step 3.75 deg local | regularized | 14 calls``."""
        parts = [f"it {self.iteration if self.iteration is not None else '-'}"]
        parts.append(f"{self.resolution_angstrom:.1f} A" if self.resolution_angstrom else "res -")
        if self.angular_step_degrees is not None:
            where = "local" if self.local_searches else "global"
            parts.append(f"step {self.angular_step_degrees:g} deg {where}")
        if self.hook_calls:
            parts.append("regularized" if self.regularized else "plain")
            parts.append(f"{self.hook_calls} hook calls")
            if self.fallbacks:
                parts.append(f"{self.fallbacks} fallbacks")
        if self.finished:
            parts.append(f"final {self.final_resolution_angstrom} A")
        return " | ".join(parts)


def read_progress(output_root: str | Path, run_out: str | Path | None = None) -> RefineProgress:
    """Read RELION's standard output and the hook's JSON-lines log.

    The standard output is ``run_out``, default the job's
    (:func:`cryoprior.io.relion.run_out_path`).

    Tolerates files being written while read (a torn last line is ignored).
    """
    root = Path(output_root)
    out = read_run_out(Path(run_out) if run_out is not None else run_out_path(root))
    records = read_hook_log(root.parent)
    return RefineProgress(
        **dataclasses.asdict(out),
        hook_calls=len(records),
        regularized=bool(records[-1].get("applied")) if records else None,
        fallbacks=sum(bool(r.get("fallback")) for r in records),
    )


@dataclass(frozen=True)
class RefineResult:
    """What a finished auto-refine left behind.

    Attributes
    ----------
    returncode: mpirun's exit status.
    output_root: absolute ``--o`` root.
    final_map: the final joined map (:func:`cryoprior.io.relion.final_map_path`; None if the run
        did not finish).
    iterations: number of the last iteration written (:func:`cryoprior.io.relion.last_iteration`).
    final_resolution_angstrom: RELION's "Final resolution (without masking) is: X"
        or None.
    wall_seconds: elapsed time.
    """

    returncode: int
    output_root: Path
    final_map: Path | None
    iterations: int
    final_resolution_angstrom: float | None
    wall_seconds: float


def run_auto_refine(
    settings: AutoRefineSettings,
    *,
    workdir: str | Path,
    hook_command: str | None = None,
    timeout_seconds: float | None = None,
    env: dict[str, str] | None = None,
    resume: bool = False,
    progress: Callable[[RefineProgress], None] | None = None,
    poll_seconds: float = 2.0,
) -> RefineResult:
    """Run an auto-refine in ``workdir`` and wait for it.

    Parameters
    ----------
    settings: the refinement.
    workdir: RELION's project folder; paths in ``settings`` are relative to it. stdout and
        stderr go to the job's standard output and error files beside the output root
        (:func:`cryoprior.io.relion.run_out_path`; appended on resume).
    hook_command: value of RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE (None: RELION's default,
        ``relion_external_reconstruct``).
    timeout_seconds: stop the run (every process of it) after this long and raise
        :class:`RefineTimeoutError`.
    env: environment for the run (default: this process's).
    resume: continue from the newest ``_itNNN_optimiser.star`` of an interrupted run
        (``--continue``, output root ``<root>_ctNNN``); start afresh when there is none.
    progress: called with :class:`RefineProgress` every ``poll_seconds`` while RELION runs
        and once at the end.

    Raises
    ------
    RelionNotFoundError: mpirun or relion_refine_mpi missing.
    RefineFailedError: mpirun could not be started.
    RefineTimeoutError: past ``timeout_seconds`` (RELION was stopped).
    KeyboardInterrupt: passed on after RELION's processes were stopped.

    mpirun runs under :mod:`cryoprior.refine.watchdog`, the leader of a new session: if this
    process dies, even by SIGKILL, the watchdog stops mpirun and every rank. (It is told through
    ``PR_SET_PDEATHSIG``, which fires when the launching *thread* ends: call this from a thread
    that outlives the run, e.g. the main thread.)
    """
    require_programs("mpirun", "relion_refine_mpi")
    workdir = Path(workdir)
    base_root = settings.output_root
    out_dir = workdir / Path(base_root).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    run_env = dict(os.environ if env is None else env)
    if hook_command is not None:
        run_env[HOOK_VARIABLE] = hook_command
    run_env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    hook = HOOK_VARIABLE in run_env
    latest = latest_optimiser_star(workdir / base_root) if resume else None
    if latest is not None and latest[1] < 1:  # RELION cannot continue from iteration 0
        latest = None
    if latest is not None:
        optimiser, iteration = latest
        root = f"{base_root}_ct{iteration}"
        optimiser_rel = str(Path(base_root).parent / optimiser.name)
        cmd = build_continue_command(settings, optimiser_rel, root, hook_variable=hook)
        mode = "a"
        logger.info("continuing %s from iteration %d", base_root, iteration)
    else:
        root = base_root
        cmd = build_refine_command(settings, hook_variable=hook)
        mode = "w"
    logger.info("running in %s: %s", workdir, " ".join(cmd))
    start = time.monotonic()
    run_out = run_out_path(workdir / base_root)
    with open(run_out, mode) as out, open(run_err_path(workdir / base_root), mode) as err:
        try:
            proc = subprocess.Popen(
                _watched(cmd),
                cwd=workdir,
                env=run_env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            raise RefineFailedError(f"could not start {cmd[0]}: {exc}") from exc
        try:
            while True:
                try:
                    proc.wait(timeout=poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if progress is not None:
                    progress(read_progress(workdir / base_root, run_out))
                if timeout_seconds is not None and time.monotonic() - start > timeout_seconds:
                    stop_session(proc.pid, leader=proc)
                    raise RefineTimeoutError(
                        f"stopped after the time limit of {timeout_seconds:g} s "
                        f"({run_out}); resume with --continue"
                    )
        except BaseException:
            stop_session(proc.pid, leader=proc)
            raise
    wall = time.monotonic() - start
    result_root = (workdir / root).resolve()
    final = read_progress(workdir / base_root, run_out)
    if progress is not None:
        progress(final)
    return RefineResult(
        returncode=proc.returncode,
        output_root=result_root,
        final_map=_existing(final_map_path(result_root)),
        iterations=last_iteration(result_root),
        final_resolution_angstrom=final.final_resolution_angstrom,
        wall_seconds=wall,
    )


def _watched(cmd: list[str]) -> list[str]:
    """Return ``cmd`` run under the watchdog.

    This Python runs ``watchdog.py`` as a script (standard library only, so it starts fast and
    does not depend on the rest of the package).
    """
    from cryoprior.refine import watchdog

    return [sys.executable, watchdog.__file__, str(os.getpid()), "--", *cmd]


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


@dataclass(frozen=True)
class RelionVersion:
    """A RELION version as ``--version`` prints it.

    Attributes
    ----------
    major, minor: e.g. 3, 1.
    patch: e.g. 3 (None for ``4.0-beta-2``).
    text: what followed ``RELION version:`` (e.g. ``4.0.1-commit-ec417f``).
    """

    major: int
    minor: int
    patch: int | None
    text: str

    def __str__(self) -> str:
        """Return the version as RELION printed it."""
        return self.text

    @property
    def has_blush(self) -> bool:
        """RELION 5.0 and later have ``--blush``."""
        return self.major >= 5


SUPPORTED_RELION = ((3, 1), (4, 0), (5, 0))

_VERSION_RE = re.compile(r"RELION version:\s*(\d+)\.(\d+)(?:\.(\d+))?(\S*)")


def parse_relion_version(text: str) -> RelionVersion | None:
    """Parse the version in ``relion_refine --version`` output, or None.

    RELION prints ``RELION version: <g_RELION_VERSION> `` then ``Precision: BASE=...``
    (``PRINT_VERSION_INFO`` in src/macros.h, 3.1-5.0), e.g. ``3.1.3``, ``4.0.1-commit-ec417f``,
    ``4.0-beta-2-commit-e3afcf``, ``5.0.0-commit-90d239``.
    """
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    major, minor, patch, rest = match.groups()
    return RelionVersion(
        major=int(major),
        minor=int(minor),
        patch=int(patch) if patch is not None else None,
        text=f"{major}.{minor}{'.' + patch if patch is not None else ''}{rest}",
    )


def detect_relion_version(
    program: str = "relion_refine_mpi",
    *,
    env: dict[str, str] | None = None,
    timeout_seconds: float = 60.0,
) -> RelionVersion:
    """Run ``<program> --version`` (found on ``env``'s PATH) and parse what it prints.

    Raises RelionNotFoundError when the program is not on PATH, RefineFailedError when it does
    not answer within ``timeout_seconds`` or prints no version.
    """
    path = (env or os.environ).get("PATH")
    found = shutil.which(program, path=path)
    if found is None:
        raise RelionNotFoundError(
            f"not found on PATH: {program} (install RELION 3.1, 4.0 or 5.0 and OpenMPI, "
            "e.g. `apt-get install -y relion`)"
        )
    try:
        proc = subprocess.run(
            [found, "--version"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_seconds,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RefineFailedError(
            f"{found} --version did not answer within {timeout_seconds:g} s"
        ) from None
    except OSError as exc:
        raise RefineFailedError(f"could not run {found} --version: {exc}") from exc
    version = parse_relion_version(proc.stdout + "\n" + proc.stderr)
    if version is None:
        said = (proc.stdout + proc.stderr).strip().splitlines()[:1] or ["nothing"]
        raise RefineFailedError(
            f"{found} --version printed no RELION version (exit {proc.returncode}): {said[0]}"
        )
    return version


_ERROR_STOP = ("=== Backtrace", "---", "in: ", "MPI_ABORT", "[", "===")


def relion_error_message(text: str) -> str | None:
    """RELION's own error message in its standard-error text, without Open MPI's boilerplate.

    RELION prints ``ERROR:`` followed by lines of the message (each rank prints it, with a
    backtrace); the first message is returned, its lines joined by spaces, the ``ERROR``
    prefixes dropped. None when there is no ``ERROR`` line.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("ERROR"):
            continue
        parts = []
        for j, follow in enumerate(lines[i:]):
            stripped = follow.strip()
            if j and stripped.startswith(_ERROR_STOP):
                break
            if stripped.startswith("ERROR"):
                stripped = stripped[len("ERROR") :].lstrip(": ").strip()
            if stripped:
                parts.append(stripped)
        if parts:
            return " ".join(parts)
    return None


def refine_failure_message(output_root: str | Path) -> str:
    """Why a run failed, in one line naming the file: RELION's own error from its error log.

    ``output_root``: the run's ``--o`` (``Refine3D/job/run``). RELION's message
    (:func:`relion_error_message`, without Open MPI's boilerplate), else the last meaningful
    line of the error log (:func:`cryoprior.io.relion.run_err_path`), else where to look.
    """
    err = run_err_path(output_root)
    text = err.read_text(errors="replace") if err.exists() else ""
    message = relion_error_message(text)
    if message is not None:
        return f"{message} (see {err})"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("---", "[", " "))
    ]
    return f"{lines[-1]} (see {err})" if lines else f"see {err} and {run_out_path(output_root)}"
