"""``cryoprior enhance``: the prior applied once to a refinement's final half-maps.

On the final half-maps of a real RELION 3.1 auto-refine made in this test session (the job's
voxel size and particle diameter read from its STAR files) the command must write exactly what
the library function the benchmark's post-processing arm uses gives; bad inputs end in one
line naming the file.
"""

from __future__ import annotations

import json
import warnings

import mrcfile
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cryoprior.cli.enhance import enhance
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion import find_relion_job_files
from cryoprior.regularizers.guard import HOOK_GUARD
from cryoprior.regularizers.postprocess import postprocess_half_maps, prior_enhancer


def _invoke(*args):
    app = typer.Typer()
    app.command()(enhance)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.relion
def test_enhance_a_relion_job_equals_the_library(stock_run, demo_dataset, tmp_path):
    _, refine = stock_run
    job = refine.output_root.parent
    files = find_relion_job_files(job)
    before = read_map(files.half_map_1)
    out = tmp_path / "job_prior_once"
    result = _invoke(job, "--out", out)
    assert result.exit_code == 0, result.output
    h1 = read_map(files.half_map_1, dtype=np.float64)
    h2 = read_map(files.half_map_2, dtype=np.float64)
    np.testing.assert_array_equal(read_map(files.half_map_1), before)  # inputs untouched
    record = json.loads(out.with_suffix(".json").read_text())
    voxel = demo_dataset.voxel_size_angstrom
    assert record["voxel_size_angstrom"] == pytest.approx(voxel, rel=1e-5)
    # the job's --particle_diameter, from its optimiser STAR
    assert record["particle_diameter_angstrom"] > 0
    enhance_one = prior_enhancer(
        voxel_size_angstrom=record["voxel_size_angstrom"],
        particle_diameter_angstrom=record["particle_diameter_angstrom"],
        num_threads=0,
    )
    p1, p2, info = postprocess_half_maps(h1, h2, enhance_one, guard=HOOK_GUARD)
    got1 = read_map(f"{out}_half1.mrc", dtype=np.float64)
    got2 = read_map(f"{out}_half2.mrc", dtype=np.float64)
    full = read_map(f"{out}.mrc", dtype=np.float64)
    scale = np.abs(p1).max()
    np.testing.assert_allclose(got1, p1, atol=1e-5 * scale)
    np.testing.assert_allclose(got2, p2, atol=1e-5 * scale)
    np.testing.assert_allclose(full, (got1 + got2) / 2, atol=1e-5 * scale)
    assert not np.allclose(got1, h1, atol=1e-3 * scale)  # the prior did something
    assert record["guard"]["cutoff_shell"] == info["cutoff_shell"]
    with mrcfile.open(f"{out}.mrc") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(voxel, rel=1e-5)


def _half_maps(tmp_path, shape=(24, 24, 24), voxel=4.0):
    rng = np.random.default_rng(0)
    signal = rng.normal(size=shape)
    paths = []
    for i in (1, 2):
        path = tmp_path / f"h{i}.mrc"
        write_map_atomic(
            path, (signal + rng.normal(size=shape)).astype(np.float32), voxel_size_angstrom=voxel
        )
        paths.append(path)
    return paths


def test_enhance_refuses_a_nan_half_map_naming_it(tmp_path):
    h1, h2 = _half_maps(tmp_path)
    data = read_map(h2)
    data[3, 4, 5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile warns of the NaN it writes
        write_map_atomic(h2, data, voxel_size_angstrom=4.0)
    result = _invoke("--half1", h1, "--half2", h2, "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert str(h2) in result.output and "not finite" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.mrc").exists()


def test_enhance_refuses_half_maps_of_different_shapes(tmp_path):
    h1, _ = _half_maps(tmp_path)
    other = tmp_path / "other.mrc"
    write_map_atomic(
        other, np.ones((20, 20, 20), np.float32) * np.arange(20), voxel_size_angstrom=4.0
    )
    result = _invoke("--half1", h1, "--half2", other, "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert str(other) in result.output and "shape" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--half2", "{h2}"], "give a RELION job, or both --half1 and --half2"),
        (["--half1", "{h1}", "--half2", "{tmp}/missing.mrc"], "missing.mrc"),
        (["--half1", "{h1}", "--half2", "{h2}", "--angpix", "-1"], "--angpix -1"),
        (["--half1", "{h1}", "--half2", "{h2}", "--out", "{tmp}/no/such/x"], "does not exist"),
        (["{tmp}/no_job"], "no_job"),
    ],
)
def test_enhance_bad_inputs_give_one_line(tmp_path, args, expected):
    h1, h2 = _half_maps(tmp_path)
    filled = [a.format(h1=h1, h2=h2, tmp=tmp_path) for a in args]
    result = _invoke(*filled)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert result.output.strip().startswith("error:")
    assert "Traceback" not in result.output


def test_enhance_warns_when_the_guard_leaves_nothing(tmp_path):
    # white-noise "half-maps" sharing white noise: nothing protein-like, so the prior's output
    # does not correlate with the other half in any shell and the guard removes all of it
    h1, h2 = _half_maps(tmp_path)
    result = _invoke("--half1", h1, "--half2", h2, "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    assert "warning: the guard removed almost all" in result.output
    record = json.loads((tmp_path / "x.json").read_text())
    assert min(record["guard"]["power_removed_fraction"]) > 0.99
    assert read_map(tmp_path / "x.mrc").shape == (24, 24, 24)
