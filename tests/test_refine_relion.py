"""``cryoprior refine`` with real RELION 3.1.3 on a tiny CTF dataset (``cryoprior simulate
--ctf``: 6bdf chain A, box 32 at 2.8 A, 40 particles): the README's command without
``--diameter`` runs with CTF correction, RELION's GUI sampling and the options passed through;
a second run into the same folder is refused; the time limit, SIGHUP and SIGKILL of cryoprior
all leave no RELION process behind; ``--continue`` resumes the interrupted run; RELION's own
error message is what the user sees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import starfile
from typer.testing import CliRunner

from cryoprior.cli.app import app
from cryoprior.io.relion import read_optimiser_star
from cryoprior.refine.config import mini_model_path

pytestmark = [pytest.mark.relion]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from conftest import HAVE_RELION

    if not HAVE_RELION:
        pytest.skip("RELION 3.1 / OpenMPI not on PATH")
    root = tmp_path_factory.mktemp("refine_ctf")
    result = CliRunner().invoke(
        app,
        [
            "simulate", str(root / "data"), "--model", str(mini_model_path()),
            "--voxel-size", "2.8", "--box", "32", "--particles", "40", "--snr", "0.5",
            "--ctf", "--seed", "3",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root / "data"


def _refine(project: Path, *args: str, timeout: float = 300):
    """``cryoprior refine`` as a user runs it: a process in the project folder."""
    cmd = [sys.executable, "-m", "cryoprior.cli.app", "refine", "particles.star"]
    cmd += ["--ref", "initial_reference.mrc", *args]
    return subprocess.run(
        cmd, cwd=project, capture_output=True, text=True, timeout=timeout, check=False
    )


def _relion_processes(folder: str) -> list[int]:
    """PIDs of the processes of a run (mpirun, relion_refine_mpi, the watchdog) whose command
    line names ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # mpirun, the ranks, and the watchdog (whose command line holds theirs)
        if ("relion_refine_mpi" in cmdline or "mpirun" in cmdline) and folder in cmdline:
            if "pytest" not in cmdline:
                found.append(int(proc.name))
    return found


def _wait_gone(folder: str, seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _relion_processes(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _start_and_wait_for(project: Path, job: str, iteration: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "cryoprior.cli.app", "refine", "particles.star",
            "--ref", "initial_reference.mrc", "--mode", "relion", "--o", job, "--no-validate",
            "--preset", "fast",  # coarser, quicker iterations
        ],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # signals go to cryoprior only, as `kill PID` does
    )  # fmt: skip
    marker = project / job / f"run_it{iteration:03d}_optimiser.star"
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"no {marker.name} within 240 s"
        time.sleep(0.2)
    return proc


def test_readme_command_runs_with_ctf_and_relions_defaults(project):
    """No --diameter: pixel size, box and CTF from the STAR; the GUI's sampling; an option
    after -- replaces cryoprior's (--pool) and a new one is added (--maxsig)."""
    result = _refine(
        project,
        "--mode", "relion", "--o", "Refine3D/job001", "--truth-map", "true_map.mrc",
        "--", "--pool", "5", "--maxsig", "50",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "40 particles, 32 px at 2.8 A" in out
    assert "CTF correction on (--ctf): the particles have defocus columns" in out
    assert "particle diameter 71 A (not given" in out
    job = project / "Refine3D" / "job001"
    optimiser = read_optimiser_star(job / "run_it001_optimiser.star")
    args = optimiser.command_line.split()
    for option, value in (
        ("--healpix_order", "2"),
        ("--auto_local_healpix_order", "4"),
        ("--offset_range", "5"),
        ("--offset_step", "2"),
        ("--particle_diameter", "71"),
        ("--ini_high", "60"),
        ("--pool", "5"),
        ("--maxsig", "50"),
    ):
        assert args[args.index(option) + 1] == value, (option, optimiser.command_line)
    assert args.count("--pool") == 1
    for flag in (
        "--ctf", "--ctf_corrected_ref", "--norm", "--scale", "--firstiter_cc", "--flatten_solvent",
    ):  # fmt: skip
        assert flag in args
    general = starfile.read(job / "run_it001_optimiser.star", always_dict=True)["optimiser_general"]
    assert int(general["rlnDoCorrectCtf"]) == 1
    # RELION took the reference as CTF-free from the start (without the option its iteration 0
    # records 0 and the first iteration ignores the images' CTFs)
    first = starfile.read(job / "run_it000_optimiser.star", always_dict=True)["optimiser_general"]
    assert int(first["rlnRefsAreCtfCorrected"]) == 1
    run_out = (job / "run.out").read_text()
    # RELION's own account of the sampling: 7.5 deg, offsets 5 px in 1 px steps of 2.8 A
    assert "Angular step= 7.5 degrees" in run_out
    assert "Offset search range= 14 Angstroms; offset step= 2.8 Angstroms" in run_out
    assert (job / "run_class001.mrc").is_file()
    assert (job / "validation" / "validation.json").is_file()
    assert "finished:" in out and "metrics:" in out


def test_second_run_into_the_same_folder_is_refused(project):
    job = project / "Refine3D" / "job001"
    if not (job / "run_class001.mrc").exists():
        pytest.skip("needs the happy-path run")
    before = (job / "run.out").stat().st_mtime_ns
    result = _refine(project, "--mode", "relion", "--o", "Refine3D/job001")
    assert result.returncode == 1
    assert result.stdout.strip().startswith("error: Refine3D/job001 already holds a run")
    assert len(result.stdout.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (job / "run.out").stat().st_mtime_ns == before
    again = _refine(project, "--mode", "relion", "--o", "Refine3D/job001", "--continue")
    assert again.returncode == 1 and "the run has finished" in again.stdout


def test_time_limit_is_one_line_and_stops_relion(project):
    result = _refine(
        project, "--mode", "relion", "--o", "Refine3D/limit", "--timeout", "4", "--preset", "fast"
    )
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped after the time limit of 4 s" in errors[0]
    assert "Traceback" not in result.stderr
    assert _wait_gone("Refine3D/limit") == []


def test_sigkill_of_cryoprior_stops_relion(project):
    """Review R12: SIGKILL of cryoprior used to leave mpirun and 3 ranks running."""
    proc = _start_and_wait_for(project, "Refine3D/killed", 1)
    assert _relion_processes("Refine3D/killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert _wait_gone("Refine3D/killed") == []


def test_sighup_stops_relion_and_continue_resumes(project):
    proc = _start_and_wait_for(project, "Refine3D/hup", 2)
    os.kill(proc.pid, signal.SIGHUP)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted: resume with the same command and --continue" in output
    assert _wait_gone("Refine3D/hup") == []
    job = project / "Refine3D" / "hup"
    last = max(int(p.name[6:9]) for p in job.glob("run_it*_optimiser.star"))
    assert last >= 2
    result = _refine(project, "--mode", "relion", "--o", "Refine3D/hup", "--continue", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"continuing Refine3D/hup/run from iteration {last}" in result.stderr
    assert (job / f"run_ct{last}_class001.mrc").is_file()
    redone = [int(p.name.split("_it")[1][:3]) for p in job.glob(f"run_ct{last}_it*_model.star")]
    assert redone and min(redone) >= last


def test_relions_own_error_is_shown(project):
    """A failure only RELION sees (a second solvent mask that does not exist): its ERROR text
    is the one line shown, not Open MPI's boilerplate."""
    result = _refine(
        project, "--mode", "relion", "--o", "Refine3D/err", "--", "--solvent_mask2", "nosuch.mrc"
    )
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stdout
    assert "nosuch.mrc" in errors[0] and "MPI_ABORT" not in errors[0], errors[0]
    assert errors[0].endswith("(see Refine3D/err/run.err)")
