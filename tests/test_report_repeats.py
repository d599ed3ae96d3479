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


def _experiment(root: Path, *, relion, prior, arm=None, poses=None):
    """Run folders of one case: relion and prior repeats as given (None: not finished)."""
    entry = {"runs": {}, "repeats": {"relion": [], "prior": []}}
    for mode, results in (("relion", relion), ("prior", prior)):
        for i, result in enumerate(results):
            rel = f"runs/{mode}-{i}"
            entry["repeats"][mode].append(rel)
            if result is not None:
                _write(root / rel / "result.json", result)
            if mode == "relion" and arm and result is not None:
                for variant, summary in arm[i].items():
                    _write(
                        root / rel / "postprocess" / variant / "result.json", {"summary": summary}
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
    # pose differences: angular means 2 and 4 -> 3.00 +- 1.41; shifts 0.5 and 1.5 -> 1.00 +- 0.71
    assert (
        "| prior + guard | 3.00 +- 1.41 (n=2) | 2.00 +- 1.41 (n=2) | n/a | 1.00 +- 0.71 (n=2) |"
        in md
    )


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
