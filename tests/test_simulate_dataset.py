"""Tests of the simulated dataset folder and ``cryoprior simulate``.

Invariants: RELION 3.1 tables (optics block; no poses in particles.star, true poses in
ground_truth.star); the same seed gives the same bytes whatever the batch and stack sizes;
noise SD and SNR as asked; nothing beyond the low-pass edge; pure-noise particles carry no
signal. External reference: ``relion_reconstruct`` (RELION 3.1.3) of noise-free simulated
particles (with CTF and shifts) at their true poses gives back the true map, FSC >= 0.99 up to
0.8 x Nyquist.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import mrcfile
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cryoprior.conventions import shell_index
from cryoprior.io.relion import read_particles_star
from cryoprior.io.star import read_star, write_star_atomic
from cryoprior.simulate.config import SimulationConfig, config_from_dict
from cryoprior.simulate.dataset import load_config, simulate_dataset
from cryoprior.simulate.images import paper_lowpass
from cryoprior.simulate.poses import uniform_poses

SMALL = dict(box_size=32, voxel_size_angstrom=7.5, backend="eager")


def _images(result) -> np.ndarray:
    return np.concatenate([mrcfile.read(p) for p in result.stacks])


def _fsc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FSC per shell 0..N//2 (RELION's rounding of |k|)."""
    n = a.shape[0]
    fa, fb = np.fft.rfftn(a), np.fft.rfftn(b)
    shells = shell_index(n).ravel()
    num = np.bincount(shells, (fa * fb.conj()).real.ravel())
    den = np.sqrt(
        np.bincount(shells, (abs(fa) ** 2).ravel()) * np.bincount(shells, (abs(fb) ** 2).ravel())
    )
    return (num / den)[: n // 2 + 1]


def test_dataset_files_are_relion_tables(tmp_path):
    config = SimulationConfig(
        **SMALL, n_particles=60, n_pure_noise=7, noise_sd=0.5, ctf=True, astigmatism_angstrom=500,
        shift_sd_angstrom=4.0, particles_per_stack=25, batch_size=16, seed=4,
    )  # fmt: skip
    result = simulate_dataset(config, tmp_path / "ds")
    assert (result.n_particles, result.n_signal, result.n_pure_noise) == (67, 60, 7)
    assert [p.name for p in result.stacks] == [f"particles_000{i}.mrcs" for i in (1, 2, 3)]
    particles = read_particles_star(result.particles_star)
    assert particles.n_particles == 67 and particles.common_pixel_size_angstrom == 7.5
    assert int(particles.image_size[0]) == 32
    assert not any(c.startswith("rlnAngle") or c.startswith("rlnOrigin")
                   for c in particles.particles.columns)  # fmt: skip
    np.testing.assert_allclose(
        particles.particles.rlnDefocusU - particles.particles.rlnDefocusV, 500.0, atol=1e-4
    )
    truth = read_particles_star(result.ground_truth_star)
    assert truth.n_particles == 60
    assert {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst"} <= set(
        truth.particles.columns
    )
    noise = read_particles_star(result.pure_noise_star)
    assert set(noise.particles.rlnImageName) | set(truth.particles.rlnImageName) == set(
        particles.particles.rlnImageName
    )
    # stacks: float32 image stacks with the pixel size in the header
    with mrcfile.open(result.stacks[0]) as mrc:
        assert mrc.data.shape == (25, 32, 32) and mrc.data.dtype == np.float32
        assert mrc.is_image_stack() and float(mrc.voxel_size.x) == pytest.approx(7.5)
        assert float(mrc.header.dmax) == pytest.approx(float(mrc.data.max()))
    images = _images(result)
    names = list(particles.particles.rlnImageName)
    is_noise = np.array([name in set(noise.particles.rlnImageName) for name in names])
    # pure-noise particles: mean 0, SD as asked, no signal
    assert images[is_noise].std() == pytest.approx(0.5, rel=0.05)
    assert abs(images[is_noise].mean()) < 0.02
    for path in (result.true_map, result.initial_reference):
        with mrcfile.open(path) as mrc:
            assert mrc.data.shape == (32, 32, 32)
    record = json.loads(result.record_json.read_text())
    assert record["config"]["seed"] == 4 and record["derived"]["noise_sd"] == 0.5
    assert record["derived"]["source"]["symmetry"] == "D2"
    assert record["derived"]["files"]["stacks"] == [
        f"Particles/particles_000{i}.mrcs" for i in (1, 2, 3)
    ]
    # a second run into the same folder is refused unless overwriting
    with pytest.raises(FileExistsError):
        simulate_dataset(config, tmp_path / "ds")
    simulate_dataset(config, tmp_path / "ds", overwrite=True)


def test_same_seed_same_bytes_whatever_the_stacks(tmp_path):
    base = dict(**SMALL, n_particles=40, n_pure_noise=5, noise_sd=1.0, ctf=True,
                shift_sd_angstrom=3.0, lowpass_resolution_angstrom=20.0, seed=9)  # fmt: skip
    a = simulate_dataset(
        SimulationConfig(**base, batch_size=8, particles_per_stack=15), tmp_path / "a"
    )
    b = simulate_dataset(
        SimulationConfig(**base, batch_size=8, particles_per_stack=100), tmp_path / "b"
    )
    c = simulate_dataset(
        SimulationConfig(**base, batch_size=8, particles_per_stack=15), tmp_path / "c"
    )
    np.testing.assert_array_equal(_images(a), _images(b))
    other_batches = simulate_dataset(SimulationConfig(**base, batch_size=64), tmp_path / "e")
    np.testing.assert_allclose(_images(other_batches), _images(a), rtol=0, atol=1e-5)
    for name in ("particles.star", "ground_truth.star", "pure_noise.star", "simulation.json",
                 "true_map.mrc", "initial_reference.mrc",
                 "Particles/particles_0001.mrcs", "Particles/particles_0003.mrcs"):  # fmt: skip
        assert (a.output_dir / name).read_bytes() == (c.output_dir / name).read_bytes(), name
    d = simulate_dataset(SimulationConfig(**{**base, "seed": 10}), tmp_path / "d")
    assert not np.array_equal(_images(a), _images(d))


def test_snr_and_lowpass(tmp_path):
    result = simulate_dataset(
        SimulationConfig(**SMALL, n_particles=30, snr=0.5, seed=1), tmp_path / "snr"
    )
    clean = simulate_dataset(SimulationConfig(**SMALL, n_particles=30, seed=1), tmp_path / "clean")
    signal_sd = _images(clean).astype(np.float64).std(axis=(1, 2)).mean()
    assert result.signal_sd == pytest.approx(signal_sd, rel=1e-5)
    assert result.noise_sd == pytest.approx(signal_sd / np.sqrt(0.5), rel=1e-5)
    noise = _images(result).astype(np.float64) - _images(clean)
    assert noise.std() == pytest.approx(result.noise_sd, rel=0.03)

    filtered = simulate_dataset(
        SimulationConfig(**SMALL, n_particles=10, lowpass_resolution_angstrom=30.0,
                         lowpass_width_frequency=0.02, seed=1),
        tmp_path / "lp",
    )  # fmt: skip
    power = np.abs(np.fft.rfft2(_images(filtered).astype(np.float64))) ** 2
    edge = paper_lowpass(32, resolution_angstrom=30.0, voxel_size_angstrom=7.5,
                         width_frequency=0.02)  # fmt: skip
    assert power[:, edge == 0].max() < 1e-8 * power.max()
    unfiltered = np.abs(np.fft.rfft2(_images(clean)[:10].astype(np.float64))) ** 2
    assert unfiltered[:, edge == 0].max() > 1e-4 * unfiltered.max()  # the check can fail


def test_envelope_is_the_b_factor_filter_of_the_clean_images(tmp_path):
    """Closed form: the envelope multiplies each noise-free image's spectrum by exp(-B s^2/4)
    (after the CTF), and the STAR keeps rlnCtfBfactor out of it (RELION is not told)."""
    base = dict(**SMALL, n_particles=6, ctf=True, seed=2)
    plain = simulate_dataset(SimulationConfig(**base), tmp_path / "plain")
    blurred = simulate_dataset(
        SimulationConfig(**base, envelope_b_factor_angstrom2=400.0), tmp_path / "env"
    )
    f_plain = np.fft.rfft2(_images(plain).astype(np.float64))
    f_env = np.fft.rfft2(_images(blurred).astype(np.float64))
    s2 = (np.fft.fftfreq(32, d=7.5)[:, None] ** 2) + (np.fft.rfftfreq(32, d=7.5)[None, :] ** 2)
    expected = f_plain * np.exp(-400.0 / 4.0 * s2)
    assert np.abs(f_env - expected).max() < 1e-4 * np.abs(f_plain).max()
    assert np.abs(f_env - f_plain).max() > 0.03 * np.abs(f_plain).max()  # the check can fail
    columns = read_particles_star(blurred.particles_star).particles.columns
    assert (
        "rlnCtfBfactor" not in columns
        or (read_particles_star(blurred.particles_star).particles.rlnCtfBfactor == 0).all()
    )
    with pytest.raises(ValueError, match="envelope_b_factor_angstrom2"):
        SimulationConfig(**SMALL, envelope_b_factor_angstrom2=-1.0)


def test_orientation_sources_and_pure_noise_only(tmp_path):
    grid = simulate_dataset(
        SimulationConfig(**SMALL, orientations="grid", angular_step_degrees=30.0,
                         cone_overrepresentation=3.0, cone_tilt_max_degrees=40.0),
        tmp_path / "grid",
    )  # fmt: skip
    truth = read_particles_star(grid.ground_truth_star).particles
    inside = (truth.rlnAngleTilt <= 40).sum()
    assert len(truth) == grid.n_particles > 40 and inside >= 3 * 3  # 3 grid views in the cone
    # explicit poses from a STAR file, with their origins
    poses = uniform_poses(12, seed=2)
    table = poses.to_dataframe().assign(rlnOriginXAngst=2.0)
    write_star_atomic(tmp_path / "angles.star", {"particles": table})
    star = simulate_dataset(
        SimulationConfig(**SMALL, orientations="star", angles_star=str(tmp_path / "angles.star")),
        tmp_path / "star",
    )
    back = read_particles_star(star.ground_truth_star).particles
    np.testing.assert_allclose(back.rlnAngleTilt, poses.tilt_degrees, atol=1e-5)
    np.testing.assert_allclose(back.rlnOriginXAngst, 2.0)
    only_noise = simulate_dataset(
        SimulationConfig(**SMALL, n_particles=8, noise_sd=2.0, pure_noise_only=True),
        tmp_path / "noise",
    )
    assert only_noise.n_signal == 0 and only_noise.n_pure_noise == 8
    assert len(read_star(only_noise.ground_truth_star)["particles"]) == 0
    assert _images(only_noise).std() == pytest.approx(2.0, rel=0.05)


def test_map_source_and_config_errors(tmp_path):
    first = simulate_dataset(SimulationConfig(**SMALL, n_particles=5), tmp_path / "first")
    from_map = simulate_dataset(
        SimulationConfig(map_path=str(first.true_map), n_particles=5, backend="eager"),
        tmp_path / "map",
    )
    assert from_map.box_size == 32 and from_map.voxel_size_angstrom == pytest.approx(7.5)
    np.testing.assert_array_equal(_images(first), _images(from_map))
    with pytest.raises(ValueError, match="noise_sd or snr"):
        SimulationConfig(noise_sd=1.0, snr=1.0)
    with pytest.raises(ValueError, match="unknown"):
        config_from_dict({"particle_count": 3})
    with pytest.raises(ValueError, match="even"):
        SimulationConfig(box_size=33)


def test_cli_with_config_file(tmp_path):
    from cryoprior.cli.simulate import simulate

    app = typer.Typer()
    app.command()(simulate)
    config = tmp_path / "sim.toml"
    config.write_text(
        'model = "beta-galactosidase"\nbox_size = 32\nvoxel_size_angstrom = 7.5\n'
        'n_particles = 50\nnoise_sd = 3.0\nseed = 5\nbackend = "eager"\n'
    )
    assert load_config(config).n_particles == 50
    runner = CliRunner()
    result = runner.invoke(app, [str(tmp_path / "out"), "--config", str(config),
                                 "--particles", "12", "--ctf"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "simulation.json").read_text())
    assert record["config"]["n_particles"] == 12  # the command line wins
    assert record["config"]["noise_sd"] == 3.0 and record["config"]["ctf"] is True
    # the record is itself a config file that gives the same dataset
    again = runner.invoke(app, [str(tmp_path / "again"), "--config",
                                str(tmp_path / "out" / "simulation.json")])  # fmt: skip
    assert again.exit_code == 0, again.output
    for name in ("particles.star", "Particles/particles_0001.mrcs"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    bad = runner.invoke(app, [str(tmp_path / "bad"), "--noise-sd", "1", "--snr", "1"])
    assert bad.exit_code == 2 and "noise_sd or snr" in bad.output
    exists = runner.invoke(app, [str(tmp_path / "out"), "--config", str(config)])
    assert exists.exit_code == 1 and "not empty" in exists.output


def test_cli_options_and_file_keys_are_the_field_names(tmp_path):
    """Every option is the field's name (--box-size; the short --box too), a file uses the same
    keys, and a value typed on the command line wins over the file even when it equals the
    default; a key of another vocabulary is refused in one line naming the file and the key."""
    from cryoprior.cli.simulate import simulate

    app = typer.Typer()
    app.command()(simulate)
    runner = CliRunner()
    config = tmp_path / "sim.toml"
    config.write_text(
        "box_size = 16\nvoxel_size_angstrom = 15.0\nn_particles = 3\nseed = 5\nnoise_sd = 1.0\n"
        'backend = "eager"\n'
    )
    result = runner.invoke(app, [str(tmp_path / "out"), "--config", str(config),
                                 "--seed", "0", "--n-particles", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "simulation.json").read_text())["config"]
    assert (record["seed"], record["n_particles"], record["box_size"]) == (0, 2, 16)
    long_flags = runner.invoke(app, [str(tmp_path / "long"), "--box-size", "16",
                                     "--voxel-size-angstrom", "15", "--n-particles", "2",
                                     "--noise-sd", "1", "--backend", "eager"])  # fmt: skip
    short_flags = runner.invoke(app, [str(tmp_path / "short"), "--box", "16",
                                      "--voxel-size", "15", "--particles", "2",
                                      "--noise-sd", "1", "--backend", "eager"])  # fmt: skip
    assert long_flags.exit_code == 0 and short_flags.exit_code == 0, long_flags.output
    for name in ("particles.star", "Particles/particles_0001.mrcs"):
        assert (tmp_path / "long" / name).read_bytes() == (tmp_path / "short" / name).read_bytes()
    old = tmp_path / "old.toml"
    old.write_text("box = 16\nvoxel_size_angstrom = 15.0\n")
    refused = runner.invoke(app, [str(tmp_path / "old"), "--config", str(old)])
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1, refused.output
    assert str(old) in lines[0] and "unknown simulation parameter(s): box (box_size" in lines[0]
    assert not (tmp_path / "old").exists()


@pytest.mark.relion
def test_relion_reconstruct_gives_back_the_map(tmp_path):
    if shutil.which("relion_reconstruct") is None:
        pytest.skip("relion_reconstruct (RELION 3.1) is not on PATH")
    result = simulate_dataset(
        SimulationConfig(box_size=48, voxel_size_angstrom=5.0, n_particles=2000, ctf=True,
                         astigmatism_angstrom=1000.0, shift_sd_angstrom=5.0, seed=2,
                         backend="eager"),
        tmp_path / "clean",
    )  # fmt: skip
    subprocess.run(
        ["relion_reconstruct", "--i", "ground_truth.star", "--o", "rec.mrc", "--ctf"],
        cwd=result.output_dir, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    reconstruction = mrcfile.read(result.output_dir / "rec.mrc").astype(np.float64)
    truth = mrcfile.read(result.true_map).astype(np.float64)
    fsc = _fsc(reconstruction, truth)
    limit = int(0.8 * 24)
    assert fsc[1 : limit + 1].min() >= 0.99, np.round(fsc, 4)
