"""Repeats and derived results without RELION: repeat keys and seeds, the explicit half split
in a repeat's run folder, the manifest's repeat folders, the post-processing arm on a
fabricated run (with affine stand-ins for the prior, whose effects have closed forms) and the
pose differences between modes (poses turned by a known angle and shifted by a known
distance)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from cryoprior.io.mrc import write_map_atomic
from cryoprior.io.star import read_star, write_star_atomic
from cryoprior.refine import run as run_module
from cryoprior.refine.cases import (
    ExperimentCase,
    RefineOptions,
    case_repeat,
    random_half_sets,
    repeat_cases,
)
from cryoprior.refine.config import suite
from cryoprior.refine.derived import pose_difference, run_postprocess
from cryoprior.refine.run import run_key, write_manifest
from cryoprior.regularizers.guard import GuardSettings
from cryoprior.regularizers.postprocess import postprocess_half_maps
from cryoprior.simulate.config import SimulationConfig
from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps


def test_repeats_differ_in_seed_and_split_and_repeat_zero_keeps_todays_key():
    base = suite("mini")[0]
    case = dataclasses.replace(base, repeats=3)
    repeats = repeat_cases(case)
    assert repeats[0] is case
    assert run_key(repeats[0], "relion") == run_key(base, "relion")  # cached runs stay valid
    keys = {run_key(r, "relion") for r in repeats}
    assert len(keys) == 3
    assert [r.refine.random_seed for r in repeats] == [0, 1, 2]
    assert [r.refine.half_split_seed for r in repeats] == [None, 1, 2]
    assert len(repeat_cases(case, limit=1)) == 1
    with pytest.raises(ValueError, match="no repeat 3"):
        case_repeat(case, 3)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        dataclasses.replace(base, repeats=0)


def test_random_half_sets_are_balanced_disjoint_and_seeded():
    a = random_half_sets(1001, seed=1)
    assert set(np.unique(a)) == {1, 2}
    assert (a == 1).sum() == 501 and (a == 2).sum() == 500  # every particle in one half only
    assert np.array_equal(a, random_half_sets(1001, seed=1))
    b = random_half_sets(1001, seed=2)
    # two seeds: about half of the particles change half (binomial, SD ~16 around 500)
    assert 400 < (a != b).sum() < 600


def _particles_star(path, n, *, rot=None, psi=None, x=None):
    rng = np.random.default_rng(0)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [4.0],
            "rlnImageSize": [16],
            "rlnImageDimensionality": [2],
        }
    )
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@Particles/p.mrcs" for i in range(n)],
            "rlnAngleRot": rng.uniform(-180, 180, n) if rot is None else rot,
            "rlnAngleTilt": rng.uniform(0, 180, n),
            "rlnAnglePsi": rng.uniform(-180, 180, n) if psi is None else psi,
            "rlnOriginXAngst": np.zeros(n) if x is None else x,
            "rlnOriginYAngst": np.zeros(n),
            "rlnOpticsGroup": np.ones(n, dtype=int),
        }
    )
    write_star_atomic(path, {"optics": optics, "particles": particles})
    return particles


def test_a_repeat_run_folder_holds_its_own_split(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    _particles_star(dataset / "particles.star", 40)
    (dataset / "initial_reference.mrc").write_bytes(b"")
    case = dataclasses.replace(suite("mini")[0], repeats=2)
    first, second = repeat_cases(case)
    run_module._prepare_run_dir(first, "relion", dataset, tmp_path / "r0")
    assert (tmp_path / "r0" / "particles.star").is_symlink()  # RELION splits with its seed
    run_module._prepare_run_dir(second, "relion", dataset, tmp_path / "r1")
    copy = tmp_path / "r1" / "particles.star"
    assert not copy.is_symlink()
    blocks = read_star(copy)
    assert blocks["particles"]["rlnRandomSubset"].tolist() == random_half_sets(40, seed=1).tolist()
    original = read_star(dataset / "particles.star")
    assert "rlnRandomSubset" not in original["particles"].columns  # the dataset is untouched
    assert blocks["particles"]["rlnImageName"].tolist() == (
        original["particles"]["rlnImageName"].tolist()
    )


def test_manifest_lists_every_repeat(tmp_path):
    case = dataclasses.replace(suite("mini")[0], repeats=2, modes=("relion", "prior"))
    write_manifest(tmp_path, [case], suite="test")
    entry = json.loads((tmp_path / "benchmark.json").read_text())["cases"][0]
    assert entry["runs"]["relion"] == entry["repeats"]["relion"][0]
    assert entry["repeats"]["prior"] == [f"runs/{run_key(r, 'prior')}" for r in repeat_cases(case)]


def test_guard_undoes_an_affine_regularizer_and_no_guard_keeps_it():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(16, 16, 16))
    h1, h2 = truth + rng.normal(size=truth.shape), truth + rng.normal(size=truth.shape)

    def affine(m):
        return 3.0 * m + 5.0

    # the guard's least-squares greyscale fit of 3h + 5 to h is exactly scale 1/3, offset -5/3;
    # the spectral blend then mixes h with h: the plain half-map comes back
    v1 = GuardSettings(method="trailing")
    g1, g2, info = postprocess_half_maps(h1, h2, affine, guard=v1)
    assert np.allclose(g1, h1) and np.allclose(g2, h2)
    assert len(info["cutoff_shell"]) == 2
    u1, _, info = postprocess_half_maps(h1, h2, affine, guard=None)
    assert np.allclose(u1, 3 * h1 + 5) and info == {}


def _fake_relion_run(root, case, mode, *, n=24, seed=0, psi=None, x=None):
    """A finished run folder (maps, final data STAR, result.json) and its dataset."""
    from cryoprior.refine.cases import dataset_key

    rng = np.random.default_rng(seed)
    box, voxel = case.simulation.box_size, case.simulation.voxel_size_angstrom
    dataset = root / "datasets" / dataset_key(case.simulation)
    dataset.mkdir(parents=True, exist_ok=True)
    truth_path = dataset / "true_map.mrc"
    if not truth_path.exists():
        truth = np.random.default_rng(99).normal(size=(box,) * 3)
        write_map_atomic(truth_path, truth, voxel_size_angstrom=voxel)
        _particles_star(dataset / "ground_truth.star", n)
        (dataset / "dataset.json").write_text("{}")
    from cryoprior.io.mrc import read_map

    truth = read_map(truth_path, dtype=np.float64)
    job = root / "runs" / run_key(case, mode) / "Refine3D"
    job.mkdir(parents=True)
    halves = [truth + rng.normal(size=truth.shape) for _ in range(2)]
    for i, h in enumerate(halves, 1):
        write_map_atomic(job / f"run_half{i}_class001_unfil.mrc", h, voxel_size_angstrom=voxel)
    write_map_atomic(job / "run_class001.mrc", sum(halves) / 2, voxel_size_angstrom=voxel)
    _particles_star(job / "run_data.star", n, psi=psi, x=x)
    (job.parent / "result.json").write_text(json.dumps({"version": 1, "summary": {}}))
    return halves, truth


def _tiny_case(**kw):
    sim = SimulationConfig(box_size=16, voxel_size_angstrom=4.0, map_path="given.mrc")
    return ExperimentCase(
        "tiny", "tiny", "isotropic", sim, refine=RefineOptions(symmetry="C1"),
        validation_window_voxels=8, **kw,
    )  # fmt: skip


def test_postprocess_arm_is_validated_like_a_run_and_cached(tmp_path):
    case = _tiny_case(modes=("relion", "prior"))
    (h1, h2), truth = _fake_relion_run(tmp_path, case, "relion")
    calls = []

    def affine(m):
        calls.append(1)
        return 2.0 * m - 1.0

    results = run_postprocess(case, tmp_path, enhance=affine)
    assert set(results) == {"prior", "prior-v1", "prior-bounded", "prior-noguard"}
    assert len(calls) == 2  # one per half, shared by the variants
    # FSC and correlation ignore scale and offset: the unguarded affine arm scores exactly
    # like the plain half-maps validated directly (a reference computed here, not read back)
    direct = validate_maps(
        ValidationInputs(h1, h2, 4.0, truth_map=truth), ValidationSettings(local_window_voxels=8)
    ).to_dict()
    for variant in ("prior-v1", "prior-noguard"):  # guard v1 gives the plain halves back
        s = results[variant]["summary"]
        assert s["truth_correlation"] == pytest.approx(direct["truth"]["correlation_full_map"])
        assert s["truth_fsc_05_angstrom"] == pytest.approx(
            direct["truth"]["full_map"]["resolution_05_angstrom"]
        )
    assert results["prior"]["guarded"] and not results["prior-noguard"]["guarded"]
    assert results["prior-bounded"]["info"]["guard_method"] == "bounded"
    # cryoprior's guard: v2 with cross-half support, each half's support end from its prior
    # map against the other half's plain map
    assert results["prior"]["info"]["guard_method"] == "bounded"
    assert len(results["prior"]["info"]["support_end_shell"]) == 2
    assert "support_end_shell" not in results["prior-bounded"]["info"]
    assert results["prior-v1"]["info"]["guard_method"] == "trailing"
    assert results["prior-v1"]["guard"]["method"] == "trailing"
    assert results["prior-noguard"]["guard"] is None
    again = run_postprocess(case, tmp_path, enhance=affine)
    assert len(calls) == 2 and again == results  # cached: the prior is not applied again
    # an arm cached with other guard settings is made again
    path = tmp_path / "runs" / run_key(case, "relion") / "postprocess" / "prior" / "result.json"
    stale = json.loads(path.read_text())
    path.write_text(json.dumps({**stale, "guard": {**stale["guard"], "cross_half_support": False}}))
    again = run_postprocess(case, tmp_path, enhance=affine)
    assert len(calls) == 4 and again["prior"]["guard"] == results["prior"]["guard"]
    assert run_postprocess(dataclasses.replace(case, pure_noise=True), tmp_path) == {}


def test_other_modes_get_the_shared_arms_only_in_cases_with_repeats(tmp_path):
    case = _tiny_case(modes=("relion", "prior"), repeats=2)
    _fake_relion_run(tmp_path, case, "relion")
    (h1, h2), truth = _fake_relion_run(tmp_path, case, "prior", seed=1)
    results = run_postprocess(case, tmp_path, mode="prior", enhance=lambda m: 3.0 * m)
    assert set(results) == {"prior", "prior-noguard"}  # through the default guard, and not
    assert results["prior"]["label"] == "prior + guard, then prior + guard once"
    arm = results["prior-noguard"]
    assert arm["label"] == "prior + guard, then prior once, no guard"
    assert (arm["source_mode"], arm["source_run"]) == ("prior", run_key(case, "prior"))
    folder = tmp_path / "runs" / run_key(case, "prior") / "postprocess" / "prior-noguard"
    assert (folder / "result.json").is_file()
    # a scaled map has the FSC and correlation of the prior run's own half-maps
    direct = validate_maps(
        ValidationInputs(h1, h2, 4.0, truth_map=truth), ValidationSettings(local_window_voxels=8)
    ).to_dict()
    assert arm["summary"]["truth_correlation"] == pytest.approx(
        direct["truth"]["correlation_full_map"]
    )
    relion = run_postprocess(case, tmp_path, enhance=lambda m: m)
    assert relion["prior-noguard"]["label"] == "RELION, then prior once, no guard"
    # one repeat: the other modes' arms cannot be judged, so they are not made
    single = dataclasses.replace(case, repeats=1)
    assert run_postprocess(single, tmp_path, mode="prior", enhance=lambda m: m) == {}
    assert run_postprocess(case, tmp_path, mode="sidesplitter", enhance=lambda m: m) == {}


def test_pose_difference_of_a_known_turn_and_shift(tmp_path):
    case = _tiny_case(modes=("relion", "sidesplitter"))
    n = 24
    psi = np.linspace(-170, 170, n)
    _fake_relion_run(tmp_path, case, "relion", n=n, psi=psi)
    # the same views turned in-plane by 12 deg and shifted 3 A in x: a rotation of exactly
    # 12 deg about the view axis, the same viewing direction, a 3 A shift
    _fake_relion_run(tmp_path, case, "sidesplitter", n=n, psi=psi + 12.0, x=np.full(n, 3.0))
    diff = pose_difference(case, "sidesplitter", tmp_path)
    s = diff["summary"]
    assert s["n_particles"] == n
    assert s["angular_error_degrees"]["mean"] == pytest.approx(12.0, abs=1e-6)
    assert s["direction_error_degrees"]["mean"] == pytest.approx(0.0, abs=1e-5)
    assert s["shift_error_angstrom"]["mean"] == pytest.approx(3.0)
    assert diff["reference_run"] == run_key(case, "relion")
    assert pose_difference(case, "relion", tmp_path) is None


def test_realistic_suite_has_what_issue_15_asks():
    cases = suite("realistic")
    by_group: dict[str, list] = {}
    for c in cases:
        by_group.setdefault(c.group, []).append(c)
        sim = c.simulation
        assert sim.ctf and c.refine.ctf  # simulated with CTFs and corrected by RELION
        assert c.refine.ctf_corrected_reference  # the initial maps are CTF-free
        assert (sim.voltage_kv, sim.spherical_aberration_mm, sim.amplitude_contrast) == (
            300.0,
            2.7,
            0.1,
        )
        assert (sim.defocus_min_angstrom, sim.defocus_max_angstrom) == (8000.0, 25000.0)
        assert sim.voxel_size_angstrom == 2.5
        # the mask fits the box
        assert c.refine.particle_diameter_angstrom < sim.box_size * sim.voxel_size_angstrom
    for group in ("isotropic", "anisotropic", "membrane"):
        assert [c.repeats for c in by_group[group]] == [3]
    assert by_group["membrane"][0].simulation.model == "gltph"
    assert by_group["membrane"][0].simulation.belt_width_angstrom > 0
    assert sorted(c.cutoff_angstrom for c in by_group["cutoff"]) == [7.5, 10.0, 15.0]
    noise = by_group["noise"]
    assert len(noise) == 3
    assert run_key(noise[0], "relion") == run_key(by_group["isotropic"][0], "relion")
    # the top level never leaves global searches: capped, and plain RELION runs there
    assert noise[-1].refine.auto_iter_max == 12 and noise[-1].modes[0] == "relion"
    assert [c.pure_noise for c in by_group["pure-noise"]] == [True]
    from cryoprior.refine.config import SUITE_SCALES

    assert set(SUITE_SCALES) == set(("full", "demo", "mini", "realistic"))
    assert [c.name for c in suite("demo")] == ["rl-betagal-isotropic"]


def test_the_demo_scale_describes_no_control_it_did_not_run():
    from cryoprior.refine.config import REALISTIC_SCALE, SUITE_SCALES

    demo = SUITE_SCALES["demo"]
    for absent in ("cut-off", "3 repeats"):
        assert absent in REALISTIC_SCALE and absent not in demo
    assert demo.startswith("2.5 A/voxel") and demo.endswith("resamples the half-map.")
    assert "no control" in demo


def test_postprocess_arm_of_a_cutoff_case_is_judged_by_the_control(tmp_path):
    case = _tiny_case(modes=("relion",), cutoff_angstrom=20.0)
    _fake_relion_run(tmp_path, case, "relion")
    results = run_postprocess(case, tmp_path, enhance=lambda m: m)
    for variant in ("prior", "prior-v1", "prior-bounded", "prior-noguard"):
        control = results[variant]["controls"]["cutoff"]
        # box 16 at 4 A (64 A): 20 A is shell 3.2, one shell finer 64 / 4.2 = 15.24 A; the
        # noisy random halves have FSCs far coarser or finer, the rule is applied as for runs
        assert control["one_shell_finer_angstrom"] == pytest.approx(64 / 4.2)
        values = control["values"]
        assert values["relion_final_angstrom"] is None  # not the arm's own
        # nor is a gold-standard FSC of processed halves a resolution estimate: not judged
        assert values["gold_standard_fsc_0143_angstrom"] is None
        assert results[variant]["summary"]["fsc_0143_angstrom"] is not None  # but reported
        assert values["truth_fsc_0143_angstrom"] is not None
        assert control["passed"] == (values["truth_fsc_0143_angstrom"] >= 64 / 4.2)
