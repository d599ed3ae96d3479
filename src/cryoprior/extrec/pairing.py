"""Rendezvous of the two half-set processes for regularizers that need both halves.

RELION runs the external program once per half, concurrently (ranks 1 and 2), and each
call must return only when *its* output exists. With ``--sequential_halves_recons`` half 2
starts only after half 1 returned, so any wait must be bounded.

Protocol (files in ``<job dir>/.cryoprior_pair/<root>_itNNN_classCCC/``, all written
atomically):

- each half writes its plain map ``half{h}_plain.mrc``;
- half 1 (the leader) waits up to ``timeout_seconds`` for ``half2_plain.mrc``. If it comes,
  the leader runs the joint regularizer and writes ``half2_result.mrc`` for half 2, then
  returns its own result; on timeout it writes ``leader_gave_up``, on a regularizer
  failure ``leader_failed``, and returns its plain map;
- half 2 waits for ``half2_result.mrc`` or a leader marker, up to ``timeout_seconds``
  plus the regularizer's allowance, and otherwise falls back to its plain map.

Files older than the process start minus ``stale_seconds`` are ignored, so leftovers of an
interrupted attempt at the same iteration cannot be mistaken for the partner's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion import ExternalReconstructName

__all__ = ["PairOutcome", "pair_directory", "rendezvous"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class PairOutcome:
    """Result of a rendezvous for one half.

    volume: the map this half should return (regularized, or its plain map on fallback).
    regularized: whether ``volume`` is the joint regularizer's output.
    reason: why not, when not (None when regularized).
    wait_seconds: time spent waiting for the partner.
    """

    volume: np.ndarray
    regularized: bool
    reason: str | None
    wait_seconds: float


def pair_directory(name: ExternalReconstructName, *, base_dir: str | Path = ".") -> Path:
    """Folder where the two halves of one call meet."""
    root = Path(name.output_root)
    it = f"_it{name.iteration:03d}" if name.iteration is not None else ""
    key = f"{root.name}{it}_{name.kind}{name.index:03d}"
    return Path(base_dir) / root.parent / ".cryoprior_pair" / key


def _fresh(path: Path, not_before: float) -> bool:
    try:
        return path.stat().st_mtime >= not_before
    except FileNotFoundError:
        return False


def _wait_for(paths: list[Path], *, not_before: float, deadline: float) -> Path | None:
    while True:
        for p in paths:
            if _fresh(p, not_before):
                return p
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_SECONDS)


def _touch_marker(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def rendezvous(
    name: ExternalReconstructName,
    plain_map: np.ndarray,
    regularize_pair: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    *,
    timeout_seconds: float,
    regularizer_timeout_seconds: float,
    process_start_time: float,
    base_dir: str | Path = ".",
    stale_seconds: float = 120.0,
    validate: Callable[[np.ndarray], str | None] = lambda v: None,
) -> PairOutcome:
    """Meet the other half, run ``regularize_pair`` once, return this half's map.

    Parameters
    ----------
    name: the call (must be a half-set call).
    plain_map: (N, N, N) this half's plain reconstruction.
    regularize_pair: f(half_map_1, half_map_2) -> (map_1, map_2); run by half 1 only.
    timeout_seconds: how long half 1 waits for half 2's plain map.
    regularizer_timeout_seconds: extra time half 2 allows for the regularizer.
    process_start_time: ``time.time()`` when this process started (for staleness).
    validate: f(map) -> None if acceptable, else a reason; applied to both outputs.

    Never raises for partner or regularizer problems: they give a fallback outcome.
    """
    if name.half not in (1, 2):
        raise ValueError("a rendezvous needs a half-set call (half 1 or 2)")
    folder = pair_directory(name, base_dir=base_dir)
    folder.mkdir(parents=True, exist_ok=True)
    not_before = process_start_time - stale_seconds
    me, other = name.half, 3 - name.half
    my_plain = folder / f"half{me}_plain.mrc"
    other_plain = folder / f"half{other}_plain.mrc"
    half2_result = folder / "half2_result.mrc"
    gave_up = folder / "leader_gave_up"
    failed = folder / "leader_failed"
    write_map_atomic(my_plain, plain_map)
    start = time.monotonic()

    if me == 2:
        deadline = start + timeout_seconds + regularizer_timeout_seconds
        got = _wait_for([half2_result, gave_up, failed], not_before=not_before, deadline=deadline)
        waited = time.monotonic() - start
        try:
            if got is None:
                return PairOutcome(
                    plain_map, False, f"no result from half 1 after {waited:.0f} s", waited
                )
            if got != half2_result:
                why = got.read_text().strip() or got.name
                return PairOutcome(plain_map, False, f"half 1 fell back: {why}", waited)
            try:
                volume = read_map(half2_result, dtype=np.float64)
            except InputFileError as exc:
                return PairOutcome(plain_map, False, f"unreadable joint result ({exc})", waited)
            problem = validate(volume)
            if problem:
                return PairOutcome(plain_map, False, problem, waited)
            return PairOutcome(volume, True, None, waited)
        finally:
            _remove(my_plain, half2_result)

    # half 1: the leader
    got = _wait_for([other_plain], not_before=not_before, deadline=start + timeout_seconds)
    waited = time.monotonic() - start
    try:
        if got is None:
            reason = f"half 2 did not arrive within {timeout_seconds:g} s"
            _touch_marker(gave_up, reason)
            return PairOutcome(plain_map, False, reason, waited)
        try:
            other_map = read_map(other_plain, dtype=np.float64)
            map_1, map_2 = regularize_pair(plain_map, other_map)
            map_1 = np.asarray(map_1, dtype=np.float64)
            map_2 = np.asarray(map_2, dtype=np.float64)
            problem = validate(map_1) or validate(map_2)
        except Exception as exc:  # any regularizer failure means fallback, never a crash
            logger.warning("joint regularizer failed: %s: %s", type(exc).__name__, exc)
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            _touch_marker(failed, f"regularizer failed: {problem}")
            return PairOutcome(plain_map, False, problem, waited)
        write_map_atomic(half2_result, map_2)
        return PairOutcome(map_1, True, None, waited)
    finally:
        _remove(my_plain, other_plain)
