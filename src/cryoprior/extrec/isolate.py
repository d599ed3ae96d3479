"""Run untrusted work (a regularizer) in a forked child process, with a hard time limit.

The process that owns RELION's answer never runs regularizer code: ``sys.exit``,
``KeyboardInterrupt``, ``os._exit``, a segfault in native code, an out-of-memory kill or a
hang all end the child, never the caller. The child returns its arrays through ``.npy``
files in a private temporary folder outside RELION's job folder, which the caller always
removes; on expiry the caller SIGKILLs the child and ignores anything it left. The caller
alone validates and writes the final map, so a timeout can never interrupt a write.

The 'fork' start method keeps the start cheap (no re-import, the plain map is inherited),
and the parent never imports torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.extrec.protocol import one_line

__all__ = ["ChildResult", "StageError", "run_isolated"]

logger = logging.getLogger(__name__)

_STATUS = "status.json"


class StageError(Exception):
    """Raised inside a task to report a failure with a ready-made reason."""


@dataclass(frozen=True)
class ChildResult:
    """What the child handed back.

    arrays: the arrays the task saved (by name), empty on failure.
    info: the JSON-able dict the task returned (empty on failure).
    failure: None on success, else one line saying what happened.
    seconds: wall time of the child.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    seconds: float = 0.0


class _Outbox:
    """Given to the task: ``save(name, array)`` stores an array for the parent."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.names: list[str] = []

    def save(self, name: str, array: np.ndarray) -> None:
        np.save(self.folder / f"{name}.npy", np.asarray(array), allow_pickle=False)
        self.names.append(name)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this child if the parent dies (no orphaned regularizers)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def _child_main(task: Callable[[_Outbox], dict], folder: str, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    outbox = _Outbox(Path(folder))
    status: dict[str, Any]
    try:
        info = task(outbox) or {}
        status = {"ok": True, "info": info, "arrays": outbox.names}
    except StageError as exc:
        status = {"ok": False, "error": one_line(exc)}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: report, never propagate
        logger.debug("isolated task failed:\n%s", traceback.format_exc())
        status = {"ok": False, "error": one_line(f"{type(exc).__name__}: {exc}")}
    try:
        tmp = Path(folder) / f".{_STATUS}.tmp"
        tmp.write_text(json.dumps(status, default=str))
        os.replace(tmp, Path(folder) / _STATUS)
    except BaseException:  # nothing to report through: the parent sees "no result"
        pass
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the regularizer process did not end"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the regularizer process was killed by {name}{hint}"
    return f"the regularizer process exited with status {code} without a result"


def run_isolated(
    task: Callable[[_Outbox], dict],
    *,
    timeout_seconds: float,
    temp_parent: str | Path | None = None,
) -> ChildResult:
    """Run ``task(outbox)`` in a forked child; return its arrays and info, or why not.

    Parameters
    ----------
    task: called in the child with an outbox; saves arrays with ``outbox.save(name, a)``
        and returns a JSON-able dict. Raise StageError for a ready-made failure reason.
    timeout_seconds: wall-clock limit; the child is SIGKILLed when it expires.
    temp_parent: where the private temporary folder is made (default: the system's).

    Never raises for anything the task does; the temporary folder is always removed.
    """
    import time

    start = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="cryoprior-extrec-", dir=temp_parent))
    try:
        ctx = multiprocessing.get_context("fork")
        proc = ctx.Process(target=_child_main, args=(task, str(folder), os.getpid()), daemon=True)
        proc.start()
        try:
            proc.join(max(timeout_seconds, 0.0))
            if proc.is_alive():
                proc.kill()
                proc.join()
                return ChildResult(
                    failure=f"timeout: regularization exceeded {timeout_seconds:g} s "
                    "(regularizer process killed)",
                    seconds=time.monotonic() - start,
                )
        finally:
            if proc.is_alive():  # interrupted while waiting: never leave the child behind
                proc.kill()
                proc.join()
        seconds = time.monotonic() - start
        try:
            status = json.loads((folder / _STATUS).read_text())
        except (OSError, ValueError):
            return ChildResult(failure=_describe_exit(proc.exitcode), seconds=seconds)
        if not status.get("ok"):
            return ChildResult(failure=str(status.get("error")), seconds=seconds)
        arrays = {}
        try:
            for name in status.get("arrays", []):
                arrays[name] = np.load(folder / f"{name}.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            return ChildResult(
                failure=one_line(f"unreadable regularizer output ({exc})"), seconds=seconds
            )
        return ChildResult(arrays=arrays, info=dict(status.get("info") or {}), seconds=seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
