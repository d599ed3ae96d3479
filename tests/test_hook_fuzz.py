"""Seeded fuzzing of cryoprior-extrec's inputs against its contract.

300 mutations (seed 20261201) of the committed tiny job's half-1 STAR and its three MRC
arrays: bit flips (anywhere, or in the MRC header), truncation, deletion or duplication of
a line (STAR) or a block (MRC). Each mutated job is run through the CLI in-process
(``--regularizer none``), and must end in exactly one of:

- exit 0 and a valid, complete 16^3 map at ``rlnExtReconsResult`` (mrcfile.validate,
  finite values);
- a non-zero exit with exactly one stderr line ``cryoprior-extrec: error: <file>: ...``
  naming a file of the job (or the result path the mutated STAR names), and no map.

Never an uncaught exception (a traceback), never a hang (20 s per case), never a
temporary file left in the job folder. The outcome counts are printed (``pytest -s``).
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import shutil
import signal
import time
from pathlib import Path

import mrcfile
import numpy as np
from typer.testing import CliRunner

from cryoprior.cli.extrec import app
from cryoprior.io.relion_extrec import read_external_reconstruct_job
from jobfiles import TINY_STARS, tiny_reference, unpack_tiny_job

SEED = 20261201
N_STAR, N_PER_ARRAY = 120, 60
STAR = TINY_STARS["half1"]
ARRAYS = [
    Path(str(STAR).replace(".star", f"_{kind}.mrc"))
    for kind in ("data_real", "data_imag", "weight")
]
RESULT = Path(str(STAR).replace(".star", ".mrc"))


def _mutate(data: bytes, rng: np.random.Generator, *, text: bool) -> tuple[bytes, str]:
    kind = rng.choice(["flip", "flip_header", "truncate", "delete", "duplicate"])
    buf = bytearray(data)
    if kind in ("flip", "flip_header"):
        limit = min(len(buf), 1024) if kind == "flip_header" and not text else len(buf)
        positions = rng.integers(0, limit, size=int(rng.integers(1, 17)))
        for p in positions:
            buf[p] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf), f"{kind} {len(positions)} bits"
    if kind == "truncate":
        cut = int(rng.integers(0, len(buf)))
        return bytes(buf[:cut]), f"truncate to {cut} of {len(buf)} bytes"
    if text:
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        i = int(rng.integers(0, len(lines)))
        if kind == "delete":
            return "".join(lines[:i] + lines[i + 1 :]).encode(), f"delete line {i + 1}"
        return "".join(lines[: i + 1] + lines[i:]).encode(), f"duplicate line {i + 1}"
    size = int(rng.integers(4, 4097))
    start = int(rng.integers(0, max(1, len(buf) - size)))
    if kind == "delete":
        return bytes(buf[:start] + buf[start + size :]), f"delete {size} B at {start}"
    return bytes(buf[: start + size] + buf[start:]), f"duplicate {size} B at {start}"


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def _valid_map(path: Path) -> bool:
    if not path.is_file():
        return False
    if not mrcfile.validate(str(path), print_file=io.StringIO()):
        return False
    with mrcfile.open(path, permissive=False) as mrc:
        data = mrc.data
        return data.shape == (16, 16, 16) and bool(np.all(np.isfinite(data)))


def test_fuzzed_inputs_keep_the_contract(tmp_path, capsys):
    pristine = unpack_tiny_job(tmp_path / "pristine")
    reference = tiny_reference("half1")
    runner = CliRunner()
    rng = np.random.default_rng(SEED)
    targets = [STAR] * N_STAR + [a for a in ARRAYS for _ in range(N_PER_ARRAY)]
    outcomes: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    # the CLI routes SIGTERM/SIGHUP through Python; give pytest its own handlers back after
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    start = time.monotonic()
    cwd = os.getcwd()
    try:
        for case, target in enumerate(targets):
            work = tmp_path / "case"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(pristine, work)
            original = (pristine / target).read_bytes()
            mutated, what = _mutate(original, rng, text=target == STAR)
            (work / target).write_bytes(mutated)
            label = f"F{case:03d} {target.name}: {what}"
            os.chdir(work)  # RELION runs the hook in its project folder
            signal.alarm(20)
            try:
                result = runner.invoke(app, ["--regularizer", "none", str(STAR)])
            except _Hang:
                outcomes["hang"] += 1
                problems.append(f"{label}: hang")
                continue
            finally:
                signal.alarm(0)
                os.chdir(cwd)
            leftovers = [p.name for p in (work / STAR.parent).rglob("*") if ".tmp" in p.name]
            if leftovers:
                problems.append(f"{label}: left {leftovers}")
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                outcomes["traceback"] += 1
                problems.append(f"{label}: {type(result.exception).__name__}: {result.exception}")
                continue
            lines = [ln for ln in result.stderr.splitlines() if ln.startswith("cryoprior-extrec")]
            if result.exit_code == 0:
                if not _valid_map(work / RESULT):
                    problems.append(f"{label}: exit 0 without a valid map")
                    outcomes["exit 0, invalid map"] += 1
                    continue
                with mrcfile.open(work / RESULT) as mrc:
                    same = np.array_equal(mrc.data, reference)
                outcomes["exit 0, valid map" + (" (= intact)" if same else " (differs)")] += 1
                if lines:
                    problems.append(f"{label}: exit 0 with an error line {lines}")
            else:
                # it names the file: one of the job's, or the (possibly mutated) result path
                names_file = bool(lines) and (
                    any(p.name in lines[0] for p in [STAR, *ARRAYS])
                    or "cannot write the map" in lines[0]
                )
                if len(lines) != 1 or not names_file or "\n" in lines[0]:
                    problems.append(f"{label}: rc {result.exit_code}, stderr {result.stderr!r}")
                    outcomes["unclear error"] += 1
                    continue
                if (work / RESULT).exists():
                    problems.append(f"{label}: rc {result.exit_code} but a map was written")
                outcomes[f"exit {result.exit_code}, one-line error"] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
        for sig, handler in kept.items():
            signal.signal(sig, handler)
        os.chdir(cwd)
    seconds = time.monotonic() - start
    with capsys.disabled():
        print(f"\nfuzz: {len(targets)} cases in {seconds:.1f} s: {dict(sorted(outcomes.items()))}")
        for line in problems:
            print("  ", line)
    assert problems == []
    assert sum(outcomes.values()) == len(targets)


def test_the_fuzzer_can_see_a_broken_contract(tmp_path, monkeypatch):
    """A reader that raised outside InputFileError would show as a traceback here."""
    unpack_tiny_job(tmp_path)
    import cryoprior.extrec.run as run

    def broken(*args, **kwargs):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(run, "read_external_reconstruct_job", broken)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--regularizer", "none", str(STAR)])
    # the CLI's last line of defence turns it into one line and exit 1, never a traceback
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "ZeroDivisionError: injected" in result.stderr
    with contextlib.suppress(Exception):
        read_external_reconstruct_job(tmp_path / STAR)
