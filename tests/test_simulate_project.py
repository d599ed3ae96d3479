"""Tests of the Fourier-slice projector and the CTF (cryoprior.simulate.project, .ctf).

Closed forms: a single voxel at the centre projects to an image summing to its value; a
Gaussian blob projects to a 2D Gaussian; shifts by whole pixels are np.roll; the CTF at zero
frequency is the amplitude contrast and, without Cs, vanishes where pi lambda defocus u^2 +
arcsin(Q0) is a multiple of pi. Invariants: batched == looped, inputs unchanged, the compiled
kernel equals the eager one.

External reference: RELION 3.1.3's ``relion_project`` (padding 2, trilinear, gridding
correction) on the same map, angles, origins and CTF parameters; the fixtures write the STAR
file and run it, and every image must correlate >= 0.999 with ours (in practice 1 - 1e-8).
"""

from __future__ import annotations

import shutil
import subprocess

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import torch

from cryoprior.conventions import euler_to_matrix
from cryoprior.simulate.ctf import CTFOptics, ctf_2d, electron_wavelength_angstrom
from cryoprior.simulate.phantom import atom_like_phantom
from cryoprior.simulate.project import (
    fourier_volume,
    images_from_slices,
    project,
    project_slices,
    shift_phases,
)


def _angles(seed: int, n: int):
    rng = np.random.default_rng(seed)
    rot = rng.uniform(-180, 180, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, n)))
    psi = rng.uniform(-180, 180, n)
    return rot, tilt, psi


def _cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# --- closed forms and invariants ---------------------------------------------------------------


def test_centre_voxel_projects_to_its_value():
    n = 16
    volume = np.zeros((n, n, n))
    volume[n // 2, n // 2, n // 2] = 2.5
    images = project(volume, rot_degrees=[0, 40], tilt_degrees=[0, 70], psi_degrees=[0, -30])
    assert images.shape == (2, n, n) and images.dtype == np.float32
    np.testing.assert_allclose(images.sum(axis=(1, 2)), 2.5, rtol=1e-5)
    # the peak stays on the centre pixel (n//2, n//2)
    for image in images:
        assert np.unravel_index(np.argmax(image), image.shape) == (n // 2, n // 2)


def test_gaussian_blob_projects_to_gaussian():
    """A 3D Gaussian exp(-|r - c|^2 / 2 sigma^2) projects to sqrt(2 pi) sigma times the 2D
    Gaussian centred at the first two coordinates of A c (the image is V(A^T p)).

    Not exactly: like RELION's, the projector divides the map by the radial sinc^2 of the
    trilinear kernel, which is right on average over interpolation positions but not at each;
    for a blob 5 voxels off centre this leaves errors below 1% of the peak."""
    n, sigma = 32, 2.0
    c = np.arange(n) - n // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    centre_xyz = np.array([4.0, -3.0, 2.0])
    volume = np.exp(-((x - 4.0) ** 2 + (y + 3.0) ** 2 + (z - 2.0) ** 2) / (2 * sigma**2))
    angles = (70.0, 35.0, -40.0)
    image = project(volume, rot_degrees=[angles[0]], tilt_degrees=[angles[1]],
                    psi_degrees=[angles[2]])[0]  # fmt: skip
    cx, cy, _ = euler_to_matrix(*angles) @ centre_xyz
    yy, xx = np.meshgrid(c, c, indexing="ij")
    expected = (
        np.sqrt(2 * np.pi) * sigma * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    )
    assert _cc(image, expected) > 0.9999
    np.testing.assert_allclose(image, expected, atol=1e-2 * expected.max())


def test_whole_pixel_shift_is_roll_and_sign_matches_relion_origin():
    volume = atom_like_phantom(24, n_atoms=60, seed=3)
    angles = dict(rot_degrees=[10.0], tilt_degrees=[50.0], psi_degrees=[-20.0])
    plain = project(volume, **angles)[0]
    # (dy, dx) = (2, -3) pixels moves the content down 2 rows and left 3 columns
    shifted = project(volume, **angles, shifts_pixels=[[2.0, -3.0]])[0]
    np.testing.assert_allclose(shifted, np.roll(plain, (2, -3), axis=(0, 1)), atol=1e-5)
    phases = shift_phases(24, np.array([[0.0, 0.0], [0.5, 0.25]]))
    assert phases.shape == (2, 24, 13)
    np.testing.assert_allclose(phases[0].abs().numpy(), 1.0)


def test_batched_equals_looped_and_inputs_unchanged():
    volume = atom_like_phantom(20, n_atoms=50, seed=1)
    copy = volume.copy()
    rot, tilt, psi = _angles(4, 7)
    batched = project(volume, rot_degrees=rot, tilt_degrees=tilt, psi_degrees=psi, batch_size=3)
    looped = np.stack(
        [project(volume, rot_degrees=[r], tilt_degrees=[t], psi_degrees=[p])[0]
         for r, t, p in zip(rot, tilt, psi, strict=True)]
    )  # fmt: skip
    np.testing.assert_array_equal(batched, looped)
    np.testing.assert_array_equal(volume, copy)
    fv = fourier_volume(volume)
    matrices = euler_to_matrix(rot, tilt, psi)
    m_copy = matrices.copy()
    project_slices(fv, matrices)
    np.testing.assert_array_equal(matrices, m_copy)


def test_fourier_volume_layout_and_errors():
    fv = fourier_volume(np.zeros((10, 10, 10)), padding_factor=2.0)
    assert fv.padded_size == 20 and fv.padding_factor == 2.0 and fv.margin == 11
    assert tuple(fv.data.shape) == (23, 23, 12)
    assert fourier_volume(np.zeros((10, 10, 10)), padding_factor=1.5).padded_size == 16
    with pytest.raises(ValueError, match="cubic"):
        fourier_volume(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="even"):
        fourier_volume(np.zeros((5, 5, 5)))
    with pytest.raises(ValueError, match="backend"):
        project_slices(fv, np.eye(3)[None], backend="magic")


def test_projection_of_constant_slab_is_independent_of_psi_at_tilt_zero():
    """Invariant: at tilt 0, rot and psi are both in-plane, so (rot, psi) and (rot + a, psi - a)
    give the same image."""
    volume = atom_like_phantom(24, n_atoms=80, seed=5)
    a = project(volume, rot_degrees=[30.0], tilt_degrees=[0.0], psi_degrees=[10.0])
    b = project(volume, rot_degrees=[50.0], tilt_degrees=[0.0], psi_degrees=[-10.0])
    np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(a).max())


@pytest.mark.slow
def test_compiled_kernel_equals_eager():
    """torch.compile of the fused interpolation (tens of seconds to compile on a cold cache)."""
    volume = atom_like_phantom(24, n_atoms=60, seed=2)
    fv = fourier_volume(volume)
    matrices = euler_to_matrix(*_angles(6, 9))
    eager = project_slices(fv, matrices, backend="eager")
    compiled = project_slices(fv, matrices, backend="compiled")
    scale = eager.abs().max()
    assert torch.allclose(compiled, eager, atol=1e-6 * float(scale), rtol=0)


# --- CTF closed forms --------------------------------------------------------------------------


def test_ctf_closed_forms():
    optics = CTFOptics(voltage_kv=300.0, spherical_aberration_mm=0.0, amplitude_contrast=0.1)
    n, pixel, defocus = 128, 1.0, 15000.0
    ctf = ctf_2d(n, voxel_size_angstrom=pixel, defocus_u_angstrom=[defocus],
                 defocus_v_angstrom=[defocus], defocus_angle_degrees=[0.0], optics=optics,
                 dtype=torch.float64)[0].numpy()  # fmt: skip
    assert ctf.shape == (n, n // 2 + 1)
    assert ctf[0, 0] == pytest.approx(0.1)
    # Without Cs: CTF = sin(pi lambda defocus u^2 + arcsin Q0), along the x axis (row 0)
    lam = electron_wavelength_angstrom(300.0)
    u = np.arange(n // 2 + 1) / (n * pixel)
    expected = np.sin(np.pi * lam * defocus * u**2 + np.arcsin(0.1))
    np.testing.assert_allclose(ctf[0], expected, atol=1e-12)
    # isotropic: the same along y (rows 0..n//2)
    np.testing.assert_allclose(ctf[: n // 2 + 1, 0], expected, atol=1e-12)
    assert lam == pytest.approx(0.019687, abs=1e-6)


def test_ctf_astigmatism_axis_follows_defocus_angle():
    """The defocus along the direction at angle theta is U at theta = angle, V 90 deg away."""
    optics = CTFOptics(300.0, 0.0, 0.0)
    n = 64
    kw = dict(voxel_size_angstrom=1.0, defocus_u_angstrom=[20000.0],
              defocus_v_angstrom=[10000.0], optics=optics, dtype=torch.float64)  # fmt: skip
    along_x = ctf_2d(n, defocus_angle_degrees=[0.0], **kw)[0]
    along_y = ctf_2d(n, defocus_angle_degrees=[90.0], **kw)[0]
    # with angle 0 the x axis sees U; with angle 90 the y axis sees U
    np.testing.assert_allclose(along_x[0, :].numpy(), along_y[: n // 2 + 1, 0].numpy(), atol=1e-12)
    assert not np.allclose(along_x[0, :].numpy(), along_x[: n // 2 + 1, 0].numpy())


# --- against relion_project ---------------------------------------------------------------------

BOX = 48
PIXEL = 1.5


def _optics(voltage=300.0, cs=2.7, q0=0.1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [PIXEL],
            "rlnImageSize": [BOX],
            "rlnImageDimensionality": [2],
            "rlnVoltage": [voltage],
            "rlnSphericalAberration": [cs],
            "rlnAmplitudeContrast": [q0],
        }
    )


def _run_relion_project(work, particles: pd.DataFrame, optics: pd.DataFrame, *extra: str):
    starfile.write({"optics": optics, "particles": particles}, work / "angles.star", overwrite=True)
    subprocess.run(
        ["relion_project", "--i", "map.mrc", "--o", "proj", "--ang", "angles.star",
         "--angpix", f"{PIXEL:g}", *extra],
        cwd=work, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return mrcfile.read(work / "proj.mrcs").astype(np.float64)


@pytest.fixture(scope="module")
def relion_work(tmp_path_factory):
    if shutil.which("relion_project") is None:
        pytest.skip("relion_project (RELION 3.1) is not on PATH")
    work = tmp_path_factory.mktemp("relion_project_sim")
    volume = atom_like_phantom(BOX, n_atoms=300, sigma_voxels=1.0, seed=11)
    with mrcfile.new(work / "map.mrc") as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = PIXEL
    return work, volume


@pytest.mark.relion
def test_projections_equal_relion_project(relion_work):
    work, volume = relion_work
    n = 24
    rot, tilt, psi = _angles(21, n)
    rng = np.random.default_rng(22)
    origin_x, origin_y = rng.normal(0, 4.0, n), rng.normal(0, 4.0, n)
    particles = pd.DataFrame(
        {"rlnAngleRot": rot, "rlnAngleTilt": tilt, "rlnAnglePsi": psi,
         "rlnOriginXAngst": origin_x, "rlnOriginYAngst": origin_y, "rlnOpticsGroup": 1}
    )  # fmt: skip
    relion = _run_relion_project(work, particles, _optics())
    shifts = -np.stack([origin_y, origin_x], axis=1) / PIXEL
    ours = project(volume, rot_degrees=rot, tilt_degrees=tilt, psi_degrees=psi,
                   shifts_pixels=shifts, batch_size=10).astype(np.float64)  # fmt: skip
    for i in range(n):
        assert _cc(ours[i], relion[i]) >= 0.999, f"image {i}: cc {_cc(ours[i], relion[i])}"
    # same scale (a sum along the viewing direction), to float precision
    np.testing.assert_allclose(ours, relion, atol=1e-4 * np.abs(relion).max())
    # the opposite shift sign must fail (the check can fail)
    wrong = project(volume, rot_degrees=rot, tilt_degrees=tilt, psi_degrees=psi,
                    shifts_pixels=-shifts)  # fmt: skip
    assert np.median([_cc(w, r) for w, r in zip(wrong, relion, strict=True)]) < 0.99


@pytest.mark.relion
def test_ctf_equals_relion_project_ctf(relion_work):
    work, volume = relion_work
    n = 12
    rot, tilt, psi = _angles(31, n)
    rng = np.random.default_rng(32)
    defocus_u = rng.uniform(8000, 25000, n)
    defocus_v = defocus_u - rng.uniform(2000, 4000, n)
    angle = rng.uniform(0, 180, n)
    particles = pd.DataFrame(
        {"rlnAngleRot": rot, "rlnAngleTilt": tilt, "rlnAnglePsi": psi,
         "rlnOriginXAngst": 0.0, "rlnOriginYAngst": 0.0, "rlnDefocusU": defocus_u,
         "rlnDefocusV": defocus_v, "rlnDefocusAngle": angle, "rlnOpticsGroup": 1}
    )  # fmt: skip
    optics = CTFOptics(voltage_kv=200.0, spherical_aberration_mm=1.4, amplitude_contrast=0.07)
    relion = _run_relion_project(work, particles, _optics(200.0, 1.4, 0.07), "--ctf")
    slices = project_slices(fourier_volume(volume), euler_to_matrix(rot, tilt, psi))

    def images(angle_degrees):
        ctf = ctf_2d(BOX, voxel_size_angstrom=PIXEL, defocus_u_angstrom=defocus_u,
                     defocus_v_angstrom=defocus_v, defocus_angle_degrees=angle_degrees,
                     optics=optics)  # fmt: skip
        return images_from_slices(slices * ctf).numpy().astype(np.float64)

    ours = images(angle)
    for i in range(n):
        assert _cc(ours[i], relion[i]) >= 0.999, f"image {i}: cc {_cc(ours[i], relion[i])}"
    np.testing.assert_allclose(ours, relion, atol=1e-4 * np.abs(relion).max())
    # a mirrored astigmatism angle must fail
    wrong = images(-angle)
    assert np.median([_cc(w, r) for w, r in zip(wrong, relion, strict=True)]) < 0.99
