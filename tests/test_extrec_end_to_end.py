"""A real RELION 3.1 auto-refine calling ``cryoprior-extrec --regularizer none`` converges
exactly like the same run calling the stock ``relion_external_reconstruct``.

Both runs (conftest) use the same particles (400 noisy relion_project images of a 32^3
phantom), the same initial reference and ``--random_seed 0`` with 3 MPI ranks.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from cryoprior.extrec.schedule import (
    IterationState,
    decide,
    parse_schedule,
    read_iteration_state,
)
from cryoprior.io.mrc import read_map
from cryoprior.io.relion import read_run_out
from cryoprior.io.relion_extrec import parse_external_reconstruct_name
from jobfiles import copy_iteration_files

pytestmark = pytest.mark.relion


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_converges_like_the_stock_program(stock_run, cryoprior_run):
    _, stock = stock_run
    _, ours = cryoprior_run
    assert ours.iterations == stock.iterations
    assert ours.final_resolution_angstrom is not None
    assert ours.final_resolution_angstrom == stock.final_resolution_angstrom
    assert _corr(read_map(ours.final_map), read_map(stock.final_map)) > 0.999
    for half in (1, 2):
        a = read_map(f"{ours.output_root}_half{half}_class001_unfil.mrc")
        b = read_map(f"{stock.output_root}_half{half}_class001_unfil.mrc")
        assert _corr(a, b) > 0.999


def test_hook_called_every_iteration_and_logged(cryoprior_run):
    _workdir, result = cryoprior_run
    log = result.output_root.parent / "cryoprior_extrec.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    halves = [r for r in records if r["half"] is not None]
    finals = [r for r in records if r["half"] is None]
    iterations = sorted({r["iteration"] for r in halves})
    assert iterations == list(range(1, result.iterations + 1))
    assert all(
        sorted(r["half"] for r in halves if r["iteration"] == it) == [1, 2] for it in iterations
    )
    assert len(finals) == 1 and finals[0]["applied"] is False
    assert not any(r["fallback"] for r in records)
    for r in records:
        assert (
            r["seconds"]["reconstruct"] > 0 and r["seconds"]["total"] >= r["seconds"]["reconstruct"]
        )
    # 'none' is "applied" exactly in the iterations RELION ran local searches
    run_out = (result.output_root.parent / "run.out").read_text()
    local_flags = [m == "true" for m in re.findall(r"local searches=\s*(\w+)", run_out)]
    assert any(local_flags) and not all(local_flags)
    applied_iterations = sorted({r["iteration"] for r in halves if r["applied"]})
    assert applied_iterations, "no iteration in local searches was regularized"
    # never applied before RELION switched to local searches
    first_local = 1 + local_flags.index(True) if local_flags[0] is False else 1
    assert min(applied_iterations) >= first_local


def test_local_search_detection_from_files_lags_at_most_one(stock_run, tmp_path):
    """Without run.out, iteration N-1's files tell local searches at most one iteration late."""
    workdir, result = stock_run
    root = "Refine3D/stock/run"
    run_out = (result.output_root.parent / "run.out").read_text()
    truth = [m == "true" for m in re.findall(r"local searches=\s*(\w+)", run_out)]
    # run.out's lines are for iterations 2..last (iteration 1 uses the initial sampling)
    truth_by_iteration = {i + 2: flag for i, flag in enumerate(truth)}
    seen = {}
    for it in range(1, result.iterations + 1):
        copy_iteration_files(workdir, root, it - 1, tmp_path)
        name = parse_external_reconstruct_name(
            f"{root}_it{it:03d}_half1_class001_external_reconstruct.star"
        )
        state = read_iteration_state(name, base_dir=tmp_path)
        assert state.run_out_local_searches is None  # no run.out in the copy
        seen[it] = state.local_searches
    for it, flag in seen.items():
        if flag:
            assert truth_by_iteration.get(it, False), f"said local at iteration {it} before RELION"
    first_true = min(it for it, f in truth_by_iteration.items() if f)
    first_seen = min(it for it, f in seen.items() if f)
    assert first_true <= first_seen <= first_true + 1


def test_run_out_closes_the_lag(stock_run, tmp_path):
    _workdir, result = stock_run
    shutil.copy2(result.output_root.parent / "run.out", tmp_path / "run.out")
    assert read_run_out(tmp_path / "run.out").local_searches is True
    (tmp_path / "early.out").write_text(
        " Auto-refine: Angular step= 15 degrees; local searches= false\n"
    )
    assert read_run_out(tmp_path / "early.out").local_searches is False
    assert read_run_out(tmp_path / "missing.out").local_searches is None


def test_schedules():
    state = IterationState(iteration=5, half=1, previous_healpix_order=2, auto_local_searches_healpix_order=2,
                           current_resolution_angstrom=7.5)  # fmt: skip
    assert decide(parse_schedule("always"), state)[0]
    assert not decide(parse_schedule("never"), state)[0]
    assert decide(parse_schedule("local-searches"), state)[0]
    assert decide(parse_schedule("resolution<=8"), state)[0]
    assert not decide(parse_schedule("resolution<=7"), state)[0]
    assert decide(parse_schedule("iteration>=5"), state)[0]
    assert not decide(parse_schedule("iteration>=6"), state)[0]
    early = IterationState(
        iteration=2, previous_healpix_order=1, auto_local_searches_healpix_order=2
    )
    assert not decide(parse_schedule("local-searches"), early)[0]
    assert not decide(parse_schedule("local-searches"), IterationState())[0]  # unknown -> plain
    assert not decide(parse_schedule("resolution<=8"), IterationState())[0]
    for bad in ("sometimes", "resolution<=x", "iteration>=0", "resolution<=-1"):
        with pytest.raises(ValueError):
            parse_schedule(bad)
    assert str(parse_schedule(" Resolution <= 4.5 ")) == "resolution<=4.5"


@pytest.mark.parametrize(
    "sequential", [False, True], ids=["concurrent", "sequential_halves_recons"]
)
def test_joint_regularizer_inside_a_real_refinement(demo_dataset, tmp_path_factory, sequential):
    """A joint (two-half) regularizer in a real relion_refine_mpi run: with concurrent halves the
    two processes meet and it is applied; with --sequential_halves_recons every call falls back
    after --pair-timeout instead of deadlocking, and RELION finishes."""
    from conftest import extrec_executable, run_refinement

    pair_timeout = 3 if sequential else 60  # concurrent halves meet within a second or two
    hook = (
        f"{extrec_executable()} --regularizer regularizers_for_tests:JointAverage --when always "
        f"--pair-timeout {pair_timeout}"
    )
    name = "joint_seq" if sequential else "joint"
    workdir, result = run_refinement(
        demo_dataset,
        tmp_path_factory,
        name,
        hook,
        auto_iter_max=2,
        sequential_halves_recons=sequential,
    )
    assert result.returncode == 0, (workdir / f"Refine3D/{name}/run.err").read_text()[-2000:]
    log = result.output_root.parent / "cryoprior_extrec.log"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    halves = [r for r in records if r["half"] is not None]
    assert len(halves) >= 4
    if sequential:
        assert not any(r["applied"] for r in halves)
        assert all(
            "did not arrive" in r["fallback"] or "fell back" in r["fallback"] for r in halves
        )
        assert all(r["seconds"]["total"] < 30 for r in halves)
    else:
        assert all(r["applied"] for r in halves), [r["fallback"] for r in halves]
