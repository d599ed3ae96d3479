"""``cryoprior refine`` without RELION: what is taken from the data (pixel size, box, CTF, the
diameter), the input checks (one line each), the sampling presets, options passed through to
RELION, the job-folder rules (refuse / overwrite / continue), RELION version parsing and
RELION's own error message out of run.err.

Datasets here are a few images written with mrcfile and starfile; the RELION 4.0 / 5.0
particle STARs are the 3.1 one with the version comment and the columns those versions add.
"""

from __future__ import annotations

import re
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from cryoprior.errors import InputFileError
from cryoprior.io.mrc import read_map_header
from cryoprior.io.relion import read_particles_star
from cryoprior.refine.cases import RefineOptions
from cryoprior.refine.inputs import (
    RefineInputError,
    check_image_files,
    check_map_against_particles,
    default_particle_diameter_angstrom,
    particle_data,
    rescaled_reference,
)
from cryoprior.refine.job import (
    PRESETS,
    RefineRequest,
    existing_run_files,
    plan_refine,
    prepare_job_folder,
    threads_per_rank,
    write_record,
)
from cryoprior.refine.relion import (
    AutoRefineSettings,
    build_continue_command,
    build_refine_command,
    merge_options,
    parse_relion_version,
    refine_failure_message,
    relion_error_message,
)
from cryoprior.validate.symmetry import validate_symmetry_name

DATA = Path(__file__).parent / "data" / "refine"
BOX = 16
PIXEL = 3.0


def write_dataset(
    folder: Path,
    *,
    n: int = 6,
    ctf: bool = True,
    version_comment: str | None = None,
    optics_changes: dict | None = None,
) -> Path:
    """A tiny RELION 3.1-style project: Particles/a.mrcs (n images), particles.star,
    reference.mrc (BOX^3 at PIXEL)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Particles").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    with mrcfile.new(folder / "Particles" / "a.mrcs", overwrite=True) as mrc:
        mrc.set_data(rng.normal(size=(n, BOX, BOX)).astype(np.float32))
        mrc.voxel_size = PIXEL
    with mrcfile.new(folder / "reference.mrc", overwrite=True) as mrc:
        mrc.set_data(rng.normal(size=(BOX, BOX, BOX)).astype(np.float32))
        mrc.voxel_size = PIXEL
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [PIXEL],
            "rlnImageSize": [BOX],
            "rlnImageDimensionality": [2],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
        }
    )
    for key, value in (optics_changes or {}).items():
        optics[key] = value
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@Particles/a.mrcs" for i in range(n)],
            "rlnOpticsGroup": [1] * n,
        }
    )
    if ctf:
        particles["rlnDefocusU"] = 15000.0
        particles["rlnDefocusV"] = 14800.0
        particles["rlnDefocusAngle"] = 10.0
    star = folder / "particles.star"
    starfile.write({"optics": optics, "particles": particles}, star, overwrite=True)
    if version_comment is not None:  # as RELION writes it: before each block
        text = star.read_text()
        star.write_text(re.sub(r"^data_", f"{version_comment}\n\ndata_", text, flags=re.M))
    return star


def request(folder: Path, **changes) -> RefineRequest:
    values = dict(
        particles_star=Path("particles.star"),
        reference_map=Path("reference.mrc"),
        mode="relion",
        output=Path("Refine3D/job001"),
        cpu_count=4,
    )
    values.update(changes)
    return RefineRequest(**values)


def plan(folder: Path, **changes):
    return plan_refine(request(folder, **changes), workdir=folder, hook_executable="/x/extrec")


# ---------------------------------------------------------------------------------------
# what the data say


def test_particle_data_from_the_optics_table(tmp_path):
    star = write_dataset(tmp_path)
    data = particle_data(read_particles_star(star))
    assert (data.pixel_size_angstrom, data.box_size, data.n_particles) == (PIXEL, BOX, 6)
    assert data.has_ctf and data.optics_groups == 1
    no_ctf = particle_data(read_particles_star(write_dataset(tmp_path / "b", ctf=False)))
    assert not no_ctf.has_ctf


def test_optics_groups_must_agree(tmp_path):
    star = write_dataset(tmp_path)
    blocks = starfile.read(star, always_dict=True)
    second = blocks["optics"].assign(rlnOpticsGroup=2, rlnOpticsGroupName="g2")
    blocks["particles"].loc[[1, 3], "rlnOpticsGroup"] = 2
    # same pixel size and box in two groups: accepted
    blocks["optics"] = pd.concat([blocks["optics"], second], ignore_index=True)
    starfile.write(blocks, star, overwrite=True)
    assert particle_data(read_particles_star(star)).optics_groups == 2
    blocks["optics"].loc[1, "rlnImagePixelSize"] = 1.5
    starfile.write(blocks, star, overwrite=True)
    with pytest.raises(InputFileError, match=r"pixel size \(group 1: 3 A, group 2: 1\.5 A\)"):
        particle_data(read_particles_star(star))
    blocks["optics"].loc[1, "rlnImagePixelSize"] = PIXEL
    blocks["optics"].loc[1, "rlnImageSize"] = 32
    starfile.write(blocks, star, overwrite=True)
    with pytest.raises(InputFileError, match=r"box size \(group 1: 16 px, group 2: 32 px\)"):
        particle_data(read_particles_star(star))


def test_star_without_image_names(tmp_path):
    star = write_dataset(tmp_path)
    star.write_text(star.read_text().replace("_rlnImageName", "_rlnMicrographName"))
    with pytest.raises(InputFileError, match="missing column _rlnImageName"):
        particle_data(read_particles_star(star))


@pytest.mark.parametrize(
    ("comment", "extra_optics"),
    [
        # RELION 4.0 writes # version 30001 and adds the premultiplied-CTF flag to optics
        ("# version 30001", {"rlnCtfDataAreCtfPremultiplied": 0}),
        # RELION 5.0 writes # version 50001
        ("# version 50001", {"rlnCtfDataAreCtfPremultiplied": 0}),
    ],
)
def test_relion_40_and_50_particle_stars(tmp_path, comment, extra_optics):
    write_dataset(tmp_path, version_comment=comment, optics_changes=extra_optics)
    p = plan(tmp_path)
    assert p.particles.version == int(comment.split()[-1])
    assert (p.particles.pixel_size_angstrom, p.particles.box_size) == (PIXEL, BOX)
    assert p.settings.ctf


def test_image_files_are_checked(tmp_path):
    star = write_dataset(tmp_path, n=6)
    table = read_particles_star(star)
    assert check_image_files(table, tmp_path) == 1
    with pytest.raises(InputFileError, match=r"image stack Particles/a\.mrcs does not exist"):
        check_image_files(table, tmp_path / "elsewhere")
    # a stack shorter than the images asked of it
    with mrcfile.new(tmp_path / "Particles" / "a.mrcs", overwrite=True) as mrc:
        mrc.set_data(np.zeros((4, BOX, BOX), np.float32))
    with pytest.raises(InputFileError, match=r"image 6 of Particles/a\.mrcs is asked for"):
        check_image_files(table, tmp_path)


def test_image_check_samples_many_stacks(tmp_path):
    star = write_dataset(tmp_path, n=1)
    blocks = starfile.read(star, always_dict=True)
    names = [f"1@Particles/s{i:03d}.mrcs" for i in range(200)]
    blocks["particles"] = pd.DataFrame({"rlnImageName": names, "rlnOpticsGroup": 1})
    starfile.write(blocks, star, overwrite=True)
    for name in names:
        with mrcfile.new(tmp_path / name.split("@")[1], overwrite=True) as mrc:
            mrc.set_data(np.zeros((1, 4, 4), np.float32))
    table = read_particles_star(star)
    assert check_image_files(table, tmp_path, max_stacks=20) == 20
    (tmp_path / "Particles" / "s199.mrcs").unlink()  # the last one is always checked
    with pytest.raises(InputFileError, match=r"s199\.mrcs does not exist"):
        check_image_files(table, tmp_path, max_stacks=20)


def test_reference_is_compared_with_the_particles(tmp_path):
    star = write_dataset(tmp_path)
    data = particle_data(read_particles_star(star))
    assert check_map_against_particles(read_map_header(tmp_path / "reference.mrc"), data) is None
    with mrcfile.new(tmp_path / "big.mrc") as mrc:
        mrc.set_data(np.zeros((24, 24, 24), np.float32))
        mrc.voxel_size = 2.0
    problem = check_map_against_particles(read_map_header(tmp_path / "big.mrc"), data)
    assert problem == (
        f"{tmp_path / 'big.mrc'}: reference map is 24 px at 2 A, the particles of {star} are "
        "16 px at 3 A"
    )
    with mrcfile.new(tmp_path / "flat.mrc") as mrc:
        mrc.set_data(np.zeros((16, 16, 8), np.float32))
    with pytest.raises(InputFileError, match="not a cube"):
        check_map_against_particles(read_map_header(tmp_path / "flat.mrc"), data)


def test_rescaled_reference_keeps_a_blob_in_place():
    """A Gaussian blob (SD 4 A) at 2 A/px in a 48 box, resampled to 3 A/px in a 24 box: the
    blob stays centred (voxel 24 -> 12), keeps its width in A and its integral."""
    n, voxel = 48, 2.0
    grid = (np.arange(n) - n // 2) * voxel
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    blob = np.exp(-(x**2 + y**2 + z**2) / (2 * 4.0**2))
    out, reached = rescaled_reference(
        blob, voxel_size_angstrom=voxel, box_size=24, pixel_size_angstrom=3.0
    )
    assert out.shape == (24, 24, 24) and reached == pytest.approx(3.0)
    assert np.unravel_index(np.argmax(out), out.shape) == (12, 12, 12)
    assert out.sum() * 3.0**3 == pytest.approx(blob.sum() * voxel**3, rel=1e-3)
    g = (np.arange(24) - 12) * 3.0
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    expected = np.exp(-(xx**2 + yy**2 + zz**2) / (2 * 4.0**2))
    assert np.abs(out - expected).max() < 0.02


def test_default_diameter_and_threads():
    assert default_particle_diameter_angstrom(32, 2.8) == 71.0  # floor(0.8 * 89.6)
    assert default_particle_diameter_angstrom(48, 4.4) == 168.0
    assert threads_per_rank(16, 3) == 8 and threads_per_rank(2, 3) == 1
    assert threads_per_rank(1, 5) == 1


@pytest.mark.parametrize(
    "name",
    [
        "C1",
        "c7",
        "D2",
        "Ci",
        "Cs",
        "C3v",
        "C4h",
        "S4",
        "T",
        "Td",
        "Th",
        "O",
        "Oh",
        "I",
        "I1",
        "I4",
        "Ih",
        "I3h",
        "D3v",
        "D3h",
    ],
)
def test_symmetry_names_relion_knows(name):
    assert validate_symmetry_name(name, rotations_only=False) == name.upper()


@pytest.mark.parametrize("name", ["X9", "C0", "S3", "I5", "I6", "D4d", "", "C", "D"])
def test_symmetry_names_refused(name):
    with pytest.raises(ValueError, match="unknown symmetry"):
        validate_symmetry_name(name, rotations_only=False)


# ---------------------------------------------------------------------------------------
# the plan: defaults from the data, presets, passed-through options


def test_plan_defaults_follow_relion_gui_and_the_data(tmp_path):
    write_dataset(tmp_path)
    p = plan(tmp_path)
    s = p.settings
    assert s.ctf and not s.ctf_intact_first_peak
    assert (s.healpix_order, s.auto_local_healpix_order) == (2, 4)
    assert (s.offset_range_pixels, s.offset_step_pixels) == (5.0, 2.0)
    assert s.norm and s.scale and s.firstiter_cc and s.pool == 3
    assert s.flatten_solvent and s.zero_mask and s.padding_factor == 2.0
    assert s.ini_high_angstrom == 60.0
    assert s.particle_diameter_angstrom == 38.0 and p.diameter_from_data  # floor(0.8*48)
    assert s.threads == 2 and s.output_root == "Refine3D/job001/run"
    assert p.hook == "/x/extrec --regularizer none"
    cmd = build_refine_command(s)
    assert cmd[cmd.index("--healpix_order") + 1] == "2"
    assert "--ctf" in cmd and "--norm" in cmd and "--scale" in cmd
    # the GUI's "Has reference been CTF-corrected? Yes": without it RELION 3.1 ignores the
    # images' CTFs in the first iteration (benchmarks/results/calibration_realistic.md)
    assert "--ctf_corrected_ref" in cmd
    assert "--solvent_mask" not in cmd
    assert any("CTF correction on" in note for note in p.notes)


def test_plan_without_ctf_columns_and_explicit_choices(tmp_path):
    write_dataset(tmp_path, ctf=False)
    assert not plan(tmp_path).settings.ctf
    with pytest.raises(InputFileError, match="--ctf asked for"):
        plan(tmp_path, ctf=True)
    write_dataset(tmp_path / "c")
    assert not plan(tmp_path / "c", ctf=False).settings.ctf
    s = plan(tmp_path / "c", ctf_intact_first_peak=True).settings
    assert "--ctf_intact_first_peak" in build_refine_command(s)
    with pytest.raises(RefineInputError, match="needs CTF correction"):
        plan(tmp_path / "c", ctf=False, ctf_intact_first_peak=True)
    uncorrected = plan(tmp_path / "c", reference_ctf_corrected=False)
    assert "--ctf" in build_refine_command(uncorrected.settings)
    assert "--ctf_corrected_ref" not in build_refine_command(uncorrected.settings)
    assert any("CTF-affected" in note for note in uncorrected.notes)
    no_ctf = plan(tmp_path / "c", ctf=False).settings
    assert "--ctf_corrected_ref" not in build_refine_command(no_ctf)


def test_fast_preset_is_the_benchmarks_sampling(tmp_path):
    write_dataset(tmp_path)
    s = plan(tmp_path, preset="fast").settings
    bench = RefineOptions()
    assert (s.healpix_order, s.auto_local_healpix_order) == (
        bench.healpix_order,
        bench.auto_local_healpix_order,
    )
    assert (s.offset_range_pixels, s.offset_step_pixels) == (
        bench.offset_range_pixels,
        bench.offset_step_pixels,
    )
    assert set(PRESETS) == {"default", "fast"}
    with pytest.raises(ValueError, match="unknown preset"):
        plan(tmp_path, preset="slow")


def test_mask_adds_solvent_correct_fsc_and_is_checked(tmp_path):
    write_dataset(tmp_path)
    mask = np.zeros((BOX,) * 3, np.float32)
    mask[4:12, 4:12, 4:12] = 1.0
    with mrcfile.new(tmp_path / "mask.mrc") as mrc:
        mrc.set_data(mask)
        mrc.voxel_size = PIXEL
    cmd = build_refine_command(plan(tmp_path, mask=Path("mask.mrc")).settings)
    assert cmd[cmd.index("--solvent_mask") + 1] == "mask.mrc"
    assert "--solvent_correct_fsc" in cmd
    with mrcfile.new(tmp_path / "bad.mrc") as mrc:
        mrc.set_data(mask * 3)
        mrc.voxel_size = PIXEL
    with pytest.raises(InputFileError, match=r"values 0\.\.1, this one 0\.\.3"):
        plan(tmp_path, mask=Path("bad.mrc"))
    with mrcfile.new(tmp_path / "small.mrc") as mrc:
        mrc.set_data(mask[:8, :8, :8])
        mrc.voxel_size = PIXEL
    with pytest.raises(RefineInputError, match="mask map is 8 px at 3 A"):
        plan(tmp_path, mask=Path("small.mrc"))


def test_passed_through_options_win_and_reserved_ones_are_refused(tmp_path):
    write_dataset(tmp_path)
    s = plan(tmp_path, extra_args=("--healpix_order", "3", "--gpu", "", "--maxsig", "20")).settings
    cmd = build_refine_command(s)
    assert cmd.count("--healpix_order") == 1
    assert cmd[cmd.index("--healpix_order") + 1] == "3"
    assert cmd[-6:] == ["--healpix_order", "3", "--gpu", "", "--maxsig", "20"]
    cont = build_continue_command(s, "Refine3D/job001/run_it004_optimiser.star", "x")
    assert cont[-6:] == ["--healpix_order", "3", "--gpu", "", "--maxsig", "20"]
    assert "--external_reconstruct" in cont  # RELION 4.0.1+ needs it again on --continue
    for name, hint in (("--sym", "--sym"), ("--o", "--o"), ("--particle_diameter", "--diameter")):
        message = f"{name} cannot be passed through to relion_refine: cryoprior refine sets it"
        with pytest.raises(RefineInputError, match=re.escape(f"{message} (use {hint})")):
            plan(tmp_path, extra_args=(name, "x"))
    with pytest.raises(RefineInputError, match=r"unexpected argument 'b\.star'"):
        plan(tmp_path, extra_args=("b.star",))


def test_merge_options_keeps_negative_values():
    flat = merge_options([["--a", "1"], ["--b"]], ["--c", "-1"])
    assert flat == ["--a", "1", "--b", "--c", "-1"]
    assert merge_options([["--a", "1"], ["--b"]], ["--b"]) == ["--a", "1", "--b"]


def test_blush_needs_relion5_and_mode_relion(tmp_path):
    write_dataset(tmp_path)
    v4 = parse_relion_version("RELION version: 4.0.1-commit-ec417f \nPrecision: BASE=double")
    v5 = parse_relion_version("RELION version: 5.0.0-commit-90d239 \nPrecision: BASE=single")
    req = request(tmp_path, extra_args=("--blush",))
    with pytest.raises(RefineInputError, match=r"needs RELION 5\.0 or later; .* is 4\.0\.1"):
        plan_refine(req, workdir=tmp_path, hook_executable="x", version=v4)
    with pytest.raises(RefineInputError, match="replaces the external reconstruction"):
        plan_refine(
            request(tmp_path, mode="prior", extra_args=("--blush",)),
            workdir=tmp_path,
            hook_executable="x",
            version=v5,
        )
    ok = plan_refine(req, workdir=tmp_path, hook_executable="x", version=v5)
    assert "--blush" in build_refine_command(ok.settings)


def test_plan_input_errors_are_one_line(tmp_path):
    write_dataset(tmp_path)
    with mrcfile.new(tmp_path / "ref48.mrc") as mrc:
        mrc.set_data(np.zeros((48, 48, 48), np.float32))
        mrc.voxel_size = PIXEL
    cases = [
        (dict(reference_map=Path("ref48.mrc")), RefineInputError, "48 px at 3 A, the particles"),
        (dict(reference_map=Path("nope.mrc")), InputFileError, "nope.mrc: file does not exist"),
        (dict(particles_star=Path("nope.star")), InputFileError, "nope.star: file does not"),
        (dict(symmetry="X9"), ValueError, "unknown symmetry 'X9'"),
        (dict(mpi_ranks=1), RefineInputError, "at least 3 MPI ranks"),
        (dict(diameter_angstrom=500.0), RefineInputError, "at most the box"),
        (dict(mode="magic"), ValueError, "unknown mode 'magic'"),
    ]
    for changes, error, text in cases:
        with pytest.raises(error, match=text) as info:
            plan(tmp_path, **changes)
        assert "\n" not in str(info.value)


def test_rescale_reference_plan(tmp_path):
    write_dataset(tmp_path)
    with mrcfile.new(tmp_path / "ref.mrc") as mrc:
        mrc.set_data(np.zeros((24, 24, 24), np.float32))
        mrc.voxel_size = 2.0
    p = plan(tmp_path, reference_map=Path("ref.mrc"), rescale_reference=True)
    assert p.settings.reference_map == "Refine3D/job001/reference_rescaled.mrc"
    assert "24 px at 2 A" in p.rescale_reference


# ---------------------------------------------------------------------------------------
# the job folder


def _fake_run(job: Path, iterations: int = 3) -> None:
    job.mkdir(parents=True, exist_ok=True)
    (job / "run.out").write_text("old run\n")
    (job / "run.err").write_text("")
    for it in range(iterations + 1):
        (job / f"run_it{it:03d}_optimiser.star").write_text("")
    (job / "cryoprior_extrec.log").write_text("{}\n")
    (job / "mask.mrc").write_text("the user's")


def test_job_folder_with_a_run_is_refused(tmp_path):
    job = tmp_path / "Refine3D" / "job001"
    assert prepare_job_folder(job, resume=False, overwrite=False, mode="prior") == []
    _fake_run(job)
    with pytest.raises(RefineInputError, match=r"already holds a run \(7 files.*--continue"):
        prepare_job_folder(job, resume=False, overwrite=False, mode="prior")
    assert (job / "run.out").read_text() == "old run\n"
    with pytest.raises(RefineInputError, match="exclude each other"):
        prepare_job_folder(job, resume=True, overwrite=True, mode="prior")


def test_overwrite_removes_the_old_run_only(tmp_path):
    job = tmp_path / "job"
    _fake_run(job)
    removed = prepare_job_folder(job, resume=False, overwrite=True, mode="prior")
    assert len(removed) == 7
    assert [p.name for p in job.iterdir()] == ["mask.mrc"]
    assert existing_run_files(job) == []


def test_continue_checks_mode_and_finish(tmp_path):
    job = tmp_path / "job"
    _fake_run(job)
    write_record(job, {"mode": "prior"})
    assert prepare_job_folder(job, resume=True, overwrite=False, mode="prior") == []
    with pytest.raises(RefineInputError, match="started with --mode prior"):
        prepare_job_folder(job, resume=True, overwrite=False, mode="relion")
    (job / "run_ct3_class001.mrc").write_text("")
    with pytest.raises(RefineInputError, match=r"has finished \(run_ct3_class001\.mrc\)"):
        prepare_job_folder(job, resume=True, overwrite=False, mode="prior")


# ---------------------------------------------------------------------------------------
# RELION's version and its error messages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RELION version: 3.1.3 \nPrecision: BASE=double\n", (3, 1, 3, "3.1.3")),
        (
            "RELION version: 4.0.1-commit-ec417f \nPrecision: BASE=single, CUDA-ACC=single \n",
            (4, 0, 1, "4.0.1-commit-ec417f"),
        ),
        (
            "RELION version: 4.0-beta-2-commit-e3afcf \nPrecision: BASE=single\n",
            (4, 0, None, "4.0-beta-2-commit-e3afcf"),
        ),
        (
            "RELION version: 5.0.0-commit-90d239 (debug-build) \nPrecision: BASE=single\n",
            (5, 0, 0, "5.0.0-commit-90d239"),
        ),
    ],
)
def test_parse_relion_version(text, expected):
    v = parse_relion_version(text)
    assert (v.major, v.minor, v.patch, v.text) == expected
    assert v.has_blush == (v.major >= 5)


def test_parse_relion_version_none():
    assert parse_relion_version("relion_refine_mpi: command not found") is None


def test_relion_error_message_from_a_real_run_err():
    """tests/data/refine/box_mismatch_run.err: run.err of RELION 3.1.3's relion_refine_mpi
    (3 ranks) given a 48^3 reference for 32 px particles (see tests/data/refine/README.md)."""
    text = (DATA / "box_mismatch_run.err").read_text()
    assert "MPI_ABORT" in text  # the boilerplate the old CLI showed
    message = relion_error_message(text)
    assert message.startswith(
        "The reference box size is 48 px, but the box size of the first optics group of the "
        "data is 32 px!"
    )
    assert "--trust_ref_size" in message and "\n" not in message and "MPI" not in message
    assert relion_error_message("just some warning\n") is None


def test_refine_failure_message_names_run_err(tmp_path):
    """RELION's message from the job's run.err (the file above), else its last meaningful
    line, else both files to look at."""
    root = tmp_path / "Refine3D" / "job" / "run"
    root.parent.mkdir(parents=True)
    err = root.parent / "run.err"
    assert refine_failure_message(root) == f"see {err} and {root.parent / 'run.out'}"
    err.write_text("[host:1] some Open MPI line\nsegmentation fault in rank 2\n---\n")
    assert refine_failure_message(root) == f"segmentation fault in rank 2 (see {err})"
    err.write_text((DATA / "box_mismatch_run.err").read_text())
    message = refine_failure_message(root)
    assert message.startswith("The reference box size is 48 px") and message.endswith(
        f"(see {err})"
    )


def test_settings_defaults_keep_the_benchmark_command():
    """New AutoRefineSettings fields default off: the benchmark's command is unchanged."""
    s = AutoRefineSettings("p.star", "r.mrc", "R/run", 100.0, threads=1)
    cmd = build_refine_command(s, hook_variable=False)
    assert cmd[cmd.index("relion_refine_mpi") + 1 :] == [
        "--o", "R/run", "--auto_refine", "--split_random_halves", "--i", "p.star",
        "--ref", "r.mrc", "--ini_high", "30", "--pad", "2", "--particle_diameter", "100",
        "--oversampling", "1", "--healpix_order", "1", "--auto_local_healpix_order", "2",
        "--offset_range", "2", "--offset_step", "2", "--sym", "C1",
        "--low_resol_join_halves", "40", "--j", "1", "--dont_combine_weights_via_disc",
        "--random_seed", "0", "--flatten_solvent", "--zero_mask", "--external_reconstruct",
    ]  # fmt: skip
