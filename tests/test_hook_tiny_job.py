"""cryoprior-extrec's promises, checked on the committed tiny RELION job (no RELION needed).

The job (tests/data/relion_job_tiny, README there) is one local-searches iteration (it006,
both halves) and the final joined call of a real RELION 3.1.3 auto-refine, with the stock
``relion_external_reconstruct`` outputs as references. Each test runs the installed
``cryoprior-extrec`` as RELION does: a subprocess, cwd = the project folder, the job STAR
last. One test per defect class of the reliability audit (review_reliability.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from conftest import extrec_executable, hook_env
from cryoprior.io.relion_extrec import read_external_reconstruct_job
from jobfiles import TINY_STARS, tiny_reference, unpack_tiny_job

REG = "regularizers_for_tests"
H1, H2, FINAL = TINY_STARS["half1"], TINY_STARS["half2"], TINY_STARS["final"]
JOB = H1.parent


@pytest.fixture
def project(tmp_path):
    """A fresh copy of the tiny job, and a private TMPDIR to check for leftovers."""
    unpack_tiny_job(tmp_path / "p")
    (tmp_path / "tmp").mkdir()
    return tmp_path / "p"


def _env(project: Path) -> dict[str, str]:
    env = hook_env()
    env["TMPDIR"] = str(project.parent / "tmp")
    return env


def _run(project: Path, star: Path, *options: str, timeout: float = 60):
    cmd = [extrec_executable(), *options, str(star)]
    return subprocess.run(
        cmd, cwd=project, env=_env(project), capture_output=True, text=True, timeout=timeout
    )


def _start(project: Path, star: Path, *options: str) -> subprocess.Popen:
    cmd = [extrec_executable(), *options, str(star)]
    return subprocess.Popen(
        cmd,
        cwd=project,
        env=_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 60) -> int:
    """Wait for a started hook, closing its pipes; its exit status."""
    proc.communicate(timeout=timeout)
    return proc.returncode


def _result_path(project: Path, star: Path) -> Path:
    return project / read_external_reconstruct_job(project / star).result_path


def _result(project: Path, star: Path) -> np.ndarray:
    with mrcfile.open(_result_path(project, star), permissive=True) as mrc:
        return mrc.data.copy()


def _log(project: Path) -> list[dict]:
    path = project / JOB / "cryoprior_extrec.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _is_reference(volume: np.ndarray, call: str) -> bool:
    return np.array_equal(volume, tiny_reference(call))


def _no_leftovers(project: Path) -> None:
    """No temporary file anywhere in the project, no private folder left in TMPDIR."""
    left = [p for p in project.rglob("*") if ".tmp" in p.name]
    assert left == [], left
    assert list((project.parent / "tmp").iterdir()) == []


def _one_error_line(proc, must_name: str, code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cryoprior-extrec: error:"), lines[0]
    assert must_name in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


# --- the committed job is what the stock program saw ------------------------------------


@pytest.mark.parametrize("call", ["half1", "half2", "final"])
def test_plain_map_equals_the_stock_program(project, call):
    """Bit-identical to relion_external_reconstruct's float32 output for all three calls."""
    proc = _run(project, TINY_STARS[call], "--regularizer", "none")
    assert proc.returncode == 0, proc.stderr
    assert _is_reference(_result(project, TINY_STARS[call]), call)
    _no_leftovers(project)


# --- 1. output faults ---------------------------------------------------------------------


def _set_result(project: Path, star: Path, value: str) -> None:
    path = project / star
    lines = path.read_text().splitlines()
    lines = [f"_rlnExtReconsResult {value}" if ln.startswith("_rlnExtReconsResult ") else ln
             for ln in lines]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("setup", "os_error"),
    [
        ("missing_folder", "No such file or directory"),
        ("parent_is_file", "Not a directory"),
        ("result_is_folder", "Is a directory"),
    ],
)
def test_no_map_can_be_written_is_one_line(project, setup, os_error):
    if setup == "missing_folder":
        _set_result(project, H1, "NoSuchDir/sub/out.mrc")
        target = "NoSuchDir/sub/out.mrc"
    elif setup == "parent_is_file":
        (project / "afile").write_text("x")
        _set_result(project, H1, "afile/out.mrc")
        target = "afile/out.mrc"
    else:
        _result_path(project, H1).mkdir()
        target = str(_result_path(project, H1).relative_to(project))
    proc = _run(project, H1, "--regularizer", "none", "--when", "always")
    line = _one_error_line(proc, target)
    assert os_error in line
    _no_leftovers(project)


def test_read_only_job_folder_is_one_line(project):
    folder = project / JOB
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr cannot make a read-only folder")
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i not supported here: {made.stderr.decode().strip()}")
    else:
        folder.chmod(0o555)
    try:
        proc = _run(project, H1, "--regularizer", "none")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)
    line = _one_error_line(proc, H1.name.replace(".star", ".mrc"))
    assert "ermi" in line  # "Permission denied" / "Operation not permitted"
    _no_leftovers(project)


def test_regularizer_none_never_rewrites_the_map(project):
    """The audit's E01: a disk with room for one map. 'none' must not write a second time."""
    proc = _run(project, H1, "--regularizer", "none", "--when", "always")
    assert proc.returncode == 0
    path = _result_path(project, H1)
    first = os.stat(path)
    (record,) = _log(project)
    assert record["applied"] is True and record.get("unchanged") is True
    assert "write_regularized" not in record["seconds"]
    # the written map is the only write: its inode is the one the plain write made
    proc = _run(project, H1, "--regularizer", "none", "--when", "always")
    assert proc.returncode == 0 and os.stat(path).st_ino != first.st_ino  # a new call: new file
    assert _log(project)[-1].get("unchanged") is True


def test_pair_folder_that_is_a_file_falls_back(project):
    (project / JOB / ".cryoprior_pair").write_text("not a folder")
    opts = ("--regularizer", f"{REG}:JointAverage", "--when", "always", "--pair-timeout", "5")
    p1, p2 = _start(project, H1, *opts), _start(project, H2, *opts)
    assert _finish(p1, 60) == 0 and _finish(p2, 60) == 0
    assert _is_reference(_result(project, H1), "half1")
    assert _is_reference(_result(project, H2), "half2")
    reasons = [r["fallback"] for r in _log(project)]
    assert len(reasons) == 2 and all("pair folder" in r for r in reasons), reasons


def test_log_that_is_a_fifo_never_blocks(project):
    os.mkfifo(project / JOB / "cryoprior_extrec.log")
    start = time.monotonic()
    proc = _run(project, H1, "--regularizer", "none", timeout=30)
    assert proc.returncode == 0 and time.monotonic() - start < 20
    assert "could not append" in proc.stderr
    assert _is_reference(_result(project, H1), "half1")


def test_write_fsc_star_failures_after_the_map_exit_0(project):
    text = (project / H1).read_text()
    (project / H1).write_text(
        "\n".join(ln for ln in text.splitlines() if "_rlnExtReconsResultStarfile" not in ln)
    )
    proc = _run(project, H1, "--regularizer", f"{REG}:Scale", "--when", "always",
                "--write-fsc-star")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = _log(project)[-1]
    assert record["applied"] and "rlnExtReconsResultStarfile" in record["fsc_star_error"]
    # the output STAR path is a folder
    out_star = project / str(read_external_reconstruct_job(project / H2).result_star_path)
    out_star.mkdir()
    proc = _run(project, H2, "--regularizer", f"{REG}:Scale", "--when", "always",
                "--write-fsc-star")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "Traceback" not in proc.stderr and "Is a directory" in _log(project)[-1]["fsc_star_error"]
    )
    _no_leftovers(project)


# --- 2. regularizers run isolated ----------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "said"),
    [
        ("SysExit", "SystemExit: 3"),
        ("KbdInt", "KeyboardInterrupt"),
        ("OsExit", "exited with status 7"),
        ("Segfault", "killed by SIGSEGV"),
        ("Killed", "killed by SIGKILL (out of memory?)"),
        ("MultiLineError", "RuntimeError: first line second line third line"),
    ],
)
def test_regularizer_crash_ends_in_the_plain_map(project, factory, said):
    proc = _run(project, H1, "--regularizer", f"{REG}:{factory}", "--when", "always")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _is_reference(_result(project, H1), "half1")
    (record,) = _log(project)
    assert record["applied"] is False and said in record["fallback"]
    warnings = [ln for ln in proc.stderr.splitlines() if "plain map kept" in ln]
    assert len(warnings) == 1 and said in warnings[0]
    _no_leftovers(project)


def test_hang_in_native_code_is_killed_by_the_timeout(project):
    start = time.monotonic()
    proc = _run(project, H1, "--regularizer", f"{REG}:NativeHang", "--when", "always",
                "--timeout", "2")  # fmt: skip
    assert proc.returncode == 0 and time.monotonic() - start < 20
    assert _is_reference(_result(project, H1), "half1")
    assert "timeout" in _log(project)[0]["fallback"]
    _no_leftovers(project)


def test_verdict_matches_the_map_at_the_timeout_boundary(project):
    """The audit's A20: a regularizer ending within ~±0.1 s of --timeout. Whatever wins,
    the log's verdict is the map on disk and nothing temporary is left."""
    for seconds in (0.9, 0.98, 1.02, 1.1):
        proc = _run(project, H1, "--regularizer", f"{REG}:Sleep", "--option",
                    f"seconds={seconds}", "--when", "always", "--timeout", "1")  # fmt: skip
        assert proc.returncode == 0
        record = _log(project)[-1]
        volume = _result(project, H1)
        if record["applied"]:
            np.testing.assert_allclose(volume, 2 * tiny_reference("half1"), rtol=1e-6)
        else:
            assert "timeout" in record["fallback"] and _is_reference(volume, "half1")
        _no_leftovers(project)


# --- 3. pairing cannot mix attempts ----------------------------------------------------------

JOINT = ("--regularizer", f"{REG}:JointScale", "--when", "always")


def _pair_files(project: Path) -> list[str]:
    folder = project / JOB / ".cryoprior_pair"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_pair_completes_and_leaves_nothing(project):
    p1 = _start(project, H1, *JOINT, "--pair-timeout", "30")
    p2 = _start(project, H2, *JOINT, "--pair-timeout", "30")
    assert _finish(p1, 60) == 0 and _finish(p2, 60) == 0
    np.testing.assert_allclose(_result(project, H1), 2 * tiny_reference("half1"), rtol=1e-6)
    np.testing.assert_allclose(_result(project, H2), 3 * tiny_reference("half2"), rtol=1e-6)
    assert all(r["applied"] for r in _log(project))
    assert _pair_files(project) == []


def test_killed_partner_is_never_used(project):
    """P13: half 2 killed while waiting leaves its marker; a lone half 1 must not pair with it."""
    p2 = _start(project, H2, *JOINT, "--pair-timeout", "60")
    deadline = time.monotonic() + 30
    while "half2.json" not in _pair_files(project) and time.monotonic() < deadline:
        time.sleep(0.05)
    p2.kill()
    _finish(p2)
    assert "half2.json" in _pair_files(project)  # the dead attempt's marker is there
    proc = _run(project, H1, *JOINT, "--pair-timeout", "2")
    assert proc.returncode == 0
    assert _is_reference(_result(project, H1), "half1")
    assert "did not arrive" in _log(project)[-1]["fallback"]
    assert _pair_files(project) == ["gave_up.json"]  # the dead attempt's files were removed


def test_result_for_a_killed_half_2_is_not_handed_to_the_next(project):
    """P12: attempt 1's half 2 is killed while half 1 computes; attempt 2 (other options)
    must get a map from its own computation, never attempt 1's result."""
    slow = ("--regularizer", f"{REG}:JointScale", "--when", "always", "--option", "seconds=3")
    p1 = _start(project, H1, *slow, "--pair-timeout", "30")
    p2 = _start(project, H2, *slow, "--pair-timeout", "30")
    deadline = time.monotonic() + 30
    while not any(n.endswith(".claim") for n in _pair_files(project)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p2.kill()
    _finish(p2)
    assert _finish(p1, 60) == 0
    other = ("--option", "factor1=5", "--option", "factor2=7", "--pair-timeout", "30")
    q1, q2 = _start(project, H1, *JOINT, *other), _start(project, H2, *JOINT, *other)
    assert _finish(q1, 60) == 0 and _finish(q2, 60) == 0
    np.testing.assert_allclose(_result(project, H1), 5 * tiny_reference("half1"), rtol=1e-6)
    np.testing.assert_allclose(_result(project, H2), 7 * tiny_reference("half2"), rtol=1e-6)
    assert _pair_files(project) == []


def test_gave_up_marker_cannot_poison_later_calls(project):
    """P03: a lone half 1 gives up; then both halves run (same files): they pair at once."""
    assert _run(project, H1, *JOINT, "--pair-timeout", "1").returncode == 0
    assert _pair_files(project) == ["gave_up.json"]
    start = time.monotonic()
    p1 = _start(project, H1, *JOINT, "--pair-timeout", "30")
    p2 = _start(project, H2, *JOINT, "--pair-timeout", "30")
    assert _finish(p1, 60) == 0 and _finish(p2, 60) == 0
    assert time.monotonic() - start < 25
    assert all(r["applied"] for r in _log(project)[-2:]), _log(project)[-2:]
    assert _pair_files(project) == []


def test_sequential_halves_take_the_leaders_verdict(project):
    """--sequential_halves_recons: half 1 gives up, RELION then writes half 2's files and
    calls half 2, which must return at once and consume the marker."""
    assert _run(project, H1, *JOINT, "--pair-timeout", "1").returncode == 0
    for p in (project / JOB).glob("run_it006_half2_class001_external_reconstruct*"):
        p.touch()  # RELION writes half 2's job files after half 1's call returned
    start = time.monotonic()
    proc = _run(project, H2, *JOINT, "--pair-timeout", "30")
    assert proc.returncode == 0 and time.monotonic() - start < 15
    assert "half 1 fell back" in _log(project)[-1]["fallback"]
    assert _is_reference(_result(project, H2), "half2")
    assert _pair_files(project) == []


def test_halves_with_different_options_never_pair(project):
    p1 = _start(project, H1, *JOINT, "--option", "factor1=5", "--pair-timeout", "2")
    p2 = _start(project, H2, *JOINT, "--pair-timeout", "2")
    assert _finish(p1, 60) == 0 and _finish(p2, 60) == 0
    assert not any(r["applied"] for r in _log(project))
    assert _is_reference(_result(project, H1), "half1")
    assert _is_reference(_result(project, H2), "half2")


def test_changed_partner_files_are_not_accepted(project):
    """A partner whose job files changed after it wrote its marker (a newer RELION write)
    is not this iteration's data any more."""
    p2 = _start(project, H2, *JOINT, "--pair-timeout", "60")
    deadline = time.monotonic() + 30
    while "half2.json" not in _pair_files(project) and time.monotonic() < deadline:
        time.sleep(0.05)
    (project / H2).touch()
    proc = _run(project, H1, *JOINT, "--pair-timeout", "2")
    p2.kill()
    _finish(p2)
    assert proc.returncode == 0 and "did not arrive" in _log(project)[-1]["fallback"]


def test_joint_crash_falls_back_in_both(project):
    opts = ("--regularizer", f"{REG}:JointSysExit", "--when", "always", "--pair-timeout", "30")
    p1, p2 = _start(project, H1, *opts), _start(project, H2, *opts)
    assert _finish(p1, 60) == 0 and _finish(p2, 60) == 0
    assert _is_reference(_result(project, H1), "half1")
    assert _is_reference(_result(project, H2), "half2")
    reasons = [r["fallback"] for r in _log(project)]
    assert all("SystemExit: 4" in r for r in reasons), reasons
    assert _pair_files(project) == []
    _no_leftovers(project)


# --- 4. inputs as strict as relion_external_reconstruct ---------------------------------


def _edit_star(project: Path, edit) -> None:
    path = project / H1
    path.write_text(edit(path.read_text()))


def _drop_line(prefix: str):
    def edit(text: str) -> str:
        lines = text.splitlines()
        i = next(k for k, ln in enumerate(lines) if ln.strip().startswith(prefix))
        return "\n".join(lines[:i] + lines[i + 1 :]) + "\n"

    return edit


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (_drop_line("4 "), "must have 9 rows"),
        (_drop_line("0 "), "must have 9 rows"),
        (_drop_line("8 "), "must have 9 rows"),
        (lambda t: t.rstrip() + "\n 9 1e-06 0.5\n", "must have 9 rows"),
        (lambda t: t[:1300], "data_external_reconstruct_tau2"),
        (lambda t: t[: t.index("data_external_reconstruct_tau2")], "no data_external"),
        (lambda t: t.replace("1.135045e-04", "nan"), "NaN"),
        (lambda t: t.replace("_rlnCurrentImageSize", "_rlnPixelSize abc\n_rlnCurrentImageSize"),
         "rlnPixelSize"),
        (lambda t: t.replace("_rlnCurrentImageSize", "_rlnPixelSize -4.4\n_rlnCurrentImageSize"),
         "rlnPixelSize must be a positive length"),
    ],
    ids=["del_row4", "del_row0", "del_last", "extra_row", "truncated", "no_tau2", "nan_tau2",
         "pixel_text", "pixel_negative"],
)  # fmt: skip
def test_malformed_job_star_is_refused(project, edit, said):
    target = _result_path(project, H1)
    _edit_star(project, edit)
    proc = _run(project, H1, "--regularizer", "none")
    line = _one_error_line(proc, H1.name)
    assert said in line
    assert not target.exists()
    _no_leftovers(project)


def test_no_tau2_block_with_no_map_is_reconstructed(project):
    text = (project / H1).read_text()
    (project / H1).write_text(text[: text.index("data_external_reconstruct_tau2")])
    proc = _run(project, H1, "--regularizer", "none", "--no-map")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_array_that_is_not_a_file_is_named(project, kind):
    job = read_external_reconstruct_job(project / H1)
    path = project / job.weight_path
    path.unlink()
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    proc = _run(project, H1, "--regularizer", "none", timeout=30)
    line = _one_error_line(proc, path.name)
    assert ("folder" if kind == "folder" else "not a regular file") in line


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [("--timeout", "-5"), ("--timeout", "nan"), ("--pair-timeout", "-1"),
     ("--pair-timeout", "inf"), ("--when", "sometimes"), ("--option", "novalue")],
)  # fmt: skip
def test_bad_options_are_refused_up_front(project, options):
    proc = _run(project, H1, *options)
    _one_error_line(proc, "", code=2)
    assert not _result_path(project, H1).exists()


def test_config_with_wrong_types_is_one_line(project):
    config = project / "typed.toml"
    config.write_text('timeout = "soon"\npair-timeout = [1, 2]\n')
    proc = _run(project, H1, "--config", str(config))
    line = _one_error_line(proc, "typed.toml", code=2)
    assert "timeout" in line


def test_command_line_wins_over_the_config_file(project):
    """Precedence command line > --config > default, checked through the log's record."""
    config = project / "c.toml"
    config.write_text(
        f'regularizer = "{REG}:Scale"\nwhen = "always"\ntimeout = 0.001\n[option]\nfactor = 5\n'
    )
    # the file alone: Scale x5 with a 1 ms timeout -> falls back on the timeout
    proc = _run(project, H1, "--config", str(config))
    assert proc.returncode == 0 and "timeout" in _log(project)[-1]["fallback"]
    # the command line's --timeout beats the file's; its --option beats the file's option
    proc = _run(project, H1, "--config", str(config), "--timeout", "60", "--option", "factor=3")
    assert proc.returncode == 0 and _log(project)[-1]["applied"] is True
    np.testing.assert_allclose(_result(project, H1), 3 * tiny_reference("half1"), rtol=1e-6)
    # an explicit --regularizer none beats the file's regularizer
    proc = _run(project, H1, "--config", str(config), "--regularizer", "none")
    assert proc.returncode == 0 and _log(project)[-1]["regularizer"] == "none"
    # an explicit --when never beats the file's "always"
    proc = _run(project, H1, "--config", str(config), "--when", "never", "--timeout", "60")
    assert _log(project)[-1]["reason"] == "schedule never"


# --- disk full (ENOSPC), in-process: a tmpfs cannot be mounted in CI ------------------------


def _full_disk_after(monkeypatch, n_writes_allowed: int) -> list[Path]:
    """Let ``n_writes_allowed`` map writes through, then fail as a full disk does."""
    import errno

    import cryoprior.extrec.protocol as protocol

    real = protocol.write_map_atomic
    calls: list[Path] = []

    def write(path, volume, **kwargs):
        calls.append(Path(path))
        if len(calls) > n_writes_allowed:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, volume, **kwargs)

    monkeypatch.setattr(protocol, "write_map_atomic", write)
    return calls


def _invoke(project: Path, monkeypatch, *args: str):
    from typer.testing import CliRunner

    from cryoprior.cli.extrec import app

    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", hook_env()["PYTHONPATH"])
    return CliRunner().invoke(app, list(args))


def test_full_disk_before_the_plain_map_is_one_line(project, monkeypatch):
    _full_disk_after(monkeypatch, 0)
    result = _invoke(project, monkeypatch, "--regularizer", "none", str(H1))
    assert result.exit_code == 1 and result.exception is not None
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0]
    assert H1.name.replace(".star", ".mrc") in lines[0]


def test_full_disk_for_the_regularized_map_keeps_the_plain_one(project, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("regularizers_for_tests", None)
    calls = _full_disk_after(monkeypatch, 1)
    result = _invoke(
        project, monkeypatch, "--regularizer", f"{REG}:Scale", "--when", "always", str(H1)
    )
    assert result.exit_code == 0, result.stderr
    assert len(calls) == 2  # the plain map, then the failed regularized one: no third write
    assert _is_reference(_result(project, H1), "half1")
    record = _log(project)[-1]
    assert record["applied"] is False and "No space left on device" in record["fallback"]


def test_committed_job_matches_its_checksums():
    """tests/data/relion_job_tiny/README.md lists the sha256 of every committed file."""
    import hashlib
    import re

    from jobfiles import TINY_JOB

    listed = dict(
        (name, digest)
        for digest, name in re.findall(r"^([0-9a-f]{64})  \./(\S+)$",
                                       (TINY_JOB / "README.md").read_text(), re.M)
    )  # fmt: skip
    files = sorted(
        str(p.relative_to(TINY_JOB)) for p in TINY_JOB.rglob("*") if p.is_file()
        and p.name != "README.md"
    )  # fmt: skip
    assert sorted(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((TINY_JOB / name).read_bytes()).hexdigest() == digest, name


def test_late_half_2_leaves_no_marker_behind(project):
    """Concurrent halves where half 2 comes after half 1 gave up (its files are older than
    the marker, so it waits its own --pair-timeout): it falls back and removes the marker."""
    assert _run(project, H1, *JOINT, "--pair-timeout", "1").returncode == 0
    proc = _run(project, H2, *JOINT, "--pair-timeout", "1")
    assert proc.returncode == 0 and "did not claim" in _log(project)[-1]["fallback"]
    assert _is_reference(_result(project, H2), "half2")
    assert _pair_files(project) == []


def test_guard_method_is_chosen_by_option_and_logged(project):
    """--guard-method trailing (guard v1) and bounded (guard v2, the default; here without the
    other half's support) reach the guard and the log; a wrong name is a usage error of one
    line."""
    for method in ("trailing", "bounded"):
        proc = _run(
            project, H1, "--regularizer", f"{REG}:Scale", "--when", "always", "--option",
            "factor=2", "--guard", "--guard-method", method, "--no-guard-cross-half",
        )  # fmt: skip
        assert proc.returncode == 0
        record = _log(project)[-1]
        assert record["applied"] is True and record["guard"]["method"] == method
        assert "support_end_shell" not in record["guard"]  # no other half's support asked for
    proc = _run(project, H1, "--guard-method", "nope")
    assert "nope" in _one_error_line(proc, "guard method", code=2)
