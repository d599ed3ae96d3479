"""``cryoprior validate``: on a finished RELION 3.1 auto-refine made in this test session, on
explicit maps with an atomic model, and how it finds a job's files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import starfile
import typer
from typer.testing import CliRunner

from cryoprior.cli.validate import validate
from cryoprior.fourier import soft_sphere
from cryoprior.io.model_map import model_to_map
from cryoprior.io.mrc import write_map_atomic
from cryoprior.io.relion import find_relion_job_files

FRAGMENT = Path(__file__).parent / "data" / "validate" / "6bdf_chainA_fragment.pdb"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(validate)
    return app


def _invoke(*args: str):
    result = CliRunner().invoke(_app(), [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.relion
def test_validate_runs_on_a_relion_job(stock_run, demo_dataset, tmp_path):
    workdir, refine = stock_run
    job = refine.output_root.parent
    out = tmp_path / "validation"
    result = _invoke(
        job,
        "--truth-map", workdir / demo_dataset.truth_map,
        "--truth-star", workdir / demo_dataset.particles_star,
        "--out", out,
        "--local-window", 12,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "FSC 0.143 resolution" in result.output
    data = json.loads((out / "validation.json").read_text())
    assert data["box_size"] == demo_dataset.box_size
    assert data["voxel_size_angstrom"] == demo_dataset.voxel_size_angstrom
    assert data["settings"]["symmetry"] == "C1"  # from run_sampling.star
    gold = data["gold_standard_fsc"]
    assert 2 * demo_dataset.voxel_size_angstrom <= gold["resolution_0143_angstrom"] < 60
    # our unmasked FSC of the job's final half-maps against relion_postprocess's on the same
    # files (the external reference for this estimator; a soft sphere only lets it run to the
    # end). RELION's printed "final resolution" is not compared: relion_refine computes it
    # from the back-projector's Fourier data with the halves averaged below 40 A, a different
    # estimator, and on this tiny noisy run the two crossings differ by up to 2 shells.
    unmasked = np.array(gold["curves"]["unmasked"]["fsc"])
    relion_unmasked = _relion_postprocess_unmasked_fsc(
        job / "run_half1_class001_unfil.mrc", demo_dataset, tmp_path / "pp"
    )
    assert unmasked.shape == relion_unmasked.shape
    assert np.abs(unmasked - relion_unmasked).max() < 1e-4
    for key in ("truth", "pose_errors", "views_refined", "views_true", "attraction"):
        assert key in data, key
    assert data["pose_errors"]["n_particles"] == 400
    assert 0.0 <= data["pose_errors"]["angular_error_degrees"]["median"] <= 180.0
    assert data["truth"]["correlation_full_map"] > 0.5
    assert sum(map(sum, data["views_refined"]["counts"])) == 400
    assert data["inputs"]["half_map_1"].endswith("run_half1_class001_unfil.mrc")
    for name in (
        "fsc.png",
        "local_resolution.png",
        "view_distribution.png",
        "directional_resolution.png",
    ):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name


def _relion_postprocess_unmasked_fsc(half1: Path, dataset, work: Path) -> np.ndarray:
    """relion_postprocess's unmasked FSC of ``half1`` and its ``half2`` twin."""
    (work / "pp").mkdir(parents=True)
    n = dataset.box_size
    mask = soft_sphere(n, radius_voxels=n // 2 - 4, edge_width_voxels=3)
    write_map_atomic(work / "mask.mrc", mask, voxel_size_angstrom=dataset.voxel_size_angstrom)
    cmd = [
        "relion_postprocess", "--i", str(half1), "--mask", "mask.mrc",
        "--angpix", str(dataset.voxel_size_angstrom), "--adhoc_bfac", "0", "--o", "pp/postprocess",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = starfile.read(work / "pp" / "postprocess.star", always_dict=True)["fsc"]
    return table["rlnFourierShellCorrelationUnmaskedMaps"].to_numpy()


def test_validate_on_explicit_maps_with_an_atomic_model(tmp_path):
    n = 48
    # the fragment (centred at 32 A) in a 48^3 box of 1 A voxels: shift it by -8 A
    import gemmi

    structure = gemmi.read_structure(str(FRAGMENT))
    structure[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(-8, -8, -8)))
    model_path = tmp_path / "model.pdb"
    structure.write_pdb(str(model_path))
    truth = model_to_map(model_path, box_size=n, voxel_size_angstrom=1.0, blur_angstrom2=40)
    rng = np.random.default_rng(0)
    sd = truth.std()
    for name, array in (
        ("h1.mrc", truth + rng.normal(scale=sd, size=truth.shape)),
        ("h2.mrc", truth + rng.normal(scale=sd, size=truth.shape)),
        ("truth.mrc", truth),
    ):
        write_map_atomic(tmp_path / name, array, voxel_size_angstrom=1.0)
    out = tmp_path / "out"
    result = _invoke(
        "--half1", tmp_path / "h1.mrc",
        "--half2", tmp_path / "h2.mrc",
        "--truth-map", tmp_path / "truth.mrc",
        "--model", model_path,
        "--out", out,
        "--local-window", 16,
        "--no-per-atom",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((out / "validation.json").read_text())
    assert data["voxel_size_angstrom"] == 1.0  # from the MRC header
    assert data["q_score"]["n_atoms"] == 455
    assert 0.3 < data["q_score"]["mean"] < 1.0
    assert "per_atom" not in data["q_score"] and "per_atom_angstrom" not in data["fsc_q"]
    assert abs(data["fsc_q"]["mean_angstrom"]) < 2.0
    assert "pose_errors" not in data
    assert not (out / "view_distribution.png").exists()
    assert "mean Q-score" in result.output and "mean FSC-Q" in result.output


def test_missing_inputs_fail_with_a_message(tmp_path):
    result = _invoke("--half1", tmp_path / "nope.mrc", "--half2", tmp_path / "nope.mrc")
    assert result.exit_code != 0
    assert "nope.mrc" in result.output
    result = _invoke("--out", tmp_path / "x")
    assert result.exit_code != 0


def test_job_files_are_found_finished_or_not(tmp_path):
    job = tmp_path / "Refine3D" / "job001"
    job.mkdir(parents=True)
    for it in (1, 2):
        for half in (1, 2):
            (job / f"run_it{it:03d}_half{half}_class001.mrc").touch()
        (job / f"run_it{it:03d}_data.star").touch()
    unfinished = find_relion_job_files(job)
    assert not unfinished.finished
    assert unfinished.half_map_1.name == "run_it002_half1_class001.mrc"
    assert unfinished.particles_star.name == "run_it002_data.star"
    assert unfinished.full_map is None
    for name in (
        "run_half1_class001_unfil.mrc",
        "run_half2_class001_unfil.mrc",
        "run_class001.mrc",
        "run_data.star",
    ):
        (job / name).touch()
    finished = find_relion_job_files(job)
    assert finished.finished and finished.output_root == job / "run"
    assert finished.full_map == job / "run_class001.mrc"
    assert finished.sampling_star is None
    assert find_relion_job_files(job / "run").half_map_2.name == "run_half2_class001_unfil.mrc"
    with pytest.raises(FileNotFoundError):
        find_relion_job_files(tmp_path)
