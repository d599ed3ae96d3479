"""``cryoprior validate`` refuses inputs whose numbers would mean nothing, with one line, and
warns about inputs that look wrong (review_reliability.md cases V02, V06, V08, V09b, V13, V14,
V14b, D04, D05b).

The maps are 24^3 Gaussian blobs with noise made here; the STAR files are written with
starfile. Nothing needs RELION.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
import typer
from typer.testing import CliRunner

from cryoprior.cli.validate import validate
from cryoprior.io.mrc import write_map_atomic
from cryoprior.validate.summary import fraction_outside_box
from cryoprior.validate.symmetry import validate_symmetry_name

N = 24
FRAGMENT = Path(__file__).parent / "data" / "validate" / "6bdf_chainA_fragment.pdb"


def _run(*args):
    app = typer.Typer()
    app.command()(validate)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


def _blob(seed: int) -> np.ndarray:
    grid = np.indices((N, N, N)) - N // 2
    signal = np.exp(-(grid**2).sum(axis=0) / (2 * 3.0**2))
    return signal + np.random.default_rng(seed).normal(scale=0.05, size=signal.shape)


@pytest.fixture
def halves(tmp_path):
    paths = tmp_path / "h1.mrc", tmp_path / "h2.mrc"
    for seed, path in enumerate(paths):
        write_map_atomic(path, _blob(seed), voxel_size_angstrom=4.0)
    return paths


def test_half_maps_with_different_voxel_sizes_are_refused(tmp_path, halves):
    write_map_atomic(tmp_path / "h2_44.mrc", _blob(1), voxel_size_angstrom=4.4)
    line = _one_error_line(
        _run("--half1", halves[0], "--half2", tmp_path / "h2_44.mrc", "--out", tmp_path / "v")
    )
    assert "h2_44.mrc: voxel size 4.4 A in the header" in line and "4 A" in line
    # a mask on another grid too
    write_map_atomic(tmp_path / "mask.mrc", np.ones((N, N, N)), voxel_size_angstrom=1.0)
    line = _one_error_line(
        _run("--half1", halves[0], "--half2", halves[1], "--mask", tmp_path / "mask.mrc")
    )
    assert "mask.mrc: voxel size 1 A" in line
    assert not (tmp_path / "v").exists()


@pytest.mark.filterwarnings("ignore:Data array contains")
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_non_finite_and_constant_maps_are_refused(tmp_path, halves):
    nan = _blob(1)
    nan[0, 0, 5] = np.nan
    write_map_atomic(tmp_path / "h2_nan.mrc", nan, voxel_size_angstrom=4.0)
    line = _one_error_line(_run("--half1", halves[0], "--half2", tmp_path / "h2_nan.mrc"))
    assert "h2_nan.mrc: 1 voxel(s) are not finite" in line
    inf = _blob(1)
    inf[3] = np.inf
    write_map_atomic(tmp_path / "truth_inf.mrc", inf, voxel_size_angstrom=4.0)
    line = _one_error_line(
        _run("--half1", halves[0], "--half2", halves[1], "--truth-map", tmp_path / "truth_inf.mrc")
    )
    assert f"truth_inf.mrc: {N * N} voxel(s) are not finite" in line
    for name in ("z1.mrc", "z2.mrc"):
        write_map_atomic(tmp_path / name, np.zeros((N, N, N)), voxel_size_angstrom=4.0)
    line = _one_error_line(_run("--half1", tmp_path / "z1.mrc", "--half2", tmp_path / "z2.mrc"))
    assert "z1.mrc: the map is constant (every voxel 0)" in line


@pytest.mark.parametrize("value", ["-4", "0", "nan"])
def test_an_invalid_angpix_is_named_as_invalid(halves, value):
    line = _one_error_line(_run("--half1", halves[0], "--half2", halves[1], "--angpix", value))
    assert f"--angpix {value}: not a valid voxel size" in line


def test_unknown_symmetries_are_refused(halves):
    for name in ("X9", "C0", "Cs", "D2h", "C100000"):
        line = _one_error_line(_run("--half1", halves[0], "--half2", halves[1], "--sym", name))
        assert f"--sym {name}:" in line
    assert validate_symmetry_name(" c4 ") == "C4"
    assert validate_symmetry_name("i") == "I" and validate_symmetry_name("I3") == "I3"
    with pytest.raises(ValueError, match="unsupported symmetry 'Oh'"):
        validate_symmetry_name("Oh")


def test_unwritable_out_gives_one_line(tmp_path, halves):
    (tmp_path / "afile").write_text("x")
    line = _one_error_line(
        _run("--half1", halves[0], "--half2", halves[1], "--out", tmp_path / "afile")
    )
    assert "afile: exists and is not a folder" in line
    line = _one_error_line(
        _run("--half1", halves[0], "--half2", halves[1], "--out", tmp_path / "afile" / "sub")
    )
    assert "afile" in line and "Not a directory" in line
    if os.geteuid() != 0:  # root may write into a read-only folder
        (tmp_path / "ro").mkdir(mode=0o555)
        line = _one_error_line(
            _run("--half1", halves[0], "--half2", halves[1], "--out", tmp_path / "ro" / "out")
        )
        assert "Permission denied" in line


def test_a_model_mostly_outside_the_map_is_warned_about(tmp_path, halves):
    """The fragment's atoms lie 0-64 A from the origin (centred at 32 A); the 24^3 map of
    4 A voxels spans 96 A: shifted by 200 A every atom lies outside."""
    import gemmi

    structure = gemmi.read_structure(str(FRAGMENT))
    structure[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(200, 0, 0)))
    far = tmp_path / "far.pdb"
    structure.write_pdb(str(far))
    out = tmp_path / "out"
    result = _run(
        "--half1", halves[0], "--half2", halves[1], "--model", far, "--out", out,
        "--local-window", 8,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "100 % of the model's 455 atoms lie outside the map box" in result.output
    data = json.loads((out / "validation.json").read_text())
    assert any("outside the map box" in w for w in data["warnings"])
    # the model in place: no warning
    inside = _run(
        "--half1", halves[0], "--half2", halves[1], "--model", FRAGMENT, "--out", tmp_path / "in",
        "--local-window", 8,
    )  # fmt: skip
    assert inside.exit_code == 0 and "outside the map box" not in inside.output


def test_fraction_outside_box():
    xyz = np.array([[0.0, 0.0, 0.0], [95.0, 10.0, 10.0], [96.0, 10.0, 10.0], [-3.0, 0.0, 0.0]])
    # a 24^3 box of 4 A voxels: voxel centres at 0..92 A, voxel edges at -2..94 A
    assert fraction_outside_box(xyz, 24, voxel_size_angstrom=4.0) == 0.75
    assert fraction_outside_box(xyz, 24, voxel_size_angstrom=4.0, origin_angstrom=(-4, 0, 0)) == 0.5
    assert fraction_outside_box(np.zeros((0, 3)), 24, voxel_size_angstrom=4.0) == 0.0


def _particles_star(path: Path, names: list[str]) -> Path:
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnImagePixelSize": [4.0], "rlnImageSize": [N],
         "rlnImageDimensionality": [2]}
    )  # fmt: skip
    angles = np.linspace(0.0, 90.0, len(names))
    particles = pd.DataFrame(
        {"rlnImageName": names, "rlnOpticsGroup": 1, "rlnAngleRot": angles,
         "rlnAngleTilt": angles, "rlnAnglePsi": angles, "rlnOriginXAngst": 0.0,
         "rlnOriginYAngst": 0.0}
    )  # fmt: skip
    starfile.write({"optics": optics, "particles": particles}, path)
    return path


def test_particles_sharing_none_with_the_truth_are_warned_about(tmp_path, halves):
    truth = _particles_star(tmp_path / "truth.star", [f"{i:06d}@a.mrcs" for i in range(1, 9)])
    other = _particles_star(tmp_path / "other.star", [f"{i:06d}@b.mrcs" for i in range(1, 9)])
    out = tmp_path / "out"
    result = _run(
        "--half1", halves[0], "--half2", halves[1], "--particles", other, "--truth-star", truth,
        "--out", out, "--local-window", 8,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "share no particle" in result.output and "other.star" in result.output
    data = json.loads((out / "validation.json").read_text())
    assert any("share no particle" in w for w in data["warnings"])
    same = _run(
        "--half1", halves[0], "--half2", halves[1], "--particles", truth, "--truth-star", truth,
        "--out", tmp_path / "same", "--local-window", 8,
    )  # fmt: skip
    assert same.exit_code == 0 and "share no particle" not in same.output
    data = json.loads((tmp_path / "same" / "validation.json").read_text())
    assert data["pose_errors"]["n_particles"] == 8 and data["warnings"] == []


def test_a_poses_star_without_image_names_is_refused_in_one_line(tmp_path, halves):
    truth = _particles_star(tmp_path / "truth.star", [f"{i:06d}@a.mrcs" for i in range(1, 9)])
    nameless = tmp_path / "nameless.star"
    blocks = starfile.read(truth, always_dict=True)
    blocks["particles"] = blocks["particles"].drop(columns="rlnImageName")
    starfile.write(blocks, nameless)
    line = _one_error_line(
        _run("--half1", halves[0], "--half2", halves[1], "--particles", nameless,
             "--truth-star", truth, "--out", tmp_path / "out", "--local-window", 8)
    )  # fmt: skip
    assert "nameless.star: no _rlnImageName column" in line
