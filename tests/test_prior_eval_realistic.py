"""``benchmarks/prior_eval.py --relion-runs ROOT``: which runs it scores and what it writes.

A tiny benchmark root is made here in the layout of :mod:`cryoprior.refine.run` (``runs/<mode
key>/run.json``, ``result.json``, ``Refine3D/run_half{1,2}_class001_unfil.mrc``;
``datasets/<dataset key>/dataset.json``, ``true_map.mrc``): the "truth" is a few Gaussian blobs
in a 32^3 box at 2.5 A, the half-maps the truth plus independent white noise (seeded). Beside
the finished plain-RELION run lie runs the mode must not score: an unfinished one, a pure-noise
case, a folder whose name is not its case's key, and a prior-mode run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark_scripts import load_benchmark

N, VOXEL = 32, 2.5
NOISE_SD = 0.3


def _benchmark():
    return load_benchmark("prior_eval")


def _truth() -> np.ndarray:
    c = np.arange(N) - N // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    out = np.zeros((N, N, N))
    for cz, cy, cx in ((0, 0, 0), (4, -3, 2), (-3, 4, -4), (2, 5, 5)):
        out += np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.5**2))
    return out


def _write_run(root: Path, case, mode: str, *, finished: bool = True, name: str | None = None):
    from cryoprior.io.json import write_json_atomic
    from cryoprior.io.mrc import write_map_atomic
    from cryoprior.refine.cases import case_to_dict, dataset_key
    from cryoprior.refine.run import run_key

    key = name or run_key(case, mode)
    run_dir = root / "runs" / key
    rng = np.random.default_rng(len(key))
    truth = _truth()
    (run_dir / "Refine3D").mkdir(parents=True)
    for half in (1, 2):
        noisy = truth + NOISE_SD * rng.standard_normal(truth.shape)
        write_map_atomic(
            run_dir / "Refine3D" / f"run_half{half}_class001_unfil.mrc",
            noisy.astype(np.float32),
            voxel_size_angstrom=VOXEL,
        )
    write_json_atomic(run_dir / "run.json", {"case": case_to_dict(case), "mode": mode, "key": key})
    if finished:
        write_json_atomic(run_dir / "result.json", {"version": 1, "summary": {}})
    dataset_dir = root / "datasets" / dataset_key(case.simulation)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    write_map_atomic(
        dataset_dir / "true_map.mrc", truth.astype(np.float32), voxel_size_angstrom=VOXEL
    )
    if case.simulation.belt_width_angstrom > 0:
        write_map_atomic(
            dataset_dir / "true_map_protein.mrc",
            truth.astype(np.float32),
            voxel_size_angstrom=VOXEL,
        )
    write_json_atomic(dataset_dir / "dataset.json", {"key": dataset_dir.name})
    return key


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    from cryoprior.refine.cases import ExperimentCase, RefineOptions
    from cryoprior.simulate.config import SimulationConfig

    root = tmp_path_factory.mktemp("bench")
    refine = RefineOptions(particle_diameter_angstrom=60.0)
    sim = SimulationConfig(box_size=N, voxel_size_angstrom=VOXEL, seed=1)
    done = ExperimentCase("done", "t", "isotropic", sim, refine=refine)
    belted = ExperimentCase(
        "belted",
        "t",
        "membrane",
        dataclasses.replace(sim, belt_width_angstrom=10.0, seed=2),
        refine=refine,
    )
    keys = {
        "done": _write_run(root, done, "relion"),
        "belted": _write_run(root, belted, "relion"),
        "unfinished": _write_run(
            root,
            dataclasses.replace(done, simulation=dataclasses.replace(sim, seed=3)),
            "relion",
            finished=False,
        ),
        "noise": _write_run(
            root,
            dataclasses.replace(
                done, name="noise", simulation=dataclasses.replace(sim, seed=4), pure_noise=True
            ),
            "relion",
        ),
        "renamed": _write_run(root, done, "relion", name="relion-0000000000000000"),
    }
    _write_run(root, done, "prior")
    return root, keys


def test_find_relion_runs_takes_only_finished_plain_runs_with_signal(bench_root):
    root, keys = bench_root
    runs, skipped = _benchmark().find_relion_runs(root)
    assert sorted(r["key"] for r in runs) == sorted([keys["done"], keys["belted"]])
    reasons = {s["key"]: s["reason"] for s in skipped}
    assert set(reasons) == {keys["unfinished"], keys["noise"], keys["renamed"]}
    assert "not finished" in reasons[keys["unfinished"]]
    assert "pure noise" in reasons[keys["noise"]]
    assert "key differs" in reasons[keys["renamed"]]


def test_realistic_mode_writes_scores_of_every_variant(bench_root, tmp_path, monkeypatch):
    root, keys = bench_root
    module = _benchmark()
    out = tmp_path / "realistic"
    monkeypatch.setattr(
        "sys.argv",
        ["prior_eval.py", "--relion-runs", str(root), "--out", str(out), "--threads", "1"],
    )
    module.main()
    result = json.loads(out.with_suffix(".json").read_text())
    rows = {r["key"]: r for r in result["rows"]}
    assert set(rows) == {keys["done"], keys["belted"]}
    variants = {k for k, _ in module.REALISTIC_COLUMNS}
    # closed form for the input: truth t plus white noise of SD s correlates with t inside the
    # envelope as SD(t) / sqrt(SD(t)^2 + s^2) = 0.493 here; the sampling error of a correlation
    # over the envelope's ~1,800 voxels is about 0.018 (measured: 0.472), 0.05 is allowed
    from cryoprior.prior.data import model_envelope

    truth = _truth()
    inside = model_envelope(truth, voxel_size_angstrom=VOXEL) > 0.5
    expected = truth[inside].std() / np.sqrt(truth[inside].std() ** 2 + NOISE_SD**2)
    for row in rows.values():
        assert set(row["methods"]) == variants == set(row["methods_half2"])
        for methods in (row["methods"], row["methods_half2"]):
            assert abs(methods["input"]["cc_in_molecule"] - expected) < 0.05
        for m in row["methods"].values():
            assert np.isfinite(m["cc_in_molecule"]) and m["res_fsc0.5_angstrom"] > 0
    assert "methods_vs_protein_only" in rows[keys["belted"]]
    assert "methods_vs_protein_only" not in rows[keys["done"]]
    text = out.with_suffix(".md").read_text()
    assert keys["done"] in text and "belted" in text and keys["unfinished"] in text
