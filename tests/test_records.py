"""A benchmark's records (cryoprior.refine.records): a finished run's JSON files exported from
one experiment folder and imported into a fresh one are a cached run there, judged as before
and without its maps; unfinished runs and partial files are never records; an import never
overwrites; and the report keeps a map figure drawn when the maps were there."""

from __future__ import annotations

import json
import shutil

import numpy as np

from cryoprior.io.mrc import write_map_atomic
from cryoprior.refine.cases import ExperimentCase, RefineOptions, dataset_key
from cryoprior.refine.derived import run_postprocess
from cryoprior.refine.records import export_records, import_records
from cryoprior.refine.run import cached_result, case_controls, run_key, write_manifest
from cryoprior.report.build import build_report
from cryoprior.simulate.config import SimulationConfig
from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps


def _cutoff_case() -> ExperimentCase:
    sim = SimulationConfig(box_size=16, voxel_size_angstrom=4.0, lowpass_resolution_angstrom=16.0)
    return ExperimentCase(
        "cut16", "cut-off 16 A", "cutoff", sim, refine=RefineOptions(symmetry="C1"),
        modes=("relion",), cutoff_angstrom=16.0, validation_window_voxels=8,
    )  # fmt: skip


def _finished_run(root, case, mode="relion"):
    """A run folder as run_mode leaves it (random maps validated for real) and its dataset."""
    rng = np.random.default_rng(0)
    voxel = case.simulation.voxel_size_angstrom
    truth = rng.normal(size=(16, 16, 16))
    halves = [truth + rng.normal(size=truth.shape) for _ in range(2)]
    dataset = root / "datasets" / dataset_key(case.simulation)
    dataset.mkdir(parents=True)
    write_map_atomic(dataset / "true_map.mrc", truth, voxel_size_angstrom=voxel)
    run_dir = root / "runs" / run_key(case, mode)
    job = run_dir / "Refine3D"
    job.mkdir(parents=True)
    for i, h in enumerate(halves, 1):
        write_map_atomic(job / f"run_half{i}_class001_unfil.mrc", h, voxel_size_angstrom=voxel)
    write_map_atomic(job / "run_class001.mrc", sum(halves) / 2, voxel_size_angstrom=voxel)
    report = validate_maps(
        ValidationInputs(*halves, voxel, truth_map=truth), ValidationSettings(local_window_voxels=8)
    )
    (run_dir / "validation").mkdir()
    validation = report.to_dict()  # random maps have no model: Q-scores as a model gives them
    validation["q_score"] = {"mean": 0.4, "per_residue": [{"chain": "A", "q": 0.4}] * 50}
    (run_dir / "validation" / "validation.json").write_text(json.dumps(validation))
    refine = {"final_resolution_angstrom": 20.0, "output_root": "Refine3D/run"}
    # a truth FSC past the nominal rule's limit (one shell finer than 16 A in a 64 A box:
    # 12.8 A) but within the reference's (one shell finer than the reference, 13.55 A for
    # this noise map: 11.18 A): the two rules differ
    summary = {"truth_fsc_0143_angstrom": 12.0}
    result = {
        "version": 1, "key": run_dir.name, "mode": mode, "dataset": dataset.name,
        "validation_window_voxels": 8, "refine": refine, "summary": summary,
        "controls": case_controls(case, refine, summary, dataset),
    }  # fmt: skip
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir, result


def test_exported_records_are_cached_runs_in_a_fresh_folder(tmp_path):
    case = _cutoff_case()
    first, records, fresh = tmp_path / "a", tmp_path / "records", tmp_path / "b"
    run_dir, result = _finished_run(first, case)
    nominal = case_controls(case, result["refine"], result["summary"])["cutoff"]
    judged = result["controls"]["cutoff"]
    assert judged["passed"] != nominal["passed"]  # the reference decides, not the nominal rule
    calls = []
    arms = run_postprocess(case, first, enhance=lambda m: calls.append(1) or 2.0 * m)
    assert len(calls) == 2
    # an unfinished run and a partial file are not records
    (first / "runs" / "relion-unfinished" / "validation").mkdir(parents=True)
    (first / "runs" / "relion-unfinished" / "validation" / "validation.json").write_text("{}")
    (run_dir / "pose_difference.json").write_text('{"cut')

    written = export_records(first, records)
    names = {str(p) for p in written}
    key = run_dir.name
    assert f"runs/{key}/result.json" in names
    assert f"runs/{key}/validation/validation.json" in names
    assert f"runs/{key}/postprocess/prior-noguard/result.json" in names
    assert f"datasets/{dataset_key(case.simulation)}/cutoff_reference.json" in names
    assert not any("unfinished" in n or "pose_difference" in n or n.endswith(".mrc") for n in names)
    assert export_records(first, records) == []  # nothing changed: nothing written
    # the validation without its per-residue Q-scores (the report reads their mean), else whole
    kept = json.loads((records / f"runs/{key}/validation/validation.json").read_text())
    whole = json.loads((run_dir / "validation" / "validation.json").read_text())
    assert kept["q_score"] == {"mean": 0.4} and len(whole["q_score"]["per_residue"]) == 50
    assert kept["gold_standard_fsc"] == whole["gold_standard_fsc"]

    copied = import_records(records, fresh)
    assert sorted(map(str, copied)) == sorted(names)
    assert not (fresh / "datasets" / dataset_key(case.simulation) / "true_map.mrc").exists()
    cached = cached_result(case, "relion", fresh)
    assert cached is not None and cached.cached
    assert cached.data["controls"]["cutoff"] == judged  # judged as before, not by the nominal
    # the arms are cached there too: the prior is not run, no map is read
    again = run_postprocess(case, fresh, enhance=lambda m: calls.append(1) or m)
    assert len(calls) == 2
    # an arm not in the records cannot be made without the maps: left out, not an error
    shutil.rmtree(fresh / "runs" / key / "postprocess" / "prior-v1")
    fewer = run_postprocess(case, fresh, enhance=lambda m: calls.append(1) or m)
    assert set(fewer) == set(again) - {"prior-v1"} and len(calls) == 2
    assert {v: a["summary"] for v, a in again.items()} == {v: a["summary"] for v, a in arms.items()}


def test_import_never_overwrites_and_leaves_a_folders_own_runs_alone(tmp_path):
    case = _cutoff_case()
    first, records, second = tmp_path / "a", tmp_path / "records", tmp_path / "b"
    run_dir, _ = _finished_run(first, case)
    run_postprocess(case, first, enhance=lambda m: m)
    export_records(first, records)
    # the second folder finished the same run itself, without the derived results yet
    own_dir, _ = _finished_run(second, case)
    own_result = (own_dir / "result.json").read_bytes()
    copied = import_records(records, second)
    assert not any(p.parts[:2] == ("runs", run_dir.name) for p in copied)
    assert (own_dir / "result.json").read_bytes() == own_result
    assert not (own_dir / "postprocess").exists()  # made from its own maps, not imported
    assert import_records(tmp_path / "missing", second) == []


def test_report_keeps_a_map_figure_of_the_same_runs_when_the_maps_are_gone(tmp_path):
    case = _cutoff_case()
    run_dir, _ = _finished_run(tmp_path, case)
    write_manifest(tmp_path, [case], suite="test")
    out = tmp_path / "report"
    build_report(tmp_path, out)
    figure = out / "figures" / "cut16_maps.png"
    drawn = figure.read_bytes()
    assert json.loads(figure.with_suffix(".json").read_text()) == {"RELION": run_dir.name}
    (run_dir / "Refine3D" / "run_class001.mrc").unlink()
    md = build_report(tmp_path, out).read_text()
    assert figure.read_bytes() == drawn and "figures/cut16_maps.png" in md
    # a figure of other runs is not kept: without maps there is nothing to draw
    figure.with_suffix(".json").write_text(json.dumps({"RELION": "relion-other"}))
    md = build_report(tmp_path, out).read_text()
    assert "figures/cut16_maps.png" not in md
