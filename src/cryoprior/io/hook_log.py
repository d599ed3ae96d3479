"""The hook's log: one JSON line per ``cryoprior-extrec`` call, in RELION's output folder.

``cryoprior-extrec`` appends (:func:`append_log_line`); ``cryoprior refine`` and the experiment
runner read it back (:func:`read_hook_log`). The format is each call's record (iteration, half,
regularizer, whether it was applied and why, fallback, seconds per step) as a JSON object.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["LOG_FILE_NAME", "append_log_line", "read_hook_log"]

#: The log's name in RELION's output folder (beside ``run.out``).
LOG_FILE_NAME = "cryoprior_extrec.log"


def append_log_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write (O_APPEND keeps concurrent lines whole).

    The file is opened without blocking and must be a regular file: a FIFO or a device in
    its place raises OSError at once instead of blocking the call.
    """
    line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.write(fd, line)
    finally:
        os.close(fd)


def read_hook_log(job_dir: str | Path) -> list[dict]:
    """Return the records the hook appended to its log in ``job_dir`` (RELION's output folder).

    A torn last line (the hook writing while we read) is skipped; no log gives [].
    """
    log = Path(job_dir) / LOG_FILE_NAME
    if not log.exists():
        return []
    records = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
