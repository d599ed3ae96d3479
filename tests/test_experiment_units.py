"""Experiment runner and report without RELION: progress parsing, cache keys, case round trip,
and a report built from fabricated runs (validated random maps) with the controls' verdicts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cryoprior.io.mrc import write_map_atomic
from cryoprior.io.relion import latest_optimiser_star
from cryoprior.refine.cases import (
    MODES,
    ExperimentCase,
    RefineOptions,
    case_from_dict,
    case_to_dict,
    dataset_key,
)
from cryoprior.refine.config import SUITES, suite
from cryoprior.refine.relion import read_progress
from cryoprior.refine.run import case_controls, prior_weights, run_key, write_manifest
from cryoprior.report.build import build_report
from cryoprior.simulate.config import SimulationConfig
from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps

# lines as relion_refine_mpi 3.1.3 prints them (copied from a run.out of this project's runs)
RUN_OUT = """\
 Auto-refine: Iteration= 6
 Auto-refine: Resolution= 26.4 (no gain for 3 iter)
 Auto-refine: Changes in angles= 11.8747 degrees; and in offsets= 1.70178 Angstroms (no gain for 1 iter)
 Auto-refine: Angular step= 7.5 degrees; local searches= false
 Auto-refine: Iteration= 7
 Auto-refine: Resolution= 15.0857 (no gain for 1 iter)
 Auto-refine: Angular step= 1.875 degrees; local searches= true
"""


def test_read_progress(tmp_path):
    job = tmp_path / "Refine3D"
    job.mkdir()
    (job / "run.out").write_text(RUN_OUT)
    log = [
        {"iteration": 7, "half": 1, "applied": True, "fallback": None},
        {"iteration": 7, "half": 2, "applied": False, "fallback": "timeout"},
    ]
    (job / "cryoprior_extrec.log").write_text("\n".join(json.dumps(r) for r in log) + '\n{"torn":')
    p = read_progress(job / "run")
    assert (p.iteration, p.resolution_angstrom) == (7, 15.0857)
    assert (p.angular_step_degrees, p.local_searches) == (1.875, True)
    assert (p.hook_calls, p.regularized, p.fallbacks, p.finished) == (2, False, 1, False)
    assert "it 7" in p.line() and "local" in p.line()
    with open(job / "run.out", "a") as handle:
        handle.write(" Auto-refine: + Final resolution (without masking) is: 11.7333\n")
    assert read_progress(job / "run").final_resolution_angstrom == 11.7333
    assert read_progress(tmp_path / "nothing" / "run").iteration is None


def test_latest_optimiser_star(tmp_path):
    assert latest_optimiser_star(tmp_path / "run") is None
    for name in (
        "run_it002_optimiser.star",
        "run_ct2_it005_optimiser.star",
        "runx_it009_optimiser.star",
    ):
        (tmp_path / name).write_text("")
    path, iteration = latest_optimiser_star(tmp_path / "run")
    assert (path.name, iteration) == ("run_ct2_it005_optimiser.star", 5)


def test_cache_keys_follow_what_determines_a_result():
    case = suite("mini")[0]
    assert run_key(case, "relion") == run_key(case, "relion")
    assert run_key(case, "relion") != run_key(case, "prior")
    other_seed = dataclasses.replace(case, simulation=dataclasses.replace(case.simulation, seed=9))
    assert dataset_key(other_seed.simulation) != dataset_key(case.simulation)
    assert run_key(other_seed, "relion") != run_key(case, "relion")
    # the timeout and the report title do not change a result
    longer = dataclasses.replace(
        case, title="x", refine=dataclasses.replace(case.refine, timeout_seconds=1.0)
    )
    assert run_key(longer, "relion") == run_key(case, "relion")
    # a whole number written for a float field (TOML, --set) is the same dataset
    written = dataclasses.replace(case.simulation, snr=1, envelope_b_factor_angstrom2=100)
    as_floats = dataclasses.replace(case.simulation, snr=1.0, envelope_b_factor_angstrom2=100.0)
    assert dataset_key(written) == dataset_key(as_floats)
    assert isinstance(written.snr, float)
    # --ctf_corrected_ref changes the command only with the CTF on: the key follows that
    uncorrected = dataclasses.replace(
        case, refine=dataclasses.replace(case.refine, ctf_corrected_reference=False)
    )
    assert run_key(uncorrected, "relion") == run_key(case, "relion")
    with_ctf = dataclasses.replace(case, refine=dataclasses.replace(case.refine, ctf=True))
    with_ctf_uncorrected = dataclasses.replace(
        with_ctf, refine=dataclasses.replace(with_ctf.refine, ctf_corrected_reference=False)
    )
    assert run_key(with_ctf, "relion") != run_key(with_ctf_uncorrected, "relion")


def test_prior_runs_are_keyed_by_the_weights_content(tmp_path):
    """Other weights (or retrained weights under the same name) are another run; the modes
    without the prior do not depend on them."""
    from cryoprior.prior.infer import weights_path

    case = suite("mini")[0]
    shipped = prior_weights(case, "prior")
    assert shipped is not None and shipped["file"] == weights_path("default").name
    assert prior_weights(case, "relion") is None and prior_weights(case, "sidesplitter") is None
    path = tmp_path / "mine.pt"
    path.write_bytes(weights_path("default").read_bytes())
    mine = dataclasses.replace(
        case,
        refine=dataclasses.replace(
            case.refine, extra_hook_arguments=("--option", f"weights={path}")
        ),
    )
    assert prior_weights(mine, "prior")["sha256"] == shipped["sha256"]
    before = {mode: run_key(mine, mode) for mode in MODES}
    path.write_bytes(path.read_bytes() + b"retrained")
    after = {mode: run_key(mine, mode) for mode in MODES}
    assert after["prior"] != before["prior"] and after["prior-noguard"] != before["prior-noguard"]
    assert after["relion"] == before["relion"] and after["sidesplitter"] == before["sidesplitter"]


def test_case_round_trip_and_suites():
    for name in SUITES:
        for case in suite(name):
            assert case_from_dict(json.loads(json.dumps(case_to_dict(case)))) == case
    full = suite("full")
    groups = {c.group for c in full}
    assert groups == {"isotropic", "anisotropic", "cutoff", "noise", "pure-noise"}
    assert len([c for c in full if c.group == "noise"]) >= 3
    assert len([c for c in full if c.cutoff_angstrom]) == 3
    # the noise sweep's first level is the isotropic case: they share runs
    iso = next(c for c in full if c.group == "isotropic")
    first_noise = next(c for c in full if c.group == "noise")
    assert run_key(iso, "prior") == run_key(first_noise, "prior")
    # the demo's runs are the benchmark's (the realistic suite's isotropic case, first repeat)
    realistic_iso = suite("realistic")[0]
    assert realistic_iso.group == "isotropic" and suite("demo")[0].repeats == 1
    assert run_key(suite("demo")[0], "prior") == run_key(realistic_iso, "prior")
    with pytest.raises(ValueError, match="unknown mode"):
        ExperimentCase("x", "x", "x", SimulationConfig(), modes=("magic",))
    with pytest.raises(ValueError, match="unknown suite"):
        suite("nope")


def test_controls_verdicts():
    sim = SimulationConfig(box_size=48, voxel_size_angstrom=4.4, lowpass_resolution_angstrom=16)
    case = ExperimentCase("c", "c", "cutoff", sim, cutoff_angstrom=16.0)
    # box 211.2 A: the shell of 16 A is 13.2; one shell finer is 211.2/14.2 = 14.87 A
    ok = case_controls(case, {"final_resolution_angstrom": 16.2}, {"fsc_0143_angstrom": 15.0})
    assert ok["cutoff"]["passed"]
    assert ok["cutoff"]["one_shell_finer_angstrom"] == pytest.approx(211.2 / 14.2)
    bad = case_controls(case, {"final_resolution_angstrom": 12.0}, {})
    assert not bad["cutoff"]["passed"]
    noise = ExperimentCase(
        "n", "n", "pure-noise", sim, refine=RefineOptions(ini_high_angstrom=30.0), pure_noise=True
    )
    assert case_controls(noise, {"final_resolution_angstrom": 35.2}, {})["pure_noise"]["passed"]
    assert not case_controls(noise, {"final_resolution_angstrom": 21.1}, {})["pure_noise"]["passed"]


def _blob_map(n: int, voxel: float, rng) -> np.ndarray:
    """A compact particle-like map: random Gaussian blobs inside a sphere of radius n/4."""
    from cryoprior.fourier.filters import raised_cosine_lowpass

    grid = np.indices((n, n, n)) - n / 2
    inside = np.sqrt((grid**2).sum(0)) < n / 4
    noise = rng.normal(size=(n, n, n)) * inside
    smooth = raised_cosine_lowpass(
        n, resolution_angstrom=3 * voxel, voxel_size_angstrom=voxel, width_fourier_voxels=2
    )
    return np.fft.irfftn(np.fft.rfftn(noise) * smooth, s=noise.shape, axes=(0, 1, 2))


def test_a_perfect_map_of_low_passed_particles_passes_the_cutoff_control(tmp_path):
    """The control's reference: the truth low-passed as the particles were, FSC'd against the
    truth in the validation's mask, crosses 0.143 past the nominal cut-off (the filter's edge and
    the mask spread the last shells); the rule counts from it, so a perfect map passes, and a
    map one shell further does not. Cached results are judged again with the rule."""
    from cryoprior.refine.run import cutoff_reference, rejudge_controls
    from cryoprior.simulate.images import paper_lowpass
    from cryoprior.validate.summary import map_mask
    from cryoprior.validate.truth import compare_with_truth

    n, voxel, cut = 64, 2.5, 10.0  # the realistic suite's pixel; 9.27 A measured
    sim = SimulationConfig(box_size=n, voxel_size_angstrom=voxel, lowpass_resolution_angstrom=cut)
    case = ExperimentCase("c", "c", "cutoff", sim, cutoff_angstrom=cut)
    truth = _blob_map(n, voxel, np.random.default_rng(3))
    dataset = tmp_path / "datasets" / dataset_key(sim)
    dataset.mkdir(parents=True)
    write_map_atomic(dataset / "true_map.mrc", truth, voxel_size_angstrom=voxel)
    reference = cutoff_reference(case, dataset)
    # the reference computed here from its definition, not read back
    lowpass = paper_lowpass(n, resolution_angstrom=cut, voxel_size_angstrom=voxel,
                            width_frequency=sim.lowpass_width_frequency, ndim=3)  # fmt: skip
    perfect = np.fft.irfftn(np.fft.rfftn(truth) * lowpass, s=truth.shape, axes=(0, 1, 2))
    direct = compare_with_truth(perfect, truth, mask=map_mask(truth), voxel_size_angstrom=voxel)
    assert reference == pytest.approx(direct.full_map.resolution_angstrom(0.143), rel=1e-4)
    assert reference < cut  # past the nominal cut-off
    edge = n * voxel
    old_limit = edge / (edge / cut + 1)
    summary = {"truth_fsc_0143_angstrom": reference}
    refine = {"final_resolution_angstrom": cut}
    judged = case_controls(case, refine, summary, dataset)["cutoff"]
    assert judged["passed"] and judged["reference_angstrom"] == pytest.approx(reference)
    limit = edge / (edge / reference + 1)
    assert judged["one_shell_finer_angstrom"] == pytest.approx(limit)
    beyond = case_controls(case, refine, {"truth_fsc_0143_angstrom": 0.99 * limit}, dataset)
    assert not beyond["cutoff"]["passed"]
    # judged from the nominal cut-off alone, the perfect map fails (more than a shell past it)
    assert reference < old_limit
    old = {"dataset": dataset.name, "refine": refine, "summary": summary,
           "controls": case_controls(case, refine, summary)}  # fmt: skip
    assert not old["controls"]["cutoff"]["passed"]
    path = tmp_path / "runs" / "relion-x" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    again = rejudge_controls(path, old, case)
    assert again["controls"]["cutoff"]["passed"]
    assert json.loads(path.read_text())["controls"] == again["controls"]
    assert (dataset / "cutoff_reference.json").is_file()


def _fake_run(root: Path, case: ExperimentCase, mode: str, rng, final_resolution: float) -> None:
    """A run folder as run_mode leaves it, from random maps validated for real."""
    n = case.simulation.box_size
    voxel = case.simulation.voxel_size_angstrom
    truth = rng.normal(size=(n, n, n))
    h1 = truth + rng.normal(size=truth.shape)
    h2 = truth + rng.normal(size=truth.shape)
    run_dir = root / "runs" / run_key(case, mode)
    (run_dir / "Refine3D").mkdir(parents=True)
    (run_dir / "validation").mkdir()
    write_map_atomic(
        run_dir / "Refine3D" / "run_class001.mrc", (h1 + h2) / 2, voxel_size_angstrom=voxel
    )
    dataset = root / "datasets" / dataset_key(case.simulation)
    dataset.mkdir(parents=True, exist_ok=True)
    write_map_atomic(dataset / "true_map.mrc", truth, voxel_size_angstrom=voxel)
    report = validate_maps(
        ValidationInputs(h1, h2, voxel, truth_map=truth),
        ValidationSettings(local_window_voxels=8),
    )
    (run_dir / "validation" / "validation.json").write_text(json.dumps(report.to_dict()))
    refine = {
        "final_resolution_angstrom": final_resolution,
        "output_root": "Refine3D/run",
        "wall_seconds": 60.0,
        "hook_calls": 10,
        "regularized_calls": 4,
        "fallbacks": 0,
        "reached_local_searches": True,
    }
    # the verdicts are on the summary numbers (made up here); the random maps are for figures
    summary = {"fsc_0143_angstrom": final_resolution + 0.5}
    result = {
        "mode": mode,
        "dataset": dataset.name,
        "refine": refine,
        "summary": summary,
        "controls": case_controls(case, refine, summary),
    }
    (run_dir / "result.json").write_text(json.dumps(result))


def test_report_from_cached_runs(tmp_path):
    rng = np.random.default_rng(0)
    sim = SimulationConfig(box_size=24, voxel_size_angstrom=4.0, lowpass_resolution_angstrom=16.0)
    case = ExperimentCase(
        "cut16",
        "cut-off 16 A",
        "cutoff",
        sim,
        modes=("relion", "prior", "prior-noguard"),
        cutoff_angstrom=16.0,
    )
    _fake_run(tmp_path, case, "relion", rng, final_resolution=19.2)  # passes
    _fake_run(tmp_path, case, "prior", rng, final_resolution=9.6)  # passes the cut-off: FAIL
    write_manifest(tmp_path, [case], suite="test", scale="tiny")
    md = build_report(tmp_path, tmp_path / "report").read_text()
    assert "## Control: resolution cut-off" in md
    rows = [line for line in md.splitlines() if line.startswith("| cut16 |")]
    assert len(rows) == 2
    assert rows[0].endswith("| PASS |") and rows[1].endswith("| **FAIL** |")
    assert "| RELION | 19.20 |" in md and "| prior + guard | 9.60 |" in md
    # a mode without a run of these weights is named, not silently left out
    assert "the current prior weights (a run's key holds both): `prior-noguard`." in md
    # a prior run without the record is from before weights were recorded: the first weights
    assert "Prior weights used by the runs: `cryoprior-prior-v1.pt` (1 run)." in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert '<span class="fail">FAIL</span>' in html
    assert (tmp_path / "report" / "figures" / "cut16_maps.png").stat().st_size > 1000
