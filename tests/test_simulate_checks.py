"""``cryoprior simulate`` refuses what it cannot do before writing anything, and never leaves a
temporary stack behind (review_reliability.md cases C03e, C03f, C04c, C05c, C05d, C06, C06d,
C06e, C09, C10).

A full disk and a small machine are simulated by injecting what is free
(``simulate_dataset(resources=...)``) and by making the space reservation fail with ENOSPC;
nothing here needs RELION, a GPU or a real full disk. Every dataset is tiny (box 16-32).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import cryoprior.io.stacks as stacks_module
import cryoprior.simulate.dataset as dataset_module
from cryoprior.errors import InputFileError
from cryoprior.simulate.config import SimulationConfig
from cryoprior.simulate.dataset import simulate_dataset
from cryoprior.simulate.particles import count_particles
from cryoprior.simulate.poses import grid_poses, over_represent_cone, uniform_poses
from cryoprior.simulate.resources import (
    AvailableResources,
    InsufficientResourcesError,
    available_resources,
    estimate_resources,
)

SMALL = dict(box_size=16, voxel_size_angstrom=15.0, backend="eager", n_particles=10)
PLENTY = AvailableResources(memory_bytes=10**12, disk_bytes=10**12)


def _plenty(_folder: Path) -> AvailableResources:
    return PLENTY


def _atom(serial: int, xyz: tuple[float, float, float] | str) -> str:
    coords = xyz if isinstance(xyz, str) else "".join(f"{v:8.3f}" for v in xyz)
    return f"ATOM  {serial:5d}  CA  ALA A{serial:4d}    {coords}  1.00 20.00           C\n"


def _cli(*args) -> object:
    from cryoprior.cli.simulate import simulate

    app = typer.Typer()
    app.command()(simulate)
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error_line(result) -> str:
    """The CLI's output is exactly one 'error: ...' line (no traceback)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob(".*") if "tmp" in p.name)


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_bad_voxel_size_is_refused_naming_the_option(tmp_path, value):
    result = _cli(tmp_path / "out", "--voxel-size", value, "--box", 16, "--particles", 2)
    line = _one_error_line(result)
    assert result.exit_code == 2 and "voxel_size_angstrom (--voxel-size)" in line
    assert not (tmp_path / "out").exists()


def test_non_finite_parameters_are_refused():
    for field in ("noise_sd", "angular_step_degrees", "shift_sd_angstrom", "padding_factor"):
        with pytest.raises(ValueError, match=f"{field} must be a finite number"):
            SimulationConfig(**{field: float("nan")})
    with pytest.raises(ValueError, match="angular_step_degrees must be in"):
        SimulationConfig(orientations="grid", angular_step_degrees=-1.0)
    with pytest.raises(ValueError, match="padding_factor must be >= 1"):
        SimulationConfig(padding_factor=0.5)


def test_nan_atom_coordinates_are_refused_naming_the_file(tmp_path):
    model = tmp_path / "nan.pdb"
    model.write_text(_atom(1, (0.0, 0.0, 0.0)) + _atom(2, "     nan     nan     nan") + "END\n")
    with pytest.raises(InputFileError, match=r"nan\.pdb: 1 atom\(s\) have non-finite"):
        simulate_dataset(
            SimulationConfig(**{**SMALL, "model": str(model)}), tmp_path / "ds", resources=_plenty
        )
    assert not (tmp_path / "ds").exists()
    line = _one_error_line(_cli(tmp_path / "ds", "--model", model, "--box", 16))
    assert "nan.pdb" in line and "A/ALA 2/CA" in line


# --- sizes ------------------------------------------------------------------------------------


def test_a_stray_atom_that_makes_the_auto_box_huge_is_refused_up_front(tmp_path):
    model = tmp_path / "far.pdb"
    model.write_text(
        _atom(1, (0.0, 0.0, 0.0)) + _atom(2, (1.5, 1.5, 1.5)) + _atom(3, (9999.0,) * 3) + "END\n"
    )
    config = SimulationConfig(model=str(model), voxel_size_angstrom=2.0, n_particles=5)
    small_machine = AvailableResources(memory_bytes=8 * 10**9, disk_bytes=100 * 10**9)
    with pytest.raises(InsufficientResourcesError) as info:
        simulate_dataset(config, tmp_path / "ds", resources=lambda _: small_machine)
    message = str(info.value)
    # the far atom is 11,545 A from the centre of mass: box 2 (11545 + 10) / 2 = 11556
    assert "box 11556 chosen to hold far.pdb" in message and "A/ALA 3/CA" in message
    assert "of memory" in message and "11556x11556 px" in message
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"box_size": 4096, "n_particles": 2},  # C04c
        {"box_size": None, "voxel_size_angstrom": 0.01, "n_particles": 2},  # C05c
        {"n_particles": 1_000_000_000},  # C06
        {"orientations": "grid", "angular_step_degrees": 0.001},  # C06e
    ],
)
def test_absurd_sizes_are_refused_before_anything_is_made(tmp_path, options):
    config = SimulationConfig(**{**SMALL, "box_size": 32, "voxel_size_angstrom": 8.0, **options})
    this_machine = AvailableResources(memory_bytes=24 * 10**9, disk_bytes=80 * 10**9)
    with pytest.raises(InsufficientResourcesError, match="does not fit"):
        simulate_dataset(config, tmp_path / "ds", resources=lambda _: this_machine)
    assert not (tmp_path / "ds").exists()


def test_the_cli_refuses_a_tiny_angular_step_with_the_number_of_views(tmp_path):
    # on any machine: 41 billion views of 32 x 32 px need 169 TB of disk
    result = _cli(
        tmp_path / "grid", "--box", 32, "--voxel-size", 8, "--orientations", "grid",
        "--angular-step", 0.001,
    )  # fmt: skip
    line = _one_error_line(result)
    assert result.exit_code == 1 and "41,252,961,442 particles of 32x32 px" in line
    assert "--force" in line and not (tmp_path / "grid").exists()


def test_particle_counts_are_known_without_making_the_poses():
    """The count used for the estimate is the number of poses that are then made."""
    for step in (3.0, 7.5, 30.0):
        config = SimulationConfig(orientations="grid", angular_step_degrees=step)
        assert count_particles(config, None) == len(grid_poses(step))
        cone = SimulationConfig(
            orientations="grid", angular_step_degrees=step, cone_overrepresentation=2.5
        )
        made = over_represent_cone(grid_poses(step), factor=2.5, seed=0)
        assert count_particles(cone, None) == len(made)
    star = uniform_poses(37, seed=1)
    config = SimulationConfig(orientations="star", angles_star="x.star", cone_overrepresentation=3)
    made = over_represent_cone(star, factor=3.0, seed=0)
    assert count_particles(config, star) == len(made)


def test_the_estimate_covers_what_is_written(tmp_path):
    config = SimulationConfig(**{**SMALL, "n_particles": 50}, ctf=True, particles_per_stack=20)
    result = simulate_dataset(config, tmp_path / "ds", resources=_plenty)
    estimate = estimate_resources(
        n_particles=50, box_size=16, batch_size=50, particles_per_stack=20, model_oversampling=2
    )
    assert estimate.stack_bytes == sum(p.stat().st_size for p in result.stacks)
    written = sum(p.stat().st_size for p in result.output_dir.rglob("*") if p.is_file())
    assert written <= estimate.disk_bytes <= written + 100_000


def test_the_disk_check_refuses_and_force_skips_it(tmp_path):
    config = SimulationConfig(**SMALL)
    full_disk = AvailableResources(memory_bytes=10**12, disk_bytes=50_000)
    with pytest.raises(InsufficientResourcesError, match=r"of disk \(50.0 kB free\)"):
        simulate_dataset(config, tmp_path / "ds", resources=lambda _: full_disk)
    assert not (tmp_path / "ds").exists()
    forced = simulate_dataset(config, tmp_path / "ds", resources=lambda _: full_disk, force=True)
    assert forced.n_particles == 10


def test_available_resources_reads_this_machine(tmp_path):
    found = available_resources(tmp_path / "not" / "yet")
    assert found.disk_folder == tmp_path.resolve()
    assert found.disk_bytes is not None and found.disk_bytes > 0
    if Path("/proc/meminfo").is_file():
        assert found.memory_bytes is not None and found.memory_bytes > 0


# --- writing ----------------------------------------------------------------------------------


def test_a_full_disk_is_an_error_naming_the_stack_and_leaves_no_temporary_file(
    tmp_path, monkeypatch
):
    """C10: the stack is reserved with posix_fallocate before it is written through a memory
    map, so ENOSPC is an OSError there (a full disk during the memory-mapped write itself was a
    SIGBUS)."""

    def no_space(fd, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stacks_module, "reserve_file_space", no_space)
    out = tmp_path / "ds"
    with pytest.raises(OSError) as info:
        simulate_dataset(SimulationConfig(**SMALL), out, resources=_plenty)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(out / "Particles" / "particles_0001.mrcs")
    assert _leftovers(out) == [] and list((out / "Particles").iterdir()) == []
    line = _one_error_line(_cli(tmp_path / "cli", "--box", 16, "--voxel-size", 15))
    assert line.endswith("particles_0001.mrcs: No space left on device"), line
    assert _leftovers(tmp_path / "cli") == []


def test_the_reservation_allocates_the_blocks(tmp_path):
    """reserve_file_space turns a sparse file (what mrcfile's memory map starts from) into
    allocated blocks, so that writing it through the map needs no new space."""
    from cryoprior.io.stacks import reserve_file_space

    path = tmp_path / "sparse.bin"
    with open(path, "wb") as handle:
        handle.truncate(4 << 20)
    before = path.stat().st_blocks * 512
    fd = os.open(path, os.O_RDWR)
    try:
        reserve_file_space(fd, 4 << 20)
    finally:
        os.close(fd)
    after = path.stat().st_blocks * 512
    if before >= 4 << 20:
        pytest.skip("this file system does not make sparse files")
    assert after >= 4 << 20 and path.stat().st_size == 4 << 20


def test_an_interruption_while_writing_leaves_no_temporary_file(tmp_path):
    def interrupt(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    config = SimulationConfig(**{**SMALL, "n_particles": 40}, batch_size=4, particles_per_stack=16)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(config, out, progress=interrupt, resources=_plenty)
    assert _leftovers(out) == [] and list((out / "Particles").iterdir()) == []


def test_unwritable_outputs_give_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    line = _one_error_line(_cli(tmp_path / "afile", "--box", 16, "--voxel-size", 15))
    assert "afile: exists and is not a folder" in line
    line = _one_error_line(_cli(tmp_path / "afile" / "sub", "--box", 16, "--voxel-size", 15))
    assert "afile" in line and "Not a directory" in line
    if os.geteuid() != 0:  # root writes into read-only folders
        (tmp_path / "ro").mkdir(mode=0o555)
        line = _one_error_line(_cli(tmp_path / "ro" / "x", "--box", 16, "--voxel-size", 15))
        assert "Permission denied" in line


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_a_map_with_nan_voxels_is_refused(tmp_path):
    from cryoprior.io.mrc import write_map_atomic

    volume = np.zeros((16, 16, 16), dtype=np.float32)
    volume[3, 4, 5] = np.nan
    write_map_atomic(tmp_path / "nan.mrc", volume, voxel_size_angstrom=5.0)
    config = SimulationConfig(map_path=str(tmp_path / "nan.mrc"), n_particles=3)
    with pytest.raises(InputFileError, match=r"nan\.mrc: 1 voxel\(s\) are not finite"):
        simulate_dataset(config, tmp_path / "ds", resources=_plenty)


def test_an_unknown_or_missing_device_is_refused_before_anything_is_written(tmp_path):
    line = _one_error_line(_cli(tmp_path / "a", "--box", 16, "--device", "foo"))
    assert "device 'foo' is not a torch device" in line
    import torch

    if not torch.cuda.is_available():
        line = _one_error_line(_cli(tmp_path / "b", "--box", 16, "--device", "cuda"))
        assert "no CUDA GPU" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_running_out_of_memory_anyway_gives_one_line(tmp_path, monkeypatch):
    """When the estimate was wrong (or --force was given) and an allocation fails."""

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 8589934592 bytes.")  # fmt: skip

    monkeypatch.setattr(dataset_module, "fourier_volume", no_memory)
    line = _one_error_line(_cli(tmp_path / "oom", "--box", 16, "--voxel-size", 15))
    assert "out of memory while simulating" in line and "8589934592 bytes" in line


def test_a_stray_atom_in_a_real_model_is_pointed_out(tmp_path):
    """455 atoms of a PDB fragment within about 32 A of their centre, and one atom added 500 A
    away: the refusal says that 99 % of the atoms are much closer."""
    fragment = Path(__file__).parent / "data" / "validate" / "6bdf_chainA_fragment.pdb"
    lines = [line for line in fragment.read_text().splitlines(keepends=True)
             if line.startswith("ATOM")]  # fmt: skip
    model = tmp_path / "stray.pdb"
    model.write_text("".join(lines) + _atom(9999, (500.0, 500.0, 500.0)) + "END\n")
    config = SimulationConfig(model=str(model), voxel_size_angstrom=4.0, n_particles=5)
    small = AvailableResources(memory_bytes=10**9, disk_bytes=10**12)
    with pytest.raises(InsufficientResourcesError) as info:
        simulate_dataset(config, tmp_path / "ds", resources=lambda _: small)
    message = str(info.value)
    assert "A/ALA 9999/CA" in message and "stray atoms?" in message, message
