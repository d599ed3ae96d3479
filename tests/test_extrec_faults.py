"""cryoprior-extrec never hangs or crashes RELION because of a regularizer.

Each test runs the installed ``cryoprior-extrec`` as RELION does (a subprocess, cwd = the
project folder, the job STAR last) on copies of real job files from the session's stock
RELION run, with regularizers that fail on purpose (tests/regularizers_for_tests.py).
The plain map they must fall back to is the stock ``relion_external_reconstruct`` output
for the same files.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import extrec_executable, hook_env
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion_extrec import read_external_reconstruct_job
from jobfiles import copy_job

pytestmark = pytest.mark.relion

REG = "regularizers_for_tests"


def _extrec(
    project: Path, star: Path, *options: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    cmd = [extrec_executable(), *options, str(star)]
    return subprocess.run(
        cmd, cwd=project, env=hook_env(), capture_output=True, text=True, timeout=timeout
    )


def _finish(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for a started hook, closing its pipes (unclosed pipes are errors under pytest's
    warning filter); its exit status."""
    proc.communicate(timeout=timeout)
    return proc.returncode


def _start(project: Path, star: Path, *options: str) -> subprocess.Popen:
    cmd = [extrec_executable(), *options, str(star)]
    return subprocess.Popen(
        cmd, cwd=project, env=hook_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _log(project: Path, star: Path) -> list[dict]:
    log = project / star.parent / "cryoprior_extrec.log"
    return [json.loads(line) for line in log.read_text().splitlines()]


def _stock_stars(stock_run) -> tuple[Path, list[Path]]:
    workdir, _ = stock_run
    return workdir, sorted((workdir / "Refine3D/stock").glob("*_external_reconstruct.star"))


@pytest.fixture
def half_job(stock_run, tmp_path):
    """A half-1 call of a late iteration, copied; returns (project, star, stock output)."""
    workdir, stars = _stock_stars(stock_run)
    star = [s for s in stars if "_half1" in s.name][-1]
    rel = copy_job(workdir, star, tmp_path)
    stock = read_map(workdir / read_external_reconstruct_job(star).result_path)
    return tmp_path, rel, stock


@pytest.fixture
def pair_jobs(stock_run, tmp_path):
    """Both halves of one iteration, copied; returns (project, star1, star2, stock1, stock2)."""
    workdir, stars = _stock_stars(stock_run)
    star1 = [s for s in stars if "_half1" in s.name][-1]
    star2 = star1.with_name(star1.name.replace("_half1_", "_half2_"))
    rel1, rel2 = copy_job(workdir, star1, tmp_path), copy_job(workdir, star2, tmp_path)
    stock = [
        read_map(workdir / read_external_reconstruct_job(s).result_path) for s in (star1, star2)
    ]
    return tmp_path, rel1, rel2, stock[0], stock[1]


def _result(project: Path, star: Path) -> np.ndarray:
    return read_map(project / read_external_reconstruct_job(project / star).result_path)


def _is_plain(volume: np.ndarray, stock: np.ndarray) -> bool:
    return float(np.abs(volume - stock).max()) <= 1e-5 * float(np.abs(stock).max())


def test_valid_regularizer_is_applied(half_job):
    project, star, stock = half_job
    proc = _extrec(
        project, star, "--regularizer", f"{REG}:Scale", "--option", "factor=3", "--when", "always"
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(
        _result(project, star), 3 * stock, rtol=1e-5, atol=1e-6 * np.abs(stock).max()
    )
    (record,) = _log(project, star)
    assert record["applied"] is True and record["fallback"] is None
    assert record["iteration"] >= 1 and record["half"] == 1
    assert {"reconstruct", "regularize", "total"} <= set(record["seconds"])


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("Raise", "RuntimeError: injected failure"),
        ("NaNs", "NaN/Inf"),
        ("WrongShape", "wrong shape"),
        ("BadFactory", "did not give a regularizer"),
        ("NoSuchThing", "setup failed"),
    ],
)
def test_failing_regularizer_falls_back_to_plain(half_job, factory, expected):
    project, star, stock = half_job
    proc = _extrec(project, star, "--regularizer", f"{REG}:{factory}", "--when", "always")
    assert proc.returncode == 0, proc.stderr
    assert _is_plain(_result(project, star), stock)
    (record,) = _log(project, star)
    assert record["applied"] is False
    assert expected in record["fallback"]
    assert "plain map kept" in proc.stderr  # said on stderr (RELION's run.err) too


def test_unknown_builtin_name_falls_back(half_job):
    project, star, stock = half_job
    proc = _extrec(project, star, "--regularizer", "no-such-regularizer", "--when", "always")
    assert proc.returncode == 0
    assert _is_plain(_result(project, star), stock)
    assert "unknown regularizer" in _log(project, star)[0]["fallback"]


def test_hung_regularizer_is_cut_off_by_the_timeout(half_job):
    project, star, stock = half_job
    start = time.monotonic()
    proc = _extrec(
        project,
        star,
        "--regularizer",
        f"{REG}:Sleep",
        "--option",
        "seconds=60",
        "--when",
        "always",
        "--timeout",
        "2",
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0
    assert elapsed < 20
    assert _is_plain(_result(project, star), stock)
    assert "timeout" in _log(project, star)[0]["fallback"]


def test_schedule_never_keeps_plain(half_job):
    project, star, stock = half_job
    proc = _extrec(project, star, "--regularizer", f"{REG}:Scale", "--when", "never")
    assert proc.returncode == 0
    assert _is_plain(_result(project, star), stock)
    record = _log(project, star)[0]
    assert (
        record["applied"] is False
        and record["fallback"] is None
        and record["reason"] == "schedule never"
    )


def test_final_joined_call_is_plain_unless_asked(stock_run, tmp_path):
    workdir, stars = _stock_stars(stock_run)
    final = next(s for s in stars if "_half" not in s.name)
    rel = copy_job(workdir, final, tmp_path)
    stock = read_map(workdir / read_external_reconstruct_job(final).result_path)
    proc = _extrec(tmp_path, rel, "--regularizer", f"{REG}:Scale", "--when", "always")
    assert proc.returncode == 0
    assert _is_plain(_result(tmp_path, rel), stock)
    assert "final joined call" in _log(tmp_path, rel)[0]["reason"]
    proc = _extrec(
        tmp_path, rel, "--regularizer", f"{REG}:Scale", "--when", "always", "--regularize-final"
    )
    assert proc.returncode == 0
    np.testing.assert_allclose(
        _result(tmp_path, rel), 2 * stock, rtol=1e-5, atol=1e-6 * np.abs(stock).max()
    )


# --- joint regularizers: the rendezvous -------------------------------------------------


def test_joint_regularizer_meets_both_halves(pair_jobs):
    project, star1, star2, stock1, stock2 = pair_jobs
    opts = ("--regularizer", f"{REG}:JointAverage", "--when", "always", "--pair-timeout", "60")
    p1, p2 = _start(project, star1, *opts), _start(project, star2, *opts)
    assert _finish(p1, 120) == 0 and _finish(p2, 120) == 0
    mean = (stock1.astype(np.float64) + stock2) / 2
    atol = 1e-5 * np.abs(mean).max()
    np.testing.assert_allclose(_result(project, star1), mean, atol=atol)
    np.testing.assert_allclose(_result(project, star2), mean + 1e-3 * np.abs(mean).max(), atol=atol)
    records = _log(project, star1)
    assert len(records) == 2 and all(r["applied"] for r in records)
    # the meeting place is cleaned up
    leftovers = list((project / star1.parent / ".cryoprior_pair").rglob("*.mrc"))
    assert leftovers == []


def test_partner_never_comes_times_out(pair_jobs):
    """Half 2's process was killed (or never started): half 1 gives up after --pair-timeout."""
    project, star1, _, stock1, _ = pair_jobs
    start = time.monotonic()
    proc = _extrec(
        project,
        star1,
        "--regularizer",
        f"{REG}:JointAverage",
        "--when",
        "always",
        "--pair-timeout",
        "2",
    )
    assert proc.returncode == 0 and time.monotonic() - start < 30
    assert _is_plain(_result(project, star1), stock1)
    assert "did not arrive" in _log(project, star1)[0]["fallback"]


def test_sequential_halves_fall_back_without_deadlock(pair_jobs):
    """As RELION's --sequential_halves_recons: half 2 starts only after half 1 returned."""
    project, star1, star2, stock1, stock2 = pair_jobs
    opts = ("--regularizer", f"{REG}:JointAverage", "--when", "always", "--pair-timeout", "2")
    start = time.monotonic()
    assert _extrec(project, star1, *opts).returncode == 0
    t_half1 = time.monotonic() - start
    job2 = read_external_reconstruct_job(project / star2)
    for rel in (star2, job2.data_real_path, job2.data_imag_path, job2.weight_path):
        (project / rel).touch()  # RELION writes half 2's files only after half 1 returned
    assert _extrec(project, star2, *opts).returncode == 0
    t_half2 = time.monotonic() - start - t_half1
    assert t_half1 < 30 and t_half2 < 10  # half 2 takes half 1's "gave up" and does not wait
    assert _is_plain(_result(project, star1), stock1) and _is_plain(_result(project, star2), stock2)
    r1, r2 = _log(project, star1)
    assert "did not arrive" in r1["fallback"] and "half 1 fell back" in r2["fallback"]


def test_leader_killed_half_2_times_out(pair_jobs):
    """Half 1 dies while regularizing: half 2 falls back after its allowance."""
    project, star1, star2, _, stock2 = pair_jobs
    opts = ("--regularizer", f"{REG}:JointAverage", "--option", "seconds=60", "--when", "always")
    p1 = _start(project, star1, *opts, "--pair-timeout", "30")
    start = time.monotonic()
    p2 = _start(project, star2, *opts, "--pair-timeout", "2", "--timeout", "2")
    time.sleep(3)
    p1.kill()
    _finish(p1, 60)
    assert _finish(p2, 60) == 0
    assert time.monotonic() - start < 30
    assert _is_plain(_result(project, star2), stock2)


def test_joint_regularizer_failure_falls_back_in_both(pair_jobs):
    project, star1, star2, stock1, stock2 = pair_jobs
    opts = ("--regularizer", f"{REG}:JointRaise", "--when", "always", "--pair-timeout", "60")
    p1, p2 = _start(project, star1, *opts), _start(project, star2, *opts)
    assert _finish(p1, 120) == 0 and _finish(p2, 120) == 0
    assert _is_plain(_result(project, star1), stock1) and _is_plain(_result(project, star2), stock2)
    reasons = sorted(r["fallback"] for r in _log(project, star1))
    assert "injected joint failure" in reasons[0] + reasons[1]


# --- no map can be made: a clear error, non-zero exit ---------------------------------


def _one_line_error(proc: subprocess.CompletedProcess, must_name: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cryoprior-extrec: error:") and must_name in lines[0]


def test_missing_star(tmp_path):
    proc = _extrec(tmp_path, Path("Refine3D/x/run_it001_half1_class001_external_reconstruct.star"))
    _one_line_error(proc, "run_it001_half1_class001_external_reconstruct.star")
    assert "does not exist" in proc.stderr


def test_garbage_star(half_job):
    project, star, _ = half_job
    (project / star).write_text("data_\nthis is not a STAR file\x00\x01 loop_ _rln\n")
    proc = _extrec(project, star)
    _one_line_error(proc, star.name)


def test_missing_label(half_job):
    project, star, _ = half_job
    text = (project / star).read_text()
    (project / star).write_text(
        "\n".join(line for line in text.splitlines() if "rlnOriginalImageSize" not in line)
    )
    proc = _extrec(project, star)
    _one_line_error(proc, star.name)
    assert "rlnOriginalImageSize" in proc.stderr


def test_missing_array(half_job):
    project, star, _ = half_job
    job = read_external_reconstruct_job(project / star)
    (project / job.weight_path).unlink()
    proc = _extrec(project, star)
    _one_line_error(proc, job.weight_path.name)


def test_wrong_shape_array(half_job):
    project, star, _ = half_job
    job = read_external_reconstruct_job(project / star)
    write_map_atomic(project / job.data_real_path, np.zeros((16, 16, 9), np.float32))
    proc = _extrec(project, star)
    _one_line_error(proc, job.data_real_path.name)
    assert "shape" in proc.stderr


def test_truncated_mrc(half_job):
    project, star, _ = half_job
    job = read_external_reconstruct_job(project / star)
    path = project / job.weight_path
    path.write_bytes(path.read_bytes()[:2000])
    proc = _extrec(project, star)
    _one_line_error(proc, job.weight_path.name)


def test_nan_in_weights(half_job):
    project, star, _ = half_job
    job = read_external_reconstruct_job(project / star)
    weight = read_map(project / job.weight_path)
    weight[0, 0, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile says so when writing it
        write_map_atomic(project / job.weight_path, weight)
    proc = _extrec(project, star)
    _one_line_error(proc, job.weight_path.name)


def test_bad_schedule_option_is_a_usage_error(half_job):
    project, star, _ = half_job
    proc = _extrec(project, star, "--when", "sometimes")
    assert proc.returncode == 2 and "unknown schedule" in proc.stderr
