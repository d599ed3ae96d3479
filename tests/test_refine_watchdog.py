"""The watchdog between cryoprior and mpirun (review R12), without RELION: stand-ins for mpirun's
ranks (processes in process groups of their own, one ignoring SIGTERM) are stopped when the
process that launched the watchdog is SIGKILLed, and when the watchdog gets SIGTERM; the
command's exit status comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from cryoprior.refine.watchdog import session_members, stop_session

PYTHON = sys.executable
RANK = "import os, signal, time; os.setpgid(0, 0); {} time.sleep(300)"
RANKS = (
    f'{PYTHON} -c "{RANK.format("signal.signal(signal.SIGTERM, signal.SIG_IGN);")}" & '
    f'{PYTHON} -c "{RANK.format("")}" & wait'
)


def _wait_members(session: int, count: int, seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    members = session_members(session)
    while len(members) != count and time.monotonic() < deadline:
        time.sleep(0.1)
        members = session_members(session)
    return members


def test_sigkill_of_the_launcher_stops_the_ranks():
    launcher = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        proc = subprocess.Popen(
            [{PYTHON!r}, "-m", "cryoprior.refine.watchdog", str(os.getpid()), "1", "--",
             "bash", "-c", {RANKS!r}],
            start_new_session=True,
        )
        print(proc.pid, flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([PYTHON, "-c", launcher], stdout=subprocess.PIPE, text=True)
    watchdog = int(parent.stdout.readline())
    # watchdog + bash + 2 ranks
    assert len(_wait_members(watchdog, 4)) == 4
    parent.kill()  # SIGKILL: no handler runs in the launcher
    parent.communicate()
    assert _wait_members(watchdog, 0) == []


def test_sigterm_to_the_watchdog_stops_the_ranks_and_exit_status_passes():
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "cryoprior.refine.watchdog",
            str(os.getpid()),
            "1",
            "--",
            "bash",
            "-c",
            RANKS,
        ],
        start_new_session=True,
    )
    assert len(_wait_members(proc.pid, 4)) == 4
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert _wait_members(proc.pid, 0) == []
    # started without a session of its own, it makes one (it must never stop its launcher's)
    done = subprocess.run(
        [PYTHON, "-m", "cryoprior.refine.watchdog", str(os.getpid()), "--", "sh", "-c", "exit 7"],
        check=False,
    )
    assert done.returncode == 7


def test_stop_ends_every_process_of_the_session():
    """As cryoprior stops mpirun's ranks: children in their own process groups (one ignoring
    SIGTERM) are still stopped, since they share the session of the leader it started."""
    proc = subprocess.Popen(["bash", "-c", RANKS], start_new_session=True)
    assert len(_wait_members(proc.pid, 3, seconds=10)) == 3
    stop_session(proc.pid, grace_seconds=1.0, leader=proc)
    assert proc.returncode is not None  # the leader is reaped
    assert _wait_members(proc.pid, 0, seconds=5) == []  # killed orphans: reaped by init


def test_stop_returns_once_the_session_has_ended():
    """A session whose processes all end on SIGTERM: the stop returns at once, not after the
    grace period (the leader it started is reaped while waiting, so its exit counts)."""
    proc = subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)
    assert len(_wait_members(proc.pid, 2, seconds=10)) == 2
    start = time.monotonic()
    stop_session(proc.pid, grace_seconds=60.0, leader=proc)
    assert time.monotonic() - start < 10.0
    assert proc.returncode == -signal.SIGTERM
    # a leader that has already ended and left nothing: nothing to do, nothing raised
    stop_session(proc.pid, grace_seconds=60.0, leader=proc)
