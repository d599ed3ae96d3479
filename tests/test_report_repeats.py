"""The report's repeat sections from fabricated results (no RELION, no maps): mean +- SD
tables, the verdict against hand-computed numbers, the post-processing arm's rows, pose
differences, the 1.25x-Nyquist scale rule per case and calibration notes read from a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryoprior.report.document import Document
from cryoprior.report.repeats import (
    calibration_section,
    load_case_repeats,
    repeats_section,
    scale_section,
)

LABELS = {"relion": "RELION", "prior": "prior + guard"}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _result(truth05, cc, minutes=5.0, final=6.0):
    return {
        "summary": {"truth_fsc_05_angstrom": truth05, "truth_correlation": cc},
        "refine": {"final_resolution_angstrom": final, "wall_seconds": minutes * 60},
    }


# the labels cryoprior.refine.derived.postprocess_label writes into an arm's result.json
ARM_LABELS = {
    "prior": "then prior + guard once",
    "prior-v1": "then prior + guard v1 once",
    "prior-bounded": "then prior + guard v2 without cross-half support once",
    "prior-noguard": "then prior once, no guard",
}


def _experiment(root: Path, *, relion, prior, arm=None, poses=None, prior_arm=None):
    """Run folders of one case: relion and prior repeats as given (None: not finished).

    arm, prior_arm: per repeat, variant -> summary of the post-processing arm on the relion
    and the prior run.
    """
    entry = {"runs": {}, "repeats": {"relion": [], "prior": []}}
    for mode, results, arms in (("relion", relion, arm), ("prior", prior, prior_arm)):
        for i, result in enumerate(results):
            rel = f"runs/{mode}-{i}"
            entry["repeats"][mode].append(rel)
            if result is not None:
                _write(root / rel / "result.json", result)
            if arms and result is not None:
                for variant, summary in arms[i].items():
                    label = f"{LABELS[mode]}, {ARM_LABELS[variant]}"
                    _write(
                        root / rel / "postprocess" / variant / "result.json",
                        {"summary": summary, "label": label},
                    )
            if mode == "prior" and poses and result is not None:
                _write(root / rel / "pose_difference.json", {"summary": poses[i]})
        if results:
            entry["runs"][mode] = entry["repeats"][mode][0]
    return entry


def test_repeats_table_verdict_and_post_processing_rows(tmp_path):
    # RELION: FSC 0.5 vs truth 6.0, 6.2, 6.4 (mean 6.2, SD 0.2: threshold 0.4); CC 0.80, 0.81,
    # 0.82 (SD 0.01). prior: 5.6, 5.7 (mean 5.65: -0.55, beyond 0.4: better), CC 0.81 (same).
    # Post-processing, guarded: 6.1 each (-0.1: no difference); unguarded: 7.0 (worse), CC 0.7.
    entry = _experiment(
        tmp_path,
        relion=[_result(6.0, 0.80), _result(6.2, 0.81), _result(6.4, 0.82)],
        prior=[_result(5.6, 0.81), _result(5.7, 0.81), None],
        arm=[
            {
                "prior": {"truth_fsc_05_angstrom": 6.1, "truth_correlation": 0.81},
                "prior-noguard": {"truth_fsc_05_angstrom": 7.0, "truth_correlation": 0.70},
            }
        ]
        * 3,
        poses=[
            {"angular_error_degrees": {"mean": 2.0, "median": 1.0},
             "shift_error_angstrom": {"mean": 0.5}},
            {"angular_error_degrees": {"mean": 4.0, "median": 3.0},
             "shift_error_angstrom": {"mean": 1.5}},
        ],
    )  # fmt: skip
    repeats = load_case_repeats(tmp_path, entry)
    assert len(repeats.runs["relion"]) == 3 and len(repeats.runs["prior"]) == 2
    doc = Document()
    data = repeats_section(doc, repeats, LABELS)
    md = doc.markdown()
    assert "| RELION | 6.00 +- 0.00 (n=3) |" in md  # RELION final resolution: all 6.0
    assert "6.20 +- 0.20 (n=3)" in md and "5.65 +- 0.07 (n=2)" in md  # sqrt(0.005) = 0.0707
    assert "Not all repeats have run yet: prior + guard." in md
    verdict = data["verdict"]
    assert "prior + guard: better on vs truth FSC 0.5 (A)." in verdict
    assert "RELION, then prior + guard once: no difference beyond the noise." in verdict
    assert "RELION, then prior once, no guard: worse on vs truth FSC 0.5 (A), CC with truth." in (
        verdict
    )
    assert data["statistics"]["post:prior-noguard"]["truth_correlation"]["mean"] == pytest.approx(
        0.70
    )
    # relative gains of the means: prior (6.2 - 5.65) / 6.2 = +8.9 %; unguarded arm -12.9 %
    assert data["relative_gains"]["prior"]["relion"] == pytest.approx(100 * 0.55 / 6.2)
    assert data["relative_gains"]["post:prior-noguard"]["relion"] == pytest.approx(-100 * 0.8 / 6.2)
    assert "| prior + guard | +8.9 |" in md
    # pose differences: angular means 2 and 4 -> 3.00 +- 1.41; shifts 0.5 and 1.5 -> 1.00 +- 0.71
    assert (
        "| prior + guard | 3.00 +- 1.41 (n=2) | 2.00 +- 1.41 (n=2) | n/a | 1.00 +- 0.71 (n=2) |"
        in md
    )


def test_each_mode_post_processed_is_judged_against_relion_post_processed(tmp_path):
    # RELION then prior once: FSC 0.5 vs truth 5.4, 5.5, 5.6 (mean 5.5, SD 0.1: threshold
    # 0.2); prior in the loop then once: 5.0, 5.1 (mean 5.05: -0.45, better); CC 0.77 against
    # 0.76, 0.77, 0.78 (SD 0.01, threshold 0.02: +0.0 - no difference)
    arm = [
        {"prior-noguard": {"truth_fsc_05_angstrom": v, "truth_correlation": c}}
        for v, c in ((5.4, 0.76), (5.5, 0.77), (5.6, 0.78))
    ]
    prior_arm = [{"prior-noguard": {"truth_fsc_05_angstrom": v, "truth_correlation": 0.77}}
                 for v in (5.0, 5.1)]  # fmt: skip
    entry = _experiment(
        tmp_path,
        relion=[_result(6.0, 0.80), _result(6.2, 0.81), _result(6.4, 0.82)],
        prior=[_result(5.6, 0.81), _result(5.7, 0.81)],
        arm=arm,
        prior_arm=prior_arm,
    )
    repeats = load_case_repeats(tmp_path, entry)
    assert set(repeats.postprocess) == {"post:prior-noguard", "post:prior:prior-noguard"}
    doc = Document()
    data = repeats_section(doc, repeats, LABELS)
    md = doc.markdown()
    assert "| prior + guard, then prior once, no guard | " in md
    assert "5.05 +- 0.07 (n=2)" in md
    # the main verdict compares with plain RELION's map and leaves the other mode's arm out
    assert "prior + guard, then prior once" not in data["verdict"]
    post = data["postprocess_verdict"]
    assert post.startswith("Against RELION, then prior once, no guard (3 repeats")
    assert "prior + guard, then prior once, no guard: better on vs truth FSC 0.5 (A)." in post
    assert "**In the loop, then once.**" in md
    calls = data["postprocess_calls"]["post:prior:prior-noguard"]
    fsc = next(c for c in calls if c["metric"] == "truth_fsc_05_angstrom")
    assert fsc["difference"] == pytest.approx(-0.45) and fsc["threshold"] == pytest.approx(0.2)
    cc = next(c for c in calls if c["metric"] == "truth_correlation")
    assert cc["verdict"] == "no difference"


def test_an_arm_made_with_other_prior_weights_is_not_mixed_with_the_current_ones(tmp_path):
    # RELION's arms were made with old weights (their maps gone, they could not be redone);
    # the prior run's arm with the current ones: the old arms get their own, labelled row and
    # the in-loop-then-once comparison (which needs RELION's arm with the same weights) is left
    # out rather than made across weights
    old, new = {"file": "old.pt", "sha256": "a" * 64}, {"file": "new.pt", "sha256": "b" * 64}
    entry = _experiment(
        tmp_path,
        relion=[_result(6.0, 0.80), _result(6.2, 0.81), _result(6.4, 0.82)],
        prior=[_result(5.6, 0.81), _result(5.7, 0.81)],
        arm=[{"prior": {"truth_fsc_05_angstrom": v, "truth_correlation": 0.8}} for v in (5, 5, 5)],
        prior_arm=[{"prior": {"truth_fsc_05_angstrom": 4.0, "truth_correlation": 0.9}}] * 2,
    )
    entry["prior_weights"] = new
    for rel, weights in [(r, old) for r in entry["repeats"]["relion"]] + [
        (r, new) for r in entry["repeats"]["prior"]
    ]:
        path = tmp_path / rel / "postprocess" / "prior" / "result.json"
        _write(path, {**json.loads(path.read_text()), "prior_weights": weights})
    repeats = load_case_repeats(tmp_path, entry)
    assert set(repeats.postprocess) == {f"post:prior@{'a' * 12}", "post:prior:prior"}
    assert repeats.postprocess_labels[f"post:prior@{'a' * 12}"] == (
        "RELION, then prior + guard once (weights old.pt)"
    )
    doc = Document()
    data = repeats_section(doc, repeats, LABELS)
    assert "| RELION, then prior + guard once (weights old.pt) | " in doc.markdown()
    assert data["postprocess_verdict"] is None
    # without the manifest's record (older manifests) every arm keeps its row, as before
    del entry["prior_weights"]
    assert set(load_case_repeats(tmp_path, entry).postprocess) == {"post:prior", "post:prior:prior"}


def test_one_repeat_makes_no_call(tmp_path):
    entry = _experiment(tmp_path, relion=[_result(6.0, 0.8)], prior=[_result(4.0, 0.9)])
    doc = Document()
    data = repeats_section(doc, load_case_repeats(tmp_path, entry), LABELS)
    assert "no repeats, no call" in data["verdict"]
    assert "**Verdict.**" in doc.markdown()


def test_a_manifest_without_repeats_reads_its_single_runs(tmp_path):
    _write(tmp_path / "runs" / "r" / "result.json", _result(6.0, 0.8))
    repeats = load_case_repeats(tmp_path, {"runs": {"relion": "runs/r"}})
    assert len(repeats.runs["relion"]) == 1 and repeats.expected == {"relion": 1}


def _case(name, voxel, box, **extra):
    return {"name": name, "simulation": {"voxel_size_angstrom": voxel, "box_size": box}, **extra}


def test_scale_rule_per_case(tmp_path):
    ok = _experiment(tmp_path / "a", relion=[_result(6.4, 0.8), _result(6.6, 0.8)], prior=[])
    bad = _experiment(tmp_path / "b", relion=[_result(9.43, 0.8)], prior=[])
    cut = _experiment(tmp_path / "c", relion=[_result(15.5, 0.8)], prior=[])
    doc = Document()
    records = scale_section(
        doc,
        [
            (_case("realistic-iso", 2.5, 80), load_case_repeats(tmp_path / "a", ok)),
            (_case("full-iso", 4.4, 48), load_case_repeats(tmp_path / "b", bad)),
            (_case("cut", 2.5, 80, cutoff_angstrom=15.0), load_case_repeats(tmp_path / "c", cut)),
            (_case("noise", 2.5, 80, pure_noise=True), load_case_repeats(tmp_path / "c", cut)),
        ],
    )
    md = doc.markdown()
    # 6.5 / 5.0 = 1.30 >= 1.25: PASS; 9.43 / 8.8 = 1.07: FAIL; the cut-off control is not judged
    assert "| `realistic-iso` | 2.5 | 80 (200 A) | 5 | 6.50 +- 0.14 (n=2) | 1.30 | PASS |" in md
    assert "| `full-iso` | 4.4 | 48 (211.2 A) | 8.8 | 9.43 (n=1) | 1.07 | **FAIL** |" in md
    assert "control (cut-off 15 A)" in md
    assert [r["case"] for r in records] == ["realistic-iso", "full-iso", "cut"]  # no pure noise
    empty = Document()
    assert scale_section(empty, []) == [] and empty.blocks == []  # no runs: no section


def test_calibration_is_read_from_the_notes(tmp_path):
    note = tmp_path / "calibration_x.md"
    note.write_text(
        "# Calibration of x\n\nPlain RELION on\nthe case.\n\n```bash\ncryoprior refine a\n```\n\n"
        "| SNR | wall |\n|---|---|\n| 0.1 | 3.4 min |\n\n- one\n- two\n"
    )
    doc = Document()
    assert calibration_section(doc, [note, tmp_path / "missing.md"]) == ["calibration_x.md"]
    md = doc.markdown()
    assert "### Calibration of x" in md
    assert "Plain RELION on the case." in md
    assert "```\ncryoprior refine a\n```" in md
    assert "| SNR | wall |\n|---|---|\n| 0.1 | 3.4 min |" in md
    assert "- one\n- two" in md
    assert "<pre>cryoprior refine a</pre>" in doc.html("t")
    nothing = Document()
    assert calibration_section(nothing, [tmp_path / "missing.md"]) == [] and not nothing.blocks


def test_build_report_with_repeats_arm_scale_and_calibration(tmp_path):
    """A whole report from fabricated run folders with repeats (maps validated for real)."""
    import numpy as np

    from cryoprior.io.mrc import write_map_atomic
    from cryoprior.refine.cases import ExperimentCase, dataset_key, repeat_cases
    from cryoprior.refine.run import case_controls, run_key, write_manifest
    from cryoprior.report.build import build_report
    from cryoprior.simulate.config import SimulationConfig
    from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps

    rng = np.random.default_rng(0)
    sim = SimulationConfig(box_size=16, voxel_size_angstrom=2.5, lowpass_resolution_angstrom=10)
    case = ExperimentCase(
        "cut10", "cut-off 10 A", "cutoff", sim, modes=("relion", "sidesplitter"),
        cutoff_angstrom=10.0, repeats=2,
    )  # fmt: skip
    truth = rng.normal(size=(16, 16, 16))
    dataset = tmp_path / "datasets" / dataset_key(sim)
    dataset.mkdir(parents=True)
    write_map_atomic(dataset / "true_map.mrc", truth, voxel_size_angstrom=2.5)
    validation = validate_maps(
        ValidationInputs(truth + rng.normal(size=truth.shape), truth, 2.5, truth_map=truth),
        ValidationSettings(local_window_voxels=8),
    ).to_dict()
    # RELION's FSC 0.5 vs truth 12.0 and 12.4 (mean 12.2, SD 0.28); SIDESPLITTER 10.5, 10.7
    # (-1.6: better). Repeat 2 of SIDESPLITTER reports 7.0 A: finer than 40 A / (40 / 10 + 1) = 8 A
    # (the cut-off one shell finer, box 16 at 2.5 A): FAIL.
    numbers = {"relion": [(12.0, 11.0), (12.4, 11.0)], "sidesplitter": [(10.5, 10.2), (10.7, 7.0)]}
    for r, repeat in enumerate(repeat_cases(case)):
        for mode in case.modes:
            run_dir = tmp_path / "runs" / run_key(repeat, mode)
            (run_dir / "validation").mkdir(parents=True)
            (run_dir / "validation" / "validation.json").write_text(json.dumps(validation))
            truth05, final = numbers[mode][r]
            refine = {"final_resolution_angstrom": final, "wall_seconds": 120.0}
            summary = {"truth_fsc_05_angstrom": truth05, "fsc_0143_angstrom": 10.5}
            _write(
                run_dir / "result.json",
                {
                    "dataset": dataset.name,
                    "refine": refine,
                    "summary": summary,
                    "controls": case_controls(repeat, refine, summary),
                },
            )
    # the unguarded arm on the first RELION repeat: FSC 0.143 vs truth 7.0 A, past the cut-off
    arm = {"truth_fsc_0143_angstrom": 7.0, "truth_fsc_05_angstrom": 11.0}
    _write(
        tmp_path
        / "runs"
        / run_key(case, "relion")
        / "postprocess"
        / "prior-noguard"
        / "result.json",
        {
            "summary": arm,
            "controls": case_controls(case, {}, arm),
            "label": "RELION, then prior once, no guard",
        },
    )
    write_manifest(tmp_path, [case], suite="test", scale="tiny")
    note = tmp_path / "calibration_tiny.md"
    note.write_text("# Tiny calibration\n\n| run | wall |\n|---|---|\n| 1 | 2 min |\n")
    md = build_report(tmp_path, tmp_path / "report", calibration=[note]).read_text()
    assert "### Repeats: mean +- SD" in md
    assert "12.20 +- 0.28 (n=2)" in md and "10.60 +- 0.14 (n=2)" in md
    # RELION final: 11.0 twice (SD 0), SIDESPLITTER 10.2 and 7.0: beyond 0, also called
    assert "SIDESPLITTER: better on RELION final (A), vs truth FSC 0.5 (A)." in md
    # the controls are judged on every repeat and arm: 5 rows, two fail
    rows = [line for line in md.splitlines() if line.startswith("| cut10")]
    assert len(rows) == 5
    assert [r.split(" | ")[:2] for r in rows if r.endswith("**FAIL** |")] == [
        ["| cut10 (repeat 2)", "SIDESPLITTER"],
        ["| cut10 (repeat 1)", "RELION, then prior once, no guard"],
    ]
    assert "control (cut-off 10 A)" in md  # the scale table shows the control, not judged
    assert "## Calibration runs" in md and "### Tiny calibration" in md
    assert "| 1 | 2 min |" in md
    # only the modes that ran are described
    assert "(`prior`," not in md and "(`sidesplitter`," in md
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    entry = results["cases"][0]["repeats"]
    assert entry["statistics"]["relion"]["truth_fsc_05_angstrom"]["n"] == 2
    assert results["calibration"] == ["calibration_tiny.md"]
    assert results["scale"][0]["control"] is True
