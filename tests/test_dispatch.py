"""Runs through submitit: cached runs are not submitted, datasets are made once before the jobs,
failed jobs are reported without stopping the others, and the CLI path reaches it.

The jobs run a stand-in for ``run_mode`` (a real refinement per job would take minutes): it
records its call and writes a result as ``run_mode`` does, so the cache logic is the real one.
submitit's "local" cluster runs each job as a subprocess through its own job scripts and
pickling, as on Slurm.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryoprior.refine.cases import ExperimentCase, RunResult, dataset_key
from cryoprior.refine.dispatch import ClusterSettings, run_with_submitit
from cryoprior.refine.run import RESULT_VERSION, run_key
from cryoprior.simulate.config import SimulationConfig

pytest.importorskip("submitit")


def fake_run(case: ExperimentCase, mode: str, root: Path) -> RunResult:
    """Stand-in for run_mode: needs the dataset to exist already, fails for mode 'sidesplitter'."""
    root = Path(root)
    assert (root / "datasets" / dataset_key(case.simulation) / "dataset.json").is_file()
    calls = root / "calls.txt"
    with calls.open("a") as fh:
        fh.write(f"{case.name}/{mode}\n")
    if mode == "sidesplitter":
        raise RuntimeError("relion_refine_mpi exit 1")
    run_dir = root / "runs" / run_key(case, mode)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "version": RESULT_VERSION,
        "mode": mode,
        "validation_window_voxels": case.validation_window_voxels,
        "refine": {"final_resolution_angstrom": 12.0},
    }
    (run_dir / "result.json").write_text(json.dumps(data))
    return RunResult(case.name, mode, run_dir, data, cached=False)


def _case() -> ExperimentCase:
    sim = SimulationConfig(
        box_size=16, voxel_size_angstrom=14.0, n_particles=6, particles_per_stack=6, seed=3
    )
    return ExperimentCase("tiny", "tiny", "isotropic", sim, modes=("relion", "sidesplitter"))


def test_jobs_skip_cached_runs_and_report_failures(tmp_path):
    case = _case()
    settings = ClusterSettings(cluster="local", timeout_minutes=5)
    # the job process cannot import this test module: ship fake_run by value
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    tasks = [(case, "relion"), (case, "sidesplitter")]
    first = {o.mode: o for o in run_with_submitit(tasks, tmp_path, settings, run=fake_run)}
    assert first["relion"].result is not None and first["relion"].error is None
    assert first["sidesplitter"].result is None and "exit 1" in first["sidesplitter"].error
    assert (tmp_path / "submitit").is_dir()
    # again: the finished run comes from the cache, only the failed one is submitted again
    again = {o.mode: o for o in run_with_submitit(tasks, tmp_path, settings, run=fake_run)}
    assert again["relion"].result.cached
    calls = (tmp_path / "calls.txt").read_text().split()
    assert calls.count("tiny/relion") == 1 and calls.count("tiny/sidesplitter") == 2


def test_cli_rejects_submitit_options_without_submitit_executor(tmp_path):
    from typer.testing import CliRunner

    from cryoprior.cli.app import app

    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "mini", "--root", str(tmp_path), "--executor", "dask"]
    )
    assert result.exit_code != 0
    assert "executor" in result.output
