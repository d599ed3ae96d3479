"""A tiny supervisor between ``cryoprior refine`` and ``mpirun``: RELION never outlives cryoprior.

``python -m cryoprior.refine.watchdog PARENT_PID [GRACE_SECONDS] -- mpirun ... relion_refine_mpi
...`` is what :func:`cryoprior.refine.relion.run_auto_refine` starts. It makes itself the leader
of a new session (if it is not already), starts the command in that session and waits for it.
When the process that launched it ends - even by SIGKILL, which no handler sees - or when it gets
SIGTERM, SIGINT or SIGHUP itself, it stops every process of its session (mpirun and the ranks,
which sit in process groups of their own): SIGTERM, then SIGKILL after ``GRACE_SECONDS``
(default 10). Its exit status is the command's (128 + N for a signal N).

The parent's end is noticed through ``prctl(PR_SET_PDEATHSIG)`` (Linux; immediate) and by
polling ``getppid`` every half second (any POSIX system). It is a program of its own (run as a
script or with ``-m``; standard library only), so it writes its usage error to stderr itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

__all__ = ["main", "session_members", "stop_session"]

PR_SET_PDEATHSIG = 1
GRACE_SECONDS = 10.0
POLL_SECONDS = 0.5


def session_members(session_id: int) -> list[int]:
    """Return the PIDs of the processes in a session, from /proc (empty where there is none)."""
    members: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) == session_id:
                members.append(int(entry))
        except (ProcessLookupError, PermissionError):
            continue
    return members


def stop_session(
    session_id: int,
    *,
    grace_seconds: float = GRACE_SECONDS,
    spare: int = 0,
    leader: subprocess.Popen | None = None,
) -> None:
    """Stop every process of a session but ``spare``.

    SIGTERM to each, then SIGKILL to those left after ``grace_seconds``.

    ``leader``: the session's leader when the caller started it (``start_new_session=True``,
    as :func:`cryoprior.refine.relion.run_auto_refine` starts mpirun under this watchdog). It
    is reaped while waiting, so that its exit counts at once, signalled even where ``/proc``
    lists no member, and waited for at the end.
    """

    def left() -> list[int]:
        if leader is not None:
            leader.poll()  # reaps it once it has ended: a zombie would still count
        return [p for p in session_members(session_id) if p != spare]

    targets = left()
    if not targets and leader is not None and leader.poll() is None:
        targets = [leader.pid]
    _signal_all(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not left() and (leader is None or leader.poll() is not None):
            return
        time.sleep(0.2)
    _signal_all(left(), signal.SIGKILL)
    if leader is not None:
        leader.wait()


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _ask_for_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid poll still works
        pass


def main(argv: list[str] | None = None) -> int:
    """Run ``PARENT_PID [GRACE_SECONDS] -- COMMAND...`` (``argv``, default ``sys.argv[1:]``).

    Returns the command's exit status (128 + N for a signal N), 128 + SIGTERM when the watchdog
    stopped the session, 2 for a usage error, 127 when the command cannot be started.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args.index("--") not in (1, 2) or args[-1] == "--":
        print(
            "usage: python -m cryoprior.refine.watchdog PARENT_PID [GRACE_SECONDS] -- COMMAND...",
            file=sys.stderr,
        )
        return 2
    split = args.index("--")
    parent = int(args[0])
    grace = float(args[1]) if split == 2 else GRACE_SECONDS
    command = args[split + 1 :]
    me = os.getpid()
    if os.getsid(0) != me:
        # it acts on its whole session: it must lead one of its own, never its launcher's
        try:
            os.setsid()
        except OSError as exc:
            print(f"watchdog: cannot start a session of its own: {exc}", file=sys.stderr)
            return 2
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    _ask_for_parent_death_signal()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 128 + signal.SIGTERM
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"could not start {command[0]}: {exc}", file=sys.stderr)
        return 127
    while True:
        if stopping or os.getppid() != parent:
            stop_session(os.getsid(me), grace_seconds=grace, spare=me)
            child.wait()
            return 128 + signal.SIGTERM
        try:
            code = child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        # mpirun has ended; ranks it left behind (it normally reaps them) are stopped too
        if [p for p in session_members(os.getsid(me)) if p != me]:
            stop_session(os.getsid(me), grace_seconds=2.0, spare=me)
        return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
