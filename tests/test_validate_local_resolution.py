"""Local resolution (windowed FSC) and directional resolution (conical FSC): closed forms and
constructed maps whose resolution is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from cryoprior.conventions import rfft_frequency_indices
from cryoprior.fourier import apply_filter, raised_cosine_lowpass, soft_sphere
from cryoprior.validate.directional import conical_fsc, hemisphere_directions
from cryoprior.validate.fsc import fourier_shell_correlation
from cryoprior.validate.local_resolution import (
    local_fsc_lattice,
    local_resolution,
    resolution_from_curves,
    sample_lattice,
)


def _white(n, seed):
    return np.random.default_rng(seed).normal(size=(n, n, n))


def test_resolution_from_curves_interpolates_and_is_bounded():
    curves = np.array(
        [
            [1.0, 0.9, 0.7, 0.3, 0.1, 0.0],  # crosses 0.5 between shells 2 and 3 -> 2.5
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # never: Nyquist
            [1.0, 0.1, 0.0, 0.0, 0.0, 0.0],  # between 0 and 1 -> clipped to shell 1
        ]
    )
    res = resolution_from_curves(
        curves, threshold=0.5, window_size_voxels=10, voxel_size_angstrom=2
    )
    assert res == pytest.approx([20 / 2.5, 4.0, 20.0])


def test_sample_lattice_reproduces_linear_functions():
    n, step = 24, 4
    axis = np.arange(0, n, step)
    centres = np.array(np.meshgrid(axis, axis, axis, indexing="ij")).reshape(3, -1).T
    values = 2.0 * centres[:, 0] - centres[:, 1] + 0.5 * centres[:, 2] + 3.0
    points = np.random.default_rng(0).uniform(0, 20, size=(50, 3))
    got = sample_lattice(centres, values, points, box_size=n, step_voxels=step)
    assert got == pytest.approx(2.0 * points[:, 0] - points[:, 1] + 0.5 * points[:, 2] + 3.0)


def test_identical_halves_are_at_nyquist_and_independent_ones_at_the_window():
    n = 32
    v = _white(n, 1)
    same = local_resolution(v, v, voxel_size_angstrom=1.5, window_size_voxels=12)
    assert np.allclose(same.resolution_map_angstrom, 3.0)
    other = local_resolution(
        v, _white(n, 2), voxel_size_angstrom=1.5, window_size_voxels=12, fsc_threshold=0.5
    )
    assert other.median_angstrom > 9.0  # mostly the window's lowest shells (18 A)


def test_window_fsc_of_a_whole_box_equals_the_plain_fsc_when_the_window_is_flat():
    # a lattice point's window covers the box; with both maps zero outside the window's flat
    # centre, the windowed FSC is the plain FSC of the maps
    n = 16
    inner = soft_sphere(n, radius_voxels=3, edge_width_voxels=0)
    a, b = inner * _white(n, 3), inner * _white(n, 4)
    centres, curves = local_fsc_lattice(
        a,
        b,
        mask=np.pad(np.ones((1, 1, 1), bool), ((8, 7),) * 3),
        window_size_voxels=n,
        step_voxels=8,
    )
    row = np.nonzero((centres == 8).all(axis=1))[0][0]
    assert np.allclose(curves[row], fourier_shell_correlation(a, b), atol=1e-5)


def test_two_regions_of_different_resolution_are_told_apart():
    # left half of the box band-limited to 4 A, right half to 8 A, white noise on top: the
    # local resolution recovers both (window 16 voxels of 1 A, threshold 0.5)
    n = 64
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(n, n, n))
    s4 = apply_filter(
        signal, raised_cosine_lowpass(n, resolution_angstrom=4, voxel_size_angstrom=1)
    )
    s8 = apply_filter(
        signal, raised_cosine_lowpass(n, resolution_angstrom=8, voxel_size_angstrom=1)
    )
    x = np.arange(n)[None, None, :]
    truth = np.where(x < n // 2, s4, s8)
    h1 = truth + 0.5 * rng.normal(size=truth.shape)
    h2 = truth + 0.5 * rng.normal(size=truth.shape)
    mask = np.ones((n, n, n))
    mask[:, :, :4] = mask[:, :, -4:] = 0  # keep away from the box edge
    local = local_resolution(h1, h2, mask=mask, voxel_size_angstrom=1.0, window_size_voxels=16)
    left = np.median(local.resolution_map_angstrom[:, :, 8:24])
    right = np.median(local.resolution_map_angstrom[:, :, 40:56])
    assert 3.3 < left < 4.8
    assert 7.0 < right < 10.5
    assert np.isnan(local.resolution_map_angstrom[:, :, 0]).all()
    assert local.histogram_counts.sum() == int((mask > 0.5).sum())
    assert local.histogram_edges_angstrom[0] >= 2.0


def test_hemisphere_directions_cover_the_hemisphere_evenly():
    d = hemisphere_directions(200)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    # mean of z over an even hemisphere is 1/2
    assert d[:, 2].mean() == pytest.approx(0.5, abs=0.01)


def test_a_ninety_degree_cone_is_the_plain_fsc():
    a, b = _white(24, 5), _white(24, 6) + _white(24, 5)
    d = conical_fsc(a, b, voxel_size_angstrom=1.0, n_directions=3, cone_half_angle_degrees=90)
    assert np.allclose(d.fsc, fourier_shell_correlation(a, b)[None, :])


def test_anisotropic_resolution_is_measured_along_the_starved_axis():
    # signal whose Fourier components with |kz| > 6 are missing (z resolution 64/6 ~ 10.7 A at
    # 1 A/voxel), full in x and y: the directional resolution along z is the worst
    n = 64
    rng = np.random.default_rng(1)
    white = rng.normal(size=(n, n, n))
    kz = rfft_frequency_indices(n)[0]
    signal = scipy.fft.irfftn(scipy.fft.rfftn(white) * (np.abs(kz) <= 6), s=(n, n, n))
    sd = signal.std()
    h1 = signal + 0.3 * sd * rng.normal(size=signal.shape)
    h2 = signal + 0.3 * sd * rng.normal(size=signal.shape)
    dirs = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])
    d = conical_fsc(h1, h2, voxel_size_angstrom=1.0, directions=dirs, cone_half_angle_degrees=20)
    z_res, x_res, y_res = d.resolution_angstrom
    assert 8.0 < z_res < 13.0  # cut at 64/6 = 10.7 A, softened by the cone and interpolation
    assert x_res < 3.0 and y_res < 3.0
    assert d.anisotropy > 3.0
    assert d.worst_angstrom == z_res
    assert d.tilt_degrees[0] == pytest.approx(0.0)
    # isotropic signal, same noise: every direction alike
    noise_sd = 0.3 * sd * np.sqrt(white.var() / signal.var())
    i1 = white + noise_sd * rng.normal(size=white.shape)
    i2 = white + noise_sd * rng.normal(size=white.shape)
    iso = conical_fsc(i1, i2, voxel_size_angstrom=1.0, n_directions=20)
    assert iso.to_dict()["anisotropy"] < 1.1
