"""Rendezvous of the two half-set processes for regularizers that need both halves.

RELION runs the external program once per half, concurrently (ranks 1 and 2), and each
call must return only when *its* output exists. With ``--sequential_halves_recons`` half 2
starts only after half 1 returned (and RELION writes half 2's files only then), so any
wait must be bounded.

Files live in ``<job dir>/.cryoprior_pair/<call key>/`` (one folder per call of both halves). Every process of a call
(an *attempt*) draws a random token and holds an exclusive ``flock`` on ``<token>.lock``
for its whole life, so a partner can tell a live attempt from a dead one (the kernel drops
the lock when a process dies, even by SIGKILL). All changes to the folder's set of
markers happen under a ``flock`` on the folder itself.

- each half writes its plain map ``<token>.plain.mrc`` and its marker ``half{h}.json``:
  token, the call's identity (regularizer, options, mask) and the signature (path, size,
  mtime_ns, inode) of the job STAR and arrays RELION wrote for it;
- half 1 (the leader) accepts half 2's marker only if half 2 is alive, the identity is its
  own and the signature matches half 2's files on disk now. It then claims that attempt
  (``<t2>.claim``), runs the joint regularizer (isolated, see ``extrec.isolate``) and writes
  ``<t2>.result.mrc`` and ``<t2>.verdict.json``, both named after half 2's token, so a
  verdict can only ever reach the attempt it was computed for;
- on timeout the leader writes ``gave_up.json`` (its token, identity and input
  signature). Half 2 takes it only for the same identity, while half 1's files are
  unchanged, and when half 2's own files were written after it (as RELION does with
  ``--sequential_halves_recons``). A new leader removes any earlier one;
- half 2 leaves (plain map) when the leader gave up, when no leader claimed it within
  ``timeout_seconds``, when the leader died, or when a claimed computation overruns;
  leaving and claiming are serialized, so either both halves use the joint result or
  neither does.

Each process removes its own files when it returns, and every entrant first removes the
files of dead attempts, so nothing is left once a pair completes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.extrec.protocol import one_line
from cryoprior.io._atomic import atomic_path
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion_extrec import ExternalReconstructName

__all__ = [
    "PairOutcome",
    "call_identity",
    "input_signature",
    "job_input_paths",
    "pair_directory",
    "rendezvous",
]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
#: Extra time half 2 allows a claimed leader beyond the regularizer's own limit.
_CLAIM_MARGIN_SECONDS = 60.0

#: f(half_map_1, half_map_2) -> (map_1, map_2, None, info) or (None, None, reason, info);
#: ``info["half1"]`` / ``info["half2"]`` (JSON-able) reach each half's PairOutcome.
JointCompute = Callable[
    [np.ndarray, np.ndarray],
    tuple[np.ndarray | None, np.ndarray | None, str | None, dict[str, Any]],
]


@dataclass(frozen=True)
class PairOutcome:
    """Result of a rendezvous for one half.

    volume: the map this half should return (joint result, or its plain map on fallback).
    regularized: whether ``volume`` is the joint regularizer's output.
    reason: why not, when not (None when regularized).
    wait_seconds: time spent waiting for the partner.
    info: what the joint computation reported for this half (e.g. the guard's record).
    met: whether the halves met (the leader claimed the follower), whatever came of it.
    """

    volume: np.ndarray
    regularized: bool
    reason: str | None
    wait_seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    met: bool = False


def pair_directory(name: ExternalReconstructName, *, base_dir: str | Path = ".") -> Path:
    """Folder where the two halves of one call meet."""
    return Path(base_dir) / Path(name.output_root).parent / ".cryoprior_pair" / name.call_key


def job_input_paths(star: Path) -> list[Path]:
    """Return the job STAR and the three arrays RELION writes beside it (RELION's naming)."""
    stem = str(star)[: -len(".star")] if str(star).endswith(".star") else str(star)
    return [star] + [Path(f"{stem}_{s}.mrc") for s in ("data_real", "data_imag", "weight")]


def input_signature(paths: list[Path]) -> list[list[Any]]:
    """[absolute path, size, mtime_ns, inode] of each file (None values when missing)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([os.path.abspath(p), st.st_size, st.st_mtime_ns, st.st_ino])
        except OSError:
            out.append([os.path.abspath(p), None, None, None])
    return out


def _signature_is_current(recorded: Any) -> bool:
    try:
        paths = [Path(entry[0]) for entry in recorded]
    except (TypeError, IndexError):
        return False
    return bool(paths) and input_signature(paths) == recorded


def call_identity(regularizer: str, options: dict[str, Any], mask: str | None) -> str:
    """Return a short hash of what the joint computation depends on besides the data."""
    text = json.dumps(
        {"regularizer": regularizer, "options": options, "mask": mask},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- folder primitives -------------------------------------------------------------------


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive flock on the folder itself (re-made if someone removed it meanwhile)."""
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(folder))
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            os.close(fd)


def _alive(folder: Path, token: str) -> bool:
    """Whether the attempt ``token`` still holds its lock."""
    try:
        fd = os.open(folder / f"{token}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        return False
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(value, default=str))


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            p.unlink()


def _token_of(file_name: str) -> str | None:
    """Return the attempt token a file belongs to (also for the hidden temporary files)."""
    head = file_name.lstrip(".").split(".", 1)[0]
    return head if len(head) == 32 and all(c in "0123456789abcdef" for c in head) else None


def _sweep(folder: Path) -> None:
    """Remove markers and files of attempts that are no longer alive (under the folder lock)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    verdicts: dict[str, bool] = {}

    def alive(token: str) -> bool:
        if token not in verdicts:
            verdicts[token] = _alive(folder, token)
        return verdicts[token]

    for file_name in names:
        path = folder / file_name
        if file_name in ("half1.json", "half2.json"):
            marker = _read_json(path)
            if marker is None or not alive(str(marker.get("token"))):
                _remove(path)
            continue
        token = _token_of(file_name)
        if token is not None and not alive(token):
            _remove(path)


class _Attempt:
    """Presence of this process in the pair folder."""

    def __init__(self, folder: Path, half: int):
        self.folder = folder
        self.half = half
        self.token = uuid.uuid4().hex
        self.lock_fd: int | None = None

    def path(self, suffix: str) -> Path:
        return self.folder / f"{self.token}{suffix}"

    def enter(self, marker: dict[str, Any], plain_map: np.ndarray) -> None:
        with _folder_lock(self.folder):
            _sweep(self.folder)
            if self.half == 1:
                _remove(self.folder / "gave_up.json")  # a new leader supersedes an old one
            fd = os.open(self.path(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.lock_fd = fd
        write_map_atomic(self.path(".plain.mrc"), plain_map)
        marker = dict(marker, token=self.token, half=self.half, map=self.path(".plain.mrc").name)
        _write_json(self.folder / f"half{self.half}.json", marker)

    def leave(self, *extra: Path) -> None:
        """Remove this attempt's files (and ``extra``), release the lock, tidy the folder."""
        with contextlib.suppress(OSError), _folder_lock(self.folder):
            marker = _read_json(self.folder / f"half{self.half}.json")
            if marker is not None and marker.get("token") == self.token:
                _remove(self.folder / f"half{self.half}.json")
            _remove(self.path(".plain.mrc"), *extra)
            _remove(self.path(".lock"))
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None
            with contextlib.suppress(OSError):
                if not os.listdir(self.folder):
                    self.folder.rmdir()
                    with contextlib.suppress(OSError):
                        self.folder.parent.rmdir()
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
            self.lock_fd = None


def _valid_partner(folder: Path, marker: dict[str, Any] | None, identity: str) -> bool:
    return (
        marker is not None
        and marker.get("identity") == identity
        and _signature_is_current(marker.get("inputs"))
        and _alive(folder, str(marker.get("token")))
    )


# --- the rendezvous ----------------------------------------------------------------------


def rendezvous(
    name: ExternalReconstructName,
    plain_map: np.ndarray,
    compute_pair: JointCompute,
    *,
    identity: str,
    inputs: list[Path],
    timeout_seconds: float,
    regularizer_timeout_seconds: float,
    base_dir: str | Path = ".",
    validate: Callable[[np.ndarray], str | None] = lambda v: None,
) -> PairOutcome:
    """Meet the other half, run ``compute_pair`` once (half 1), return this half's map.

    Parameters
    ----------
    name: the call (must be a half-set call).
    plain_map: (N, N, N) this half's plain reconstruction.
    compute_pair: f(half_map_1, half_map_2) -> (map_1, map_2, None) or (None, None,
        reason); run by half 1 only (isolated by the caller).
    identity: ``call_identity`` of this call; both halves must agree.
    inputs: this half's job STAR and arrays (``job_input_paths``).
    timeout_seconds: how long half 1 waits for half 2, and half 2 for a leader's claim.
    regularizer_timeout_seconds: how long half 2 allows a claimed computation.
    validate: f(map) -> None if acceptable, else a reason; applied to both outputs.

    Never raises for partner, regularizer or file-system problems: they give a fallback
    outcome (an OSError in the pair folder is reported as the reason).
    """
    if name.half not in (1, 2):
        raise ValueError("a rendezvous needs a half-set call (half 1 or 2)")
    folder = pair_directory(name, base_dir=base_dir)
    attempt = _Attempt(folder, name.half)
    start = time.monotonic()
    marker = {"identity": identity, "inputs": input_signature(inputs), "time_ns": time.time_ns()}
    try:
        attempt.enter(marker, plain_map)
    except OSError as exc:
        with contextlib.suppress(OSError):
            attempt.leave()
        return PairOutcome(plain_map, False, one_line(f"pair folder {folder} unusable: {exc}"), 0.0)
    try:
        if name.half == 1:
            return _lead(
                attempt, plain_map, compute_pair, identity, marker, timeout_seconds, validate, start
            )
        return _follow(
            attempt,
            plain_map,
            identity,
            marker,
            timeout_seconds,
            regularizer_timeout_seconds,
            validate,
            start,
        )
    except OSError as exc:
        return PairOutcome(
            plain_map, False, one_line(f"pair folder {folder}: {exc}"), time.monotonic() - start
        )


def _lead(
    attempt: _Attempt,
    plain_map: np.ndarray,
    compute_pair: JointCompute,
    identity: str,
    my_marker: dict[str, Any],
    timeout_seconds: float,
    validate: Callable[[np.ndarray], str | None],
    start: float,
) -> PairOutcome:
    folder = attempt.folder
    partner_file = folder / "half2.json"
    partner: dict[str, Any] | None = None
    try:
        while partner is None:
            candidate = _read_json(partner_file)
            if candidate is not None and _valid_partner(folder, candidate, identity):
                with _folder_lock(folder):
                    again = _read_json(partner_file)
                    if (
                        again is not None
                        and again.get("token") == candidate.get("token")
                        and _alive(folder, str(again.get("token")))
                    ):
                        _write_json(folder / f"{again['token']}.claim", {"by": attempt.token})
                        partner = again
                        break
            if time.monotonic() - start >= timeout_seconds:
                reason = f"half 2 did not arrive within {timeout_seconds:g} s"
                with _folder_lock(folder):
                    gave_up = {
                        "token": attempt.token,
                        "identity": identity,
                        "inputs": my_marker["inputs"],
                        "time_ns": time.time_ns(),
                        "reason": reason,
                    }
                    _write_json(folder / "gave_up.json", gave_up)
                return PairOutcome(plain_map, False, reason, time.monotonic() - start)
            time.sleep(_POLL_SECONDS)
        waited = time.monotonic() - start
        t2 = str(partner["token"])
        info: dict[str, Any] = {}
        try:
            other = read_map(folder / str(partner.get("map")), dtype=np.float64)
            map_1, map_2, problem, info = compute_pair(plain_map, other)
        except InputFileError as exc:
            map_1 = map_2 = None
            problem = f"unreadable half-2 map ({exc})"
        if problem is None:
            if map_1 is None or map_2 is None:
                problem = "the joint regularizer returned no maps"
            else:
                problem = validate(map_1) or validate(map_2)
        if problem is None:
            assert map_1 is not None and map_2 is not None
            try:
                write_map_atomic(folder / f"{t2}.result.mrc", map_2)
                _write_json(
                    folder / f"{t2}.verdict.json",
                    {"ok": True, "by": attempt.token, "info": info.get("half2") or {}},
                )
            except OSError as exc:
                problem = one_line(f"could not hand half 2 its map: {exc}")
        if problem is not None:
            with contextlib.suppress(OSError):
                _write_json(
                    folder / f"{t2}.verdict.json",
                    {"ok": False, "reason": problem, "by": attempt.token},
                )
            return PairOutcome(plain_map, False, problem, waited, met=True)
        return PairOutcome(
            np.asarray(map_1, dtype=np.float64),
            True,
            None,
            waited,
            dict(info.get("half1") or {}),
            met=True,
        )
    finally:
        attempt.leave()


def _gave_up_applies(
    folder: Path, gave_up: dict[str, Any] | None, identity: str, my_marker: dict[str, Any]
) -> bool:
    """Tell whether a leader's "gave up" applies to this half 2.

    It counts only for this identity, unchanged half-1 files, and a half 2 whose own files
    were written after it (RELION's --sequential_halves_recons).
    """
    if gave_up is None or gave_up.get("identity") != identity:
        return False
    if not _signature_is_current(gave_up.get("inputs")):
        return False
    my_star = my_marker["inputs"][0]
    if my_star[2] is None or my_star[2] <= int(gave_up.get("time_ns") or 0):
        return False
    leader = _read_json(folder / "half1.json")
    return not (
        leader is not None
        and leader.get("token") != gave_up.get("token")
        and _alive(folder, str(leader.get("token")))
    )


def _follow(
    attempt: _Attempt,
    plain_map: np.ndarray,
    identity: str,
    my_marker: dict[str, Any],
    timeout_seconds: float,
    regularizer_timeout_seconds: float,
    validate: Callable[[np.ndarray], str | None],
    start: float,
) -> PairOutcome:
    folder = attempt.folder
    claim_file = attempt.path(".claim")
    verdict_file = attempt.path(".verdict.json")
    result_file = attempt.path(".result.mrc")
    gave_up_file = folder / "gave_up.json"
    used_gave_up = False
    claimed_at: float | None = None
    try:
        while True:
            verdict = _read_json(verdict_file)
            waited = time.monotonic() - start
            if verdict is not None:
                if not verdict.get("ok"):
                    reason = f"half 1 fell back: {verdict.get('reason')}"
                    return PairOutcome(plain_map, False, reason, waited, met=True)
                try:
                    volume = read_map(result_file, dtype=np.float64)
                except InputFileError as exc:
                    reason = f"unreadable joint result ({exc})"
                    return PairOutcome(plain_map, False, reason, waited, met=True)
                problem = validate(volume)
                if problem:
                    return PairOutcome(plain_map, False, problem, waited, met=True)
                info = dict(verdict.get("info") or {})
                return PairOutcome(volume, True, None, waited, info, met=True)
            claim = _read_json(claim_file)
            if claim is not None:
                if claimed_at is None:
                    claimed_at = time.monotonic()
                if not _alive(folder, str(claim.get("by"))):
                    if _read_json(verdict_file) is not None:
                        continue
                    reason = "half 1 ended without a result for half 2"
                    return PairOutcome(plain_map, False, reason, waited, met=True)
                allowed = regularizer_timeout_seconds + _CLAIM_MARGIN_SECONDS
                if time.monotonic() - claimed_at > allowed:
                    reason = f"no result from half 1 after {waited:.0f} s"
                    return PairOutcome(plain_map, False, reason, waited, met=True)
            else:
                gave_up = _read_json(gave_up_file)
                give_up_now = _gave_up_applies(folder, gave_up, identity, my_marker)
                timed_out = waited >= timeout_seconds
                if give_up_now or timed_out:
                    with _folder_lock(folder):
                        if not claim_file.exists():  # leaving and claiming never overlap
                            _remove(folder / "half2.json")
                            used_gave_up = give_up_now
                            stale = gave_up is not None and not _alive(
                                folder, str(gave_up.get("token"))
                            )
                            if give_up_now or stale:  # nobody else can use it any more
                                _remove(gave_up_file)
                            break
            time.sleep(_POLL_SECONDS)
        waited = time.monotonic() - start
        if used_gave_up:
            why = (gave_up or {}).get("reason") or "gave up"
            return PairOutcome(plain_map, False, f"half 1 fell back: {why}", waited)
        return PairOutcome(
            plain_map, False, f"half 1 did not claim half 2 within {timeout_seconds:g} s", waited
        )
    finally:
        attempt.leave(claim_file, verdict_file, result_file)
