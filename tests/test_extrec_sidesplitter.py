"""``cryoprior-extrec --regularizer sidesplitter``: the rendezvous of the two concurrent half
calls, the mask and FSC options, fallbacks, and a real RELION refinement.

Job files are copies of a real RELION 3.1.3 run made in this session (conftest ``stock_run``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import extrec_executable, hook_env
from cryoprior.io.mrc import read_map
from cryoprior.io.relion_extrec import read_external_reconstruct_job
from cryoprior.io.star import read_star
from cryoprior.regularizers.sidesplitter import particle_sphere_mask, sidesplitter
from jobfiles import copy_iteration_files, copy_job

pytestmark = pytest.mark.relion

ROOT = "Refine3D/stock/run"


def _finish(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for a started hook, closing its pipes (unclosed pipes are errors under pytest's
    warning filter); its exit status."""
    proc.communicate(timeout=timeout)
    return proc.returncode


def _start(project: Path, star: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [extrec_executable(), *options, str(star)],
        cwd=project, env=hook_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def pair(stock_run, tmp_path):
    """Both halves of the last half-set iteration plus the N-1 iteration files, copied."""
    workdir, result = stock_run
    it = result.iterations
    stars = [
        workdir / f"{ROOT}_it{it:03d}_half{h}_class001_external_reconstruct.star" for h in (1, 2)
    ]
    rels = [copy_job(workdir, s, tmp_path) for s in stars]
    copy_iteration_files(workdir, ROOT, it - 1, tmp_path)
    plains = [
        read_map(workdir / read_external_reconstruct_job(s).result_path, dtype=np.float64)
        for s in stars
    ]
    return tmp_path, rels, plains


def _result(project: Path, star: Path) -> np.ndarray:
    return read_map(
        project / read_external_reconstruct_job(project / star).result_path, dtype=np.float64
    )


def _log(project: Path) -> list[dict]:
    path = project / "Refine3D/stock/cryoprior_extrec.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _both(project, rels, *options, timeout=300):
    procs = [_start(project, rel, *options) for rel in rels]
    for p in procs:
        assert _finish(p, timeout) == 0


def test_both_halves_filtered_together(pair):
    project, rels, plains = pair
    _both(project, rels, "--regularizer", "sidesplitter", "--when", "always")
    # the particle diameter (100 A) and pixel size (4 A) come from RELION's iteration files
    mask = particle_sphere_mask(32, radius_voxels=12.5)
    expected = sidesplitter(plains[0], plains[1], mask=mask, mode="rotfl")
    for rel, ref in zip(rels, (expected.half_map_1, expected.half_map_2), strict=True):
        out = _result(project, rel)
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-3
    records = _log(project)
    assert len(records) == 2 and all(r["applied"] and r["fallback"] is None for r in records)
    assert not (
        project / read_external_reconstruct_job(project / rels[0]).result_star_path
    ).exists()


def test_default_mode_and_fsc_star_option(pair):
    project, rels, _ = pair
    _both(
        project,
        rels,
        "--regularizer",
        "sidesplitter",
        "--option",
        "mode=default",
        "--when",
        "always",
        "--write-fsc-star",
    )
    job = read_external_reconstruct_job(project / rels[0])
    table = next(iter(read_star(project / job.result_star_path).values()))
    fsc = np.clip(job.gold_standard_fsc, 0.0, None)  # negative FSC would give NaN: clipped at 0
    expected = (np.sqrt(2 * (fsc + fsc**2)) + fsc) / (2 + fsc)
    np.testing.assert_allclose(table["rlnFourierShellCorrelation"].to_numpy(), expected, atol=1e-5)
    assert np.all(expected >= fsc - 1e-12)  # the transform only ever raises the FSC
    np.testing.assert_allclose(
        table["rlnGoldStandardFsc"].to_numpy(), job.gold_standard_fsc, atol=1e-6
    )


def test_guard_on_request(pair):
    project, rels, _ = pair
    _both(project, rels, "--regularizer", "sidesplitter", "--when", "always", "--guard")
    for record in _log(project):
        assert record["applied"] and 0.0 <= record["guard"]["power_removed_fraction"] <= 1.0
        assert record["guard"]["cutoff_resolution_angstrom"] > 8.0  # coarser than Nyquist (8 A)


def test_sequential_halves_fall_back_within_the_timeout(pair):
    project, rels, plains = pair
    opts = ("--regularizer", "sidesplitter", "--when", "always", "--pair-timeout", "2")
    start = time.monotonic()
    for rel in rels:  # as --sequential_halves_recons: one after the other
        proc = _start(project, rel, *opts)
        assert _finish(proc, 60) == 0
    assert time.monotonic() - start < 30
    for rel, plain in zip(rels, plains, strict=True):
        np.testing.assert_allclose(_result(project, rel), plain, atol=1e-5 * np.abs(plain).max())
    assert all(not r["applied"] for r in _log(project))


def test_killed_partner_falls_back(pair):
    project, rels, plains = pair
    opts = (
        "--regularizer",
        "sidesplitter",
        "--when",
        "always",
        "--pair-timeout",
        "2",
        "--timeout",
        "2",
    )
    survivor = _start(project, rels[1], *opts)  # half 1's process never comes (killed)
    start = time.monotonic()
    assert _finish(survivor, 60) == 0
    assert time.monotonic() - start < 30
    np.testing.assert_allclose(
        _result(project, rels[1]), plains[1], atol=1e-5 * np.abs(plains[1]).max()
    )


# A real relion_refine_mpi run with --regularizer sidesplitter is part of the miniature
# benchmark: tests/test_experiment_end_to_end.py.


def test_guard_cross_half_meets_the_other_half_and_ends_the_support_there(pair):
    """A per-half regularizer through guard v2 with cross-half support: the halves meet (as for
    sidesplitter), each half's map is guarded with the other half's plain map, and the result is
    the library's apply_guard on the same inputs (reference computed here)."""
    from cryoprior.regularizers.guard import GuardSettings, apply_guard

    project, rels, plains = pair
    options = ["--regularizer", "regularizers_for_tests:Scale", "--when", "always", "--guard",
               "--guard-method", "bounded", "--guard-cross-half"]  # fmt: skip
    _both(project, rels, *options)
    job = read_external_reconstruct_job(project / rels[0])
    settings = GuardSettings(method="bounded", cross_half_support=True)
    mask = particle_sphere_mask(32, radius_voxels=12.5) > 0.5  # diameter 100 A at 4 A
    ends = []
    for h, rel in enumerate(rels):
        expected, report = apply_guard(
            2.0 * plains[h], plains[h], fsc=job.gold_standard_fsc, mask=mask,
            settings=settings, other_plain=plains[1 - h],
        )  # fmt: skip
        out = _result(project, rel)
        assert np.linalg.norm(out - expected) / np.linalg.norm(expected) < 1e-5
        ends.append(report.support_end_shell)
    assert all(e is not None for e in ends)
    logged = sorted(r["guard"]["support_end_shell"] for r in _log(project))
    assert logged == sorted(ends)
    assert all(r["applied"] and r["fallback"] is None for r in _log(project))


def test_guard_cross_half_needs_guard_v2(pair):
    project, rels, _ = pair
    proc = _start(
        project, rels[0], "--regularizer", "prior", "--guard-method", "trailing",
        "--guard-cross-half",
    )  # fmt: skip
    assert _finish(proc, 60) == 2


def test_guard_cross_half_without_the_other_half_guards_this_half_alone(pair):
    """The default guard (v2, cross-half support) when the other half never comes (RELION's
    --sequential_halves_recons, a lost rank): after --pair-timeout this half goes through guard
    v2 on its own - the regularized map, not the plain one - and the log says why."""
    from cryoprior.regularizers.guard import GuardSettings, apply_guard

    project, rels, plains = pair
    proc = _start(project, rels[0], "--regularizer", "regularizers_for_tests:Scale", "--when",
                  "always", "--guard", "--pair-timeout", "1")  # fmt: skip
    assert _finish(proc, 60) == 0
    job = read_external_reconstruct_job(project / rels[0])
    mask = particle_sphere_mask(32, radius_voxels=12.5) > 0.5  # diameter 100 A at 4 A
    expected, _ = apply_guard(
        2.0 * plains[0], plains[0], fsc=job.gold_standard_fsc, mask=mask,
        settings=GuardSettings(method="bounded"),
    )  # fmt: skip
    out = _result(project, rels[0])
    assert np.linalg.norm(out - expected) / np.linalg.norm(expected) < 1e-5
    (record,) = _log(project)
    assert record["applied"] and record["fallback"] is None
    assert "did not arrive" in record["cross_half_support_missing"]
    assert record["guard"]["method"] == "bounded" and "support_end_shell" not in record["guard"]
