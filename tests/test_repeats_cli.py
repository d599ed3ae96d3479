"""``cryoprior benchmark`` with repeats, without RELION: the realistic suite's listing shows
its repeats, and a number of repeats below 1 is refused before anything runs."""

from __future__ import annotations

from typer.testing import CliRunner

from cryoprior.cli.app import app
from cryoprior.refine.config import suite


def test_list_shows_the_realistic_suite_with_its_repeats(tmp_path):
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "realistic", "--root", str(tmp_path), "--list"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("rl-")]
    assert len(lines) == len(suite("realistic")) == 10
    repeated = [line.split(":")[0] for line in lines if line.endswith("x3 repeats")]
    assert repeated == ["rl-betagal-isotropic", "rl-proteasome-anisotropic", "rl-gltph-belt"]
    # the modes are listed as text (rich took "[relion, ...]" for markup and dropped it)
    for line, case in zip(lines, suite("realistic"), strict=True):
        assert "[" + ", ".join(case.modes) + "]" in line
    assert "[relion, sidesplitter, prior, prior-noguard]" in lines[0]
    assert not (tmp_path / "benchmark.json").exists()  # listing runs nothing


def test_repeats_below_one_are_refused(tmp_path):
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "mini", "--root", str(tmp_path), "--repeats", "0"]
    )
    assert result.exit_code != 0
    assert "--repeats must be >= 1" in result.output
    assert not (tmp_path / "runs").exists()


def test_report_shows_the_realistic_suites_calibration_notes(tmp_path, monkeypatch):
    from cryoprior.refine.run import write_manifest

    monkeypatch.chdir(tmp_path)  # the repository's benchmarks/results, made here
    notes = tmp_path / "benchmarks" / "results"
    notes.mkdir(parents=True)
    (notes / "calibration_a.md").write_text("# Calibration a\n\nran 4.3 min\n")
    for name in ("realistic", "full"):
        root = tmp_path / name
        write_manifest(root, suite("mini"), suite=name)
        result = CliRunner().invoke(app, ["report", str(root)])
        assert result.exit_code == 0, result.output
        md = (root / "report" / "report.md").read_text()
        # only the realistic suite's report shows the notes (a report says what its runs did)
        assert ("### Calibration a" in md) == (name == "realistic")
    other = tmp_path / "note.md"
    other.write_text("# Given note\n")
    result = CliRunner().invoke(
        app, ["report", str(tmp_path / "full"), "--calibration", str(other)]
    )
    assert result.exit_code == 0, result.output
    assert "### Given note" in (tmp_path / "full" / "report" / "report.md").read_text()
