"""Readers for RELION's external-reconstruction job STAR and per-iteration files.

Three sources of files:

* a real RELION 3.1 refinement run once per module (``relion_run`` fixture, marked
  ``relion``; skipped when the binaries are not on PATH);
* real RELION 3.1.3 files kept in ``tests/data/io`` (see its README for how they were made),
  so the readers are checked on real files on machines without RELION as well;
* synthetic 4.0 / 5.0 variants and malformed files derived from those.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from cryoprior.errors import InputFileError
from cryoprior.io import (
    ExternalReconstructName,
    IterationFiles,
    ModelInfo,
    OptimiserInfo,
    ParticlesTable,
    SamplingInfo,
    find_iteration_files,
    parse_external_reconstruct_name,
    read_external_reconstruct_arrays,
    read_external_reconstruct_job,
    read_model_star,
    read_optimiser_star,
    read_particles_star,
    read_sampling_star,
    read_star,
    write_map_atomic,
    write_star_atomic,
)

DATA = Path(__file__).parent / "data" / "io"
SAMPLING = DATA / "run_it001_sampling.star"
OPTIMISER = DATA / "run_it001_optimiser.star"
MODEL = DATA / "run_it001_half1_model.star"
PARTICLES = DATA / "run_it001_data.star"
JOB_31 = DATA / "job_relion31.star"

BOX = 32
PIXEL_ANGSTROM = 4.0
N_SHELLS = BOX // 2 + 1
REFINE_ARGS = (
    "--auto_refine --split_random_halves --i proj.star --ref ref.mrc --ini_high 30 --pad 2 "
    "--particle_diameter 100 --flatten_solvent --zero_mask --oversampling 1 --healpix_order 1 "
    "--auto_local_healpix_order 2 --offset_range 2 --offset_step 2 --sym C1 "
    "--low_resol_join_halves 40 --j 1 --dont_combine_weights_via_disc --random_seed 0 "
    "--auto_iter_max 2"
).split()


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _assert_names_file(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert path.name in message, message
    assert excinfo.value.path == path
    return message


def _rewrite(path: Path, dest: Path, edit) -> Path:
    """Copy a STAR file through read_star / write_star_atomic, editing its blocks."""
    blocks = read_star(path)
    edit(blocks)
    return write_star_atomic(dest, blocks)


def _text_variant(path: Path, dest: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    dest.write_text(text.replace(old, new))
    return dest


# ---------------------------------------------------------------------------------------
# A real RELION 3.1 refinement, run once
# ---------------------------------------------------------------------------------------


def _phantom(box: int, *, n_atoms: int, sigma_px: float, seed: int) -> np.ndarray:
    """(box, box, box) float32 sum of isotropic Gaussian blobs near the centre."""
    rng = np.random.default_rng(seed)
    grid = np.indices((box,) * 3, dtype=np.float64) - box // 2
    volume = np.zeros((box,) * 3)
    for centre in rng.uniform(-7.0, 7.0, size=(n_atoms, 3)):
        r2 = np.sum((grid - centre[:, None, None, None]) ** 2, axis=0)
        volume += np.exp(-r2 / (2.0 * sigma_px**2))
    return volume.astype(np.float32)


def _write_mrc(path: Path, data: np.ndarray) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = PIXEL_ANGSTROM


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed with rc {result.returncode}:\n"
            f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )


@pytest.fixture(scope="module")
def relion_run(tmp_path_factory) -> Path:
    """Output root of a tiny real RELION 3.1 auto-refine (2 iterations, ~15 s on 2 cores)."""
    missing = [b for b in ("relion_refine_mpi", "relion_project", "mpirun") if not shutil.which(b)]
    if missing:
        pytest.skip(f"RELION binaries not on PATH: {', '.join(missing)}")
    work = tmp_path_factory.mktemp("relion31")
    phantom = _phantom(BOX, n_atoms=40, sigma_px=1.5, seed=0)
    _write_mrc(work / "phantom.mrc", phantom)
    _write_mrc(work / "ref.mrc", gaussian_filter(phantom, 2.5))
    _run(
        ["relion_project", "--i", "phantom.mrc", "--o", "proj", "--nr_uniform", "200",
         "--angpix", str(PIXEL_ANGSTROM)],
        work,
    )  # fmt: skip
    with mrcfile.open(work / "proj.mrcs") as mrc:
        clean = np.array(mrc.data, dtype=np.float32)
    noise_sigma = 1.5 * float(clean.std(axis=(1, 2)).mean())
    noisy = clean + np.random.default_rng(1).normal(0.0, noise_sigma, clean.shape)
    _write_mrc(work / "proj.mrcs", noisy)
    (work / "Refine3D").mkdir()
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "3"]
    command += ["relion_refine_mpi", "--o", "Refine3D/run", *REFINE_ARGS]
    _run(command, work)
    return work / "Refine3D" / "run"


@pytest.mark.relion
class TestRealRelion31Run:
    def test_iteration_files(self, relion_run):
        files = find_iteration_files(relion_run, 1)
        assert isinstance(files, IterationFiles)
        assert files.exists() == {
            "sampling_star": True,
            "optimiser_star": True,
            "data_star": True,
            "half1_model_star": True,
            "half2_model_star": True,
            "model_star": False,  # split halves: no joined model per iteration
        }
        assert files.existing_model_star == files.half1_model_star
        assert not any(find_iteration_files(relion_run, 99).exists().values())

    def test_sampling(self, relion_run):
        info = read_sampling_star(find_iteration_files(relion_run, 1).sampling_star)
        assert info.healpix_order == 1
        assert info.healpix_order_original == 1
        assert info.psi_step_degrees == pytest.approx(30.0)  # 60 / 2**1
        # --offset_range 2 --offset_step 2 are pixels on the command line, Angstrom in the file
        assert info.offset_range_angstrom == pytest.approx(2 * PIXEL_ANGSTROM)
        assert info.offset_step_angstrom == pytest.approx(2 * PIXEL_ANGSTROM)
        assert info.symmetry_group == "C1"
        assert info.is_3d is True
        assert info.version == 30001

    def test_optimiser(self, relion_run):
        info = read_optimiser_star(find_iteration_files(relion_run, 1).optimiser_star)
        assert info.current_iteration == 1
        assert info.do_auto_refine is True
        assert info.do_split_random_halves is True
        assert info.auto_local_searches_healpix_order == 2
        assert info.has_converged is False
        assert info.particle_diameter_angstrom == pytest.approx(100.0)
        assert info.solvent_mask_name is None  # RELION writes "None"
        assert info.do_solvent_fsc_correction is False
        assert info.do_external_reconstruct is False
        assert info.command_line.startswith("--o Refine3D/run --auto_refine")
        assert "--auto_local_healpix_order 2" in info.command_line
        assert info.version == 30001

    def test_best_resolution_is_stored_as_inverse_angstrom(self, relion_run):
        files = find_iteration_files(relion_run, 1)
        optimiser = read_optimiser_star(files.optimiser_star)
        model = read_model_star(files.half1_model_star)
        # After the first iteration the best resolution so far is the current one; the
        # optimiser stores 1/A, the model Angstrom.
        assert optimiser.best_resolution_angstrom == pytest.approx(
            model.current_resolution_angstrom, rel=1e-4
        )
        # iteration 0 holds RELION's placeholder 1/999 A
        start = read_optimiser_star(find_iteration_files(relion_run, 0).optimiser_star)
        assert start.best_resolution_angstrom == pytest.approx(999.0, rel=1e-5)

    def test_model(self, relion_run):
        model = read_model_star(find_iteration_files(relion_run, 1).half1_model_star)
        assert model.pixel_size_angstrom == pytest.approx(PIXEL_ANGSTROM)
        assert model.padding_factor == pytest.approx(2.0)
        assert model.original_image_size == BOX
        assert model.nr_classes == 1
        assert model.orientational_prior_mode == 0  # healpix order 1 < 2: global searches
        assert 0 < model.current_image_size <= BOX
        # Angstrom, at an original-box shell: N * pixel / resolution is a whole shell number
        shell = BOX * PIXEL_ANGSTROM / model.current_resolution_angstrom
        assert 2 * PIXEL_ANGSTROM <= model.current_resolution_angstrom < 999.0
        assert shell == pytest.approx(round(shell), abs=1e-4)
        np.testing.assert_array_equal(model.spectral_index, np.arange(N_SHELLS))
        np.testing.assert_allclose(
            model.resolution_per_angstrom, np.arange(N_SHELLS) / (BOX * PIXEL_ANGSTROM), atol=1e-6
        )
        for array in (model.gold_standard_fsc, model.ssnr, model.reference_tau2):
            assert array.shape == (N_SHELLS,) and array.dtype == np.float64
        assert model.gold_standard_fsc[0] == pytest.approx(1.0)
        assert np.all(model.reference_tau2 >= 0) and np.all(model.reference_sigma2 >= 0)
        start = read_model_star(find_iteration_files(relion_run, 0).half1_model_star)
        assert start.current_resolution_angstrom == np.inf
        assert start.current_image_size == 0

    def test_particles(self, relion_run):
        table = read_particles_star(find_iteration_files(relion_run, 1).data_star)
        assert table.n_particles == 200
        assert table.common_pixel_size_angstrom == pytest.approx(PIXEL_ANGSTROM)
        np.testing.assert_array_equal(table.image_size, np.full(200, BOX))
        assert set(table.particles["rlnRandomSubset"]) == {1, 2}
        assert table.version == 30001


# ---------------------------------------------------------------------------------------
# The same readers on the stored real files (no RELION needed)
# ---------------------------------------------------------------------------------------


def test_read_sampling_star_stored():
    info = read_sampling_star(SAMPLING)
    assert info == SamplingInfo(
        star_path=SAMPLING,
        healpix_order=1,
        healpix_order_original=1,
        psi_step_degrees=30.0,
        offset_range_angstrom=8.0,
        offset_step_angstrom=8.0,
        symmetry_group="C1",
        is_3d=True,
        version=30001,
    )
    with pytest.raises(AttributeError):
        info.healpix_order = 2  # frozen


def test_read_optimiser_star_stored():
    info = read_optimiser_star(OPTIMISER)
    assert isinstance(info, OptimiserInfo)
    assert (info.current_iteration, info.auto_local_searches_healpix_order) == (1, 2)
    assert info.do_auto_refine and info.do_split_random_halves and not info.has_converged
    assert info.particle_diameter_angstrom == 100.0
    assert info.solvent_mask_name is None
    assert info.do_solvent_fsc_correction is False and info.do_external_reconstruct is False
    # the file holds rlnBestResolutionThusFar 0.046875 (1/A)
    assert info.best_resolution_angstrom == pytest.approx(1 / 0.046875)
    assert info.command_line.split()[:2] == ["--o", "Refine3D/run"]
    assert info.command_line.endswith("--auto_iter_max 2")
    assert info.version == 30001


def test_read_model_star_stored():
    model = read_model_star(MODEL)
    assert isinstance(model, ModelInfo)
    assert model.current_resolution_angstrom == pytest.approx(21.333333)
    assert model.current_image_size == 28
    assert (model.pixel_size_angstrom, model.padding_factor) == (4.0, 2.0)
    assert (model.original_image_size, model.orientational_prior_mode, model.nr_classes) == (
        32,
        0,
        1,
    )
    assert model.spectral_index.dtype == np.int64
    np.testing.assert_array_equal(model.spectral_index, np.arange(N_SHELLS))
    assert model.resolution_per_angstrom[6] == pytest.approx(0.046875)
    assert model.gold_standard_fsc[12] == pytest.approx(-0.00436)
    assert model.ssnr[0] == pytest.approx(999.0)
    assert model.reference_tau2[1] == pytest.approx(1.399327)
    assert model.reference_sigma2[0] == pytest.approx(1.040049e-04)
    assert model.version == 30001


def test_model_tau2_matches_job_star_of_same_iteration():
    """The job STAR's tau2 / FSC are the model's (same run recipe, written by the same call)."""
    job = read_external_reconstruct_job(JOB_31)
    model = read_model_star(MODEL)
    np.testing.assert_allclose(job.tau2, model.reference_tau2, rtol=1e-6)
    np.testing.assert_allclose(job.gold_standard_fsc, model.gold_standard_fsc, atol=1e-6)


def test_read_particles_star_stored():
    table = read_particles_star(PARTICLES)
    assert isinstance(table, ParticlesTable)
    assert table.n_particles == 5
    assert list(table.optics["rlnOpticsGroupName"]) == ["optics1"]
    assert table.pixel_size_angstrom.tolist() == [4.0] * 5
    assert table.image_size.dtype == np.int64 and table.image_size.tolist() == [32] * 5
    assert table.version == 30001


def test_read_particles_star_per_group_values_and_fallback(tmp_path):
    def two_groups(blocks):
        optics = blocks["optics"]
        second = optics.assign(rlnOpticsGroup=2, rlnImagePixelSize=1.5, rlnImageSize=64)
        both = pd.concat([optics, second], ignore_index=True)
        # older files name the optics pixel size rlnPixelSize
        blocks["optics"] = both.rename(columns={"rlnImagePixelSize": "rlnPixelSize"})
        blocks["particles"].loc[[1, 3], "rlnOpticsGroup"] = 2

    table = read_particles_star(_rewrite(PARTICLES, tmp_path / "two_groups.star", two_groups))
    assert table.pixel_size_angstrom.tolist() == [4.0, 1.5, 4.0, 1.5, 4.0]
    assert table.image_size.tolist() == [32, 64, 32, 64, 32]
    assert table.common_pixel_size_angstrom is None


@pytest.mark.parametrize(
    ("reader", "path"),
    [
        (read_sampling_star, SAMPLING),
        (read_optimiser_star, OPTIMISER),
        (read_model_star, MODEL),
        (read_particles_star, PARTICLES),
    ],
)
def test_relion5_version_comment(tmp_path, reader, path):
    variant = _text_variant(path, tmp_path / path.name, "# version 30001", "# version 50001")
    assert reader(variant).version == 50001


# ---------------------------------------------------------------------------------------
# Job STAR: 3.1 / 4.0 / 5.0
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pixel", "diameter", "version"),
    [
        ("job_relion31.star", None, None, 30001),
        ("job_relion40.star", 4.0, 100.0, 30001),
        ("job_relion50.star", 4.0, 100.0, 50001),
    ],
)
def test_read_external_reconstruct_job_versions(name, pixel, diameter, version):
    job = read_external_reconstruct_job(DATA / name)
    assert job.pixel_size_angstrom == pixel
    assert job.particle_diameter_angstrom == diameter
    assert job.star_version == version
    assert (job.original_image_size, job.current_image_size) == (32, 28)
    assert (job.padding_factor, job.tau2_fudge, job.reference_dimensionality) == (2.0, 1.0, 3)
    assert job.padded_size == 64
    assert job.result_path == Path("Ext/run_it001_half1_class001_external_reconstruct.mrc")
    assert job.result_star_path.name == "run_it001_half1_class001_external_reconstruct_out.star"
    np.testing.assert_array_equal(job.spectral_index, np.arange(N_SHELLS))
    assert job.tau2[1] == pytest.approx(1.399327) and job.tau2[-1] == 0.0
    assert job.gold_standard_fsc[12] == pytest.approx(-0.00436)
    assert job.name is None  # parsed from the STAR's own file name, renamed here


# ---------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------


def test_parse_name_underscores_in_root_and_iteration_over_99():
    name = parse_external_reconstruct_name(
        "Refine3D/job_001/my_run_it105_half2_class001_external_reconstruct.star"
    )
    assert name == ExternalReconstructName("Refine3D/job_001/my_run", 105, 2, "class", 1)
    assert name.is_half
    sibling = "Refine3D/job_001/my_run_it105_half1_class001_external_reconstruct.star"
    assert name.sibling(1) == sibling


def test_parse_name_final_joined_call():
    name = parse_external_reconstruct_name(
        Path("Refine3D/job001/run_it012_class001_external_reconstruct.star")
    )
    assert name == ExternalReconstructName("Refine3D/job001/run", 12, None, "class", 1)
    assert not name.is_half


def test_parse_name_body_and_it_in_folder_name():
    name = parse_external_reconstruct_name(
        "MultiBody/job_it001/run_it003_half1_body002_external_reconstruct.star"
    )
    assert name == ExternalReconstructName("MultiBody/job_it001/run", 3, 1, "body", 2)


@pytest.mark.parametrize(
    "path",
    [
        "Refine3D/job001/run_it001_half1_class001_external_reconstruct.mrc",
        "Recon/rec_external_reconstruct.star",  # relion_reconstruct: no class number
        "something.star",
    ],
)
def test_parse_name_rejects_other_names(path):
    assert parse_external_reconstruct_name(path) is None


@pytest.mark.parametrize(
    ("iteration", "expected"),
    [(0, "run_it000_sampling.star"), (5, "run_it005_sampling.star"),
     (105, "run_it105_sampling.star"), (1000, "run_it1000_sampling.star")],
)  # fmt: skip
def test_find_iteration_files_names(iteration, expected):
    files = find_iteration_files("Refine3D/job_001/run", iteration)
    assert files.sampling_star == Path("Refine3D/job_001") / expected
    stem = f"Refine3D/job_001/run_it{iteration:03d}"
    assert files.optimiser_star == Path(f"{stem}_optimiser.star")
    assert files.data_star == Path(f"{stem}_data.star")
    assert files.half1_model_star == Path(f"{stem}_half1_model.star")
    assert files.model_star == Path(f"{stem}_model.star")


def test_find_iteration_files_exists_never_raises(tmp_path):
    files = find_iteration_files(tmp_path / "run", 3)
    assert not any(files.exists().values())
    assert files.existing_model_star is None
    files.model_star.touch()
    files.sampling_star.touch()
    assert files.exists()["model_star"] and files.exists()["sampling_star"]
    assert not files.exists()["half1_model_star"]
    assert files.existing_model_star == files.model_star
    with pytest.raises(ValueError):
        find_iteration_files(tmp_path / "run", -1)


# ---------------------------------------------------------------------------------------
# Malformed inputs: every reader raises InputFileError naming the file
# ---------------------------------------------------------------------------------------

READERS = [
    read_external_reconstruct_job,
    read_sampling_star,
    read_optimiser_star,
    read_model_star,
    read_particles_star,
]


@pytest.mark.parametrize("reader", READERS)
def test_missing_file(tmp_path, reader):
    path = tmp_path / "absent_file.star"
    with pytest.raises(InputFileError) as excinfo:
        reader(path)
    assert "does not exist" in _assert_names_file(excinfo, path)


@pytest.mark.parametrize("reader", READERS)
def test_garbage_star(tmp_path, reader):
    path = tmp_path / "garbage.star"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes())
    with pytest.raises(InputFileError) as excinfo:
        reader(path)
    _assert_names_file(excinfo, path)


@pytest.mark.parametrize(
    ("reader", "block"),
    [
        (read_external_reconstruct_job, "external_reconstruct_general"),
        (read_sampling_star, "sampling_general"),
        (read_optimiser_star, "optimiser_general"),
        (read_model_star, "model_general"),
        (read_particles_star, "optics"),
    ],
)
def test_wrong_kind_of_star_names_missing_block(tmp_path, reader, block):
    path = shutil.copy(JOB_31 if block != "external_reconstruct_general" else SAMPLING, tmp_path)
    with pytest.raises(InputFileError) as excinfo:
        reader(Path(path))
    assert f"data_{block}" in _assert_names_file(excinfo, Path(path))


def test_job_truncated(tmp_path):
    path = tmp_path / "truncated_external_reconstruct.star"
    path.write_text(JOB_31.read_text()[:500])  # cut inside data_external_reconstruct_general
    with pytest.raises(InputFileError) as excinfo:
        read_external_reconstruct_job(path)
    assert "missing label" in _assert_names_file(excinfo, path)


def test_job_missing_label(tmp_path):
    path = _rewrite(
        JOB_31,
        tmp_path / "no_size_external_reconstruct.star",
        lambda b: b["external_reconstruct_general"].pop("rlnOriginalImageSize"),
    )
    with pytest.raises(InputFileError) as excinfo:
        read_external_reconstruct_job(path)
    assert "rlnOriginalImageSize" in _assert_names_file(excinfo, path)


def test_job_non_numeric_tau2(tmp_path):
    path = _text_variant(JOB_31, tmp_path / "bad_tau2.star", "1.399327", "abc")
    with pytest.raises(InputFileError) as excinfo:
        read_external_reconstruct_job(path)
    assert "non-numeric" in _assert_names_file(excinfo, path)


def _set(block: str, label: str, value):
    def edit(blocks):
        blocks[block][label] = value

    return edit


def _drop(block: str, label: str):
    def edit(blocks):
        del blocks[block][label]

    return edit


def _drop_column(block: str, label: str):
    def edit(blocks):
        blocks[block] = blocks[block].drop(columns=[label])

    return edit


@pytest.mark.parametrize(
    ("reader", "source", "edit", "expected"),
    [
        (read_sampling_star, SAMPLING, _drop("sampling_general", "rlnHealpixOrder"),
         "missing label _rlnHealpixOrder"),
        (read_sampling_star, SAMPLING, _set("sampling_general", "rlnHealpixOrder", "abc"),
         "_rlnHealpixOrder"),
        (read_sampling_star, SAMPLING, _set("sampling_general", "rlnHealpixOrder", 1.5),
         "not a valid integer"),
        (read_sampling_star, SAMPLING, _set("sampling_general", "rlnIs3DSampling", 2),
         "_rlnIs3DSampling"),
        (read_sampling_star, SAMPLING, _set("sampling_general", "rlnOffsetStep", "eight"),
         "_rlnOffsetStep"),
        (read_optimiser_star, OPTIMISER, _drop("optimiser_general", "rlnCurrentIteration"),
         "missing label _rlnCurrentIteration"),
        (read_optimiser_star, OPTIMISER, _set("optimiser_general", "rlnParticleDiameter", "x"),
         "_rlnParticleDiameter"),
        (read_model_star, MODEL, _drop("model_general", "rlnPixelSize"),
         "missing label _rlnPixelSize"),
        (read_model_star, MODEL, _set("model_general", "rlnCurrentImageSize", "big"),
         "_rlnCurrentImageSize"),
        (read_model_star, MODEL, lambda b: b.pop("model_class_1"), "data_model_class_1"),
        (read_particles_star, PARTICLES, _drop_column("optics", "rlnImageSize"),
         "_rlnImageSize"),
        (read_particles_star, PARTICLES, _set("particles", "rlnOpticsGroup", 7),
         "optics groups [7]"),
        # the job reader shares the casting helpers (was int(), which truncated 32.5 to 32)
        (read_external_reconstruct_job, JOB_31,
         _set("external_reconstruct_general", "rlnOriginalImageSize", 32.5),
         "_rlnOriginalImageSize in data_external_reconstruct_general is not a valid integer"),
        (read_external_reconstruct_job, JOB_31,
         _drop("external_reconstruct_general", "rlnExtReconsWeight"),
         "missing label _rlnExtReconsWeight"),
        (read_external_reconstruct_job, JOB_31,
         _drop_column("external_reconstruct_tau2", "rlnReferenceTau2"),
         "missing column _rlnReferenceTau2 in data_external_reconstruct_tau2"),
    ],
)  # fmt: skip
def test_malformed_labels(tmp_path, reader, source, edit, expected):
    path = _rewrite(source, tmp_path / f"bad_{source.name}", edit)
    with pytest.raises(InputFileError) as excinfo:
        reader(path)
    assert expected in _assert_names_file(excinfo, path)


def test_model_non_numeric_tau2(tmp_path):
    def edit(blocks):
        table = blocks["model_class_1"].astype({"rlnReferenceTau2": object})
        table.loc[3, "rlnReferenceTau2"] = "abc"
        blocks["model_class_1"] = table

    path = _rewrite(MODEL, tmp_path / "bad_tau2_model.star", edit)
    with pytest.raises(InputFileError) as excinfo:
        read_model_star(path)
    assert "_rlnReferenceTau2" in _assert_names_file(excinfo, path)


def test_model_optional_columns(tmp_path):
    def edit(blocks):
        blocks["model_class_1"] = blocks["model_class_1"].drop(columns=["rlnSsnrMap"])

    model = read_model_star(_rewrite(MODEL, tmp_path / "no_ssnr_model.star", edit))
    assert model.ssnr is None
    assert model.reference_tau2 is not None
    assert model.version is None  # starfile does not write RELION's version comment


def test_optimiser_mask_name_and_no_command_line(tmp_path):
    path = _rewrite(
        OPTIMISER,
        tmp_path / "masked_optimiser.star",
        _set("optimiser_general", "rlnSolventMaskName", "MaskCreate/job005/mask.mrc"),
    )
    info = read_optimiser_star(path)
    assert info.solvent_mask_name == "MaskCreate/job005/mask.mrc"
    assert info.command_line is None  # starfile writes a single header comment


def test_particles_pre_31_format(tmp_path):
    path = Path(shutil.copy(DATA / "particles_relion30.star", tmp_path))
    with pytest.raises(InputFileError) as excinfo:
        read_particles_star(path)
    assert "RELION 3.1+ format is required" in _assert_names_file(excinfo, path)


# ---------------------------------------------------------------------------------------
# Data arrays of a job
# ---------------------------------------------------------------------------------------


@pytest.fixture
def job_with_arrays(tmp_path):
    """The 3.1 job STAR plus small random arrays of the right shape under tmp_path."""
    job = read_external_reconstruct_job(JOB_31)
    rng = np.random.default_rng(3)
    shape = (job.padded_size, job.padded_size, job.padded_size // 2 + 1)
    arrays = {p: rng.normal(size=shape) for p in (job.data_real_path, job.data_imag_path)}
    arrays[job.weight_path] = rng.uniform(size=shape)
    (tmp_path / job.weight_path.parent).mkdir(parents=True, exist_ok=True)
    for rel, array in arrays.items():
        write_map_atomic(tmp_path / rel, array)
    return job, arrays


def test_read_arrays(tmp_path, job_with_arrays):
    job, arrays = job_with_arrays
    data, weight = read_external_reconstruct_arrays(job, base_dir=tmp_path)
    assert data.shape == weight.shape == (64, 64, 33)
    f32 = np.float32
    np.testing.assert_array_equal(data.real, arrays[job.data_real_path].astype(f32))
    np.testing.assert_array_equal(data.imag, arrays[job.data_imag_path].astype(f32))
    np.testing.assert_array_equal(weight, arrays[job.weight_path].astype(f32))


def test_read_arrays_wrong_shape(tmp_path, job_with_arrays):
    job, _ = job_with_arrays
    write_map_atomic(tmp_path / job.weight_path, np.ones((32, 32, 17)))
    with pytest.raises(InputFileError) as excinfo:
        read_external_reconstruct_arrays(job, base_dir=tmp_path)
    assert "(64, 64, 33)" in _assert_names_file(excinfo, tmp_path / job.weight_path)


def test_read_arrays_garbage_mrc(tmp_path, job_with_arrays):
    job, _ = job_with_arrays
    (tmp_path / job.data_imag_path).write_bytes(os.urandom(2000))
    with pytest.raises(InputFileError) as excinfo:
        read_external_reconstruct_arrays(job, base_dir=tmp_path)
    _assert_names_file(excinfo, tmp_path / job.data_imag_path)


def test_read_arrays_missing_file(tmp_path, job_with_arrays):
    job, _ = job_with_arrays
    (tmp_path / job.data_real_path).unlink()
    with pytest.raises(InputFileError) as excinfo:
        read_external_reconstruct_arrays(job, base_dir=tmp_path)
    _assert_names_file(excinfo, tmp_path / job.data_real_path)
