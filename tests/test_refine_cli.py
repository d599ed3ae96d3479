"""``cryoprior refine`` and ``cryoprior benchmark`` refusing bad input with one line, and the
detection of the RELION version on PATH - without RELION: fake ``relion_refine_mpi`` and
``mpirun`` scripts on PATH print what the real ones print for ``--version``.

The version lines are RELION's ``PRINT_VERSION_INFO`` (src/macros.h): ``RELION version:
<g_RELION_VERSION> `` then ``Precision: ...``. 3.1.3 is copied from Debian's binary here;
``4.0.1-commit-ec417f`` and ``5.0.0-commit-90d239`` follow that format with the commit suffix
that RELION's git builds add (``4.0-beta-2-commit-e3afcf`` and ``4.0.1`` are formats seen in
real run.out files and ``relion --version`` transcripts; the 5.0 line is assumed to be the same,
as the source of ``PRINT_VERSION_INFO`` did not change).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryoprior.cli.app import app
from cryoprior.refine.relion import RelionNotFoundError, detect_relion_version
from test_refine_inputs import write_dataset

VERSIONS = {
    "3.1": "RELION version: 3.1.3 \nPrecision: BASE=double",
    "4.0": "RELION version: 4.0.1-commit-ec417f \nPrecision: BASE=single, CUDA-ACC=single ",
    "5.0": "RELION version: 5.0.0-commit-90d239 \nPrecision: BASE=single, CUDA-ACC=single ",
}


def fake_relion(folder: Path, version: str) -> Path:
    """A bin folder with relion_refine_mpi (answers --version, else fails loudly) and mpirun."""
    folder.mkdir(parents=True, exist_ok=True)
    refine = folder / "relion_refine_mpi"
    refine.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then printf "%s\\n" "{VERSIONS[version]}"; exit 0; fi\n'
        'echo "fake relion_refine_mpi: not a real run" >&2; exit 3\n'
    )
    mpirun = folder / "mpirun"
    mpirun.write_text('#!/bin/sh\necho "fake mpirun" >&2\nexit 3\n')
    for path in (refine, mpirun):
        path.chmod(0o755)
    return folder


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tiny project folder (6 images, CTF) as the working directory, fake RELION 3.1.3."""
    write_dataset(tmp_path / "project")
    monkeypatch.chdir(tmp_path / "project")
    bin_dir = fake_relion(tmp_path / "bin", "3.1")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return tmp_path / "project"


def refine(*args: str):
    return CliRunner().invoke(app, ["refine", "particles.star", "--ref", "reference.mrc", *args])


def one_line_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and text in lines[0], lines[0]


@pytest.mark.parametrize("version", ["3.1", "4.0", "5.0"])
def test_detect_relion_version_from_fake_binaries(tmp_path, version):
    bin_dir = fake_relion(tmp_path, version)
    found = detect_relion_version(env={"PATH": str(bin_dir)})
    assert f"{found.major}.{found.minor}" == version
    assert found.text == VERSIONS[version].split(": ")[1].split()[0]


def test_detect_relion_version_without_relion(tmp_path):
    with pytest.raises(RelionNotFoundError, match="not found on PATH: relion_refine_mpi"):
        detect_relion_version(env={"PATH": str(tmp_path)})


def test_no_relion_on_path(project, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    one_line_error(refine(), 1, "not found on PATH: mpirun, relion_refine_mpi")


def test_mismatched_box(project):
    import mrcfile
    import numpy as np

    with mrcfile.new(project / "ref48.mrc") as mrc:
        mrc.set_data(np.zeros((48, 48, 48), np.float32))
        mrc.voxel_size = 3.0
    result = CliRunner().invoke(app, ["refine", "particles.star", "--ref", "ref48.mrc"])
    one_line_error(result, 1, "ref48.mrc: reference map is 48 px at 3 A, the particles of")
    assert "--rescale-ref" in result.output


def test_missing_images(project):
    (project / "Particles" / "a.mrcs").unlink()
    one_line_error(refine(), 1, "particles.star: image stack Particles/a.mrcs does not exist")


def test_unknown_symmetry(project):
    one_line_error(refine("--sym", "X9"), 1, "unknown symmetry 'X9'")


def test_reserved_option_passed_through(project):
    one_line_error(refine("--", "--sym", "D2"), 1, "--sym cannot be passed through")


def test_blush_with_relion_40(project, tmp_path, monkeypatch):
    bin_dir = fake_relion(tmp_path / "bin4", "4.0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    one_line_error(
        refine("--mode", "relion", "--", "--blush"), 1, "--blush needs RELION 5.0 or later"
    )


def test_existing_run_is_not_overwritten(project):
    job = project / "Refine3D" / "job001"
    job.mkdir(parents=True)
    (job / "run.out").write_text("earlier run\n")
    (job / "run_it003_optimiser.star").write_text("")
    one_line_error(refine("--o", "Refine3D/job001"), 1, "already holds a run (2 files")
    assert (job / "run.out").read_text() == "earlier run\n"


def test_failed_relion_start_is_one_line(project):
    """With --overwrite the old run goes, then the fake mpirun fails: one line naming run.err."""
    job = project / "Refine3D" / "job001"
    job.mkdir(parents=True)
    (job / "run.out").write_text("earlier run\n")
    result = refine("--o", "Refine3D/job001", "--overwrite", "--mode", "relion")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: relion_refine_mpi failed (exit 3): fake mpirun (see Refine3D/job001/run.err)"
    ]
    assert (job / "run.out").read_text() == ""


def test_benchmark_refuses_unknown_mode_and_suite(tmp_path):
    runner = CliRunner()
    bad_mode = runner.invoke(
        app, ["benchmark", "--suite", "mini", "--mode", "nosuch", "--root", str(tmp_path)]
    )
    one_line_error(bad_mode, 2, "unknown mode(s) 'nosuch'")
    assert not (tmp_path / "benchmark.json").exists()
    bad_suite = runner.invoke(app, ["benchmark", "--suite", "nosuch", "--root", str(tmp_path)])
    one_line_error(bad_suite, 2, "unknown suite 'nosuch'; choose one of full, demo, mini")
