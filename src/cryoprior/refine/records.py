"""A benchmark's records: the small files of finished runs, kept apart from their maps.

An experiment folder (:mod:`cryoprior.refine.run`) holds gigabytes of particles and RELION
output, but what the report and the cache need of a finished run is a few JSON files: its
``result.json``, its validation, its post-processing arms and pose differences
(:mod:`cryoprior.refine.derived`), and each cut-off dataset's reference. Exported to a folder
(for example one under version control), they let a suite that takes longer than one machine's
life go on elsewhere: imported into a fresh experiment folder, every finished run is a cached
run again, and only what is missing is refined.

Layout of a records folder: the experiment folder's, restricted to :data:`RECORD_PATTERNS`
(validations without their per-residue Q-scores).
A run whose records were imported has no maps: its report shows no map sections unless the
figure was made before (:mod:`cryoprior.report.build`), and a change of the validation window
refines it again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cryoprior.io.json import read_json

__all__ = ["RECORD_PATTERNS", "export_records", "import_records"]

logger = logging.getLogger(__name__)

#: The files of a finished run (glob patterns relative to the experiment folder).
RECORD_PATTERNS: tuple[str, ...] = (
    "runs/*/result.json",
    "runs/*/validation/validation.json",
    "runs/*/pose_difference.json",
    "runs/*/postprocess/*/result.json",
    "runs/*/postprocess/*/validation.json",
    "datasets/*/cutoff_reference.json",
)


def _record_files(folder: Path) -> list[Path]:
    """Return the record files under ``folder`` (relative), of finished runs only."""
    finished = _finished_runs(folder)
    files = []
    for pattern in RECORD_PATTERNS:
        for path in sorted(folder.glob(pattern)):
            relative = path.relative_to(folder)
            if relative.parts[0] == "runs" and relative.parts[1] not in finished:
                continue  # a run not finished (or its result unreadable): nothing to keep
            if read_json(path) is None:
                continue  # a partial or unreadable file is not a record
            files.append(relative)
    return files


def _finished_runs(folder: Path) -> set[str]:
    """Return the keys of the runs under ``folder/runs`` with a readable ``result.json``."""
    return {
        path.parent.name
        for path in folder.glob("runs/*/result.json")
        if read_json(path) is not None
    }


def _record_bytes(path: Path) -> bytes:
    """Return the content a record of ``path`` keeps.

    A validation's per-residue Q-scores (three quarters of its size; the report and the cache
    read their mean, in ``result.json``) are left out.
    """
    if path.name != "validation.json":
        return path.read_bytes()
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("q_score"), dict):
        data = {**data, "q_score": {k: v for k, v in data["q_score"].items() if k != "per_residue"}}
    return json.dumps(data, separators=(",", ":"), allow_nan=True).encode()


def _write_atomic(content: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(content)
    partial.replace(target)


def export_records(root: str | Path, records: str | Path) -> list[Path]:
    """Copy the records of ``root``'s finished runs into ``records``; return those written.

    A record is written when it is new or its content changed (a control judged again, a
    derived result recomputed); nothing is removed from ``records``. Paths returned are
    relative to ``records``.
    """
    root, records = Path(root), Path(records)
    written = []
    for relative in _record_files(root):
        content, target = _record_bytes(root / relative), records / relative
        if target.is_file() and target.read_bytes() == content:
            continue
        _write_atomic(content, target)
        written.append(relative)
    if written:
        logger.info("exported %d record file(s) to %s", len(written), records)
    return written


def import_records(records: str | Path, root: str | Path) -> list[Path]:
    """Copy ``records`` into the experiment folder ``root`` where ``root`` lacks them.

    Never overwrites: a run of ``root`` stays as it is, and a run with a ``result.json`` of
    its own takes none of the records' files. Returns the paths copied (relative).
    """
    records, root = Path(records), Path(root)
    if not records.is_dir():
        return []
    own = _finished_runs(root)
    copied = []
    for relative in _record_files(records):
        target = root / relative
        if target.exists() or (relative.parts[0] == "runs" and relative.parts[1] in own):
            continue  # a run of root's own: its derived files are made from its maps
        _write_atomic((records / relative).read_bytes(), target)
        copied.append(relative)
    if copied:
        logger.info("imported %d record file(s) from %s", len(copied), records)
    return copied
