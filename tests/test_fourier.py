"""Tests of cryoprior.fourier against closed forms and invariants.

Gaussians are the closed forms: a 3D Gaussian of standard deviation sigma has the Fourier
transform exp(-2 pi^2 sigma^2 s^2), so a B-factor filter exp(-B s^2 / 4) turns it into a
Gaussian of variance sigma^2 + B / (8 pi^2) with the same integral, and a Gaussian a few voxels
wide is band-limited to rounding error, so that Fourier resampling must reproduce it sampled on
the new grid.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoprior.conventions import frequency_grid_rfft, shell_index
from cryoprior.fourier import (
    apply_filter,
    bfactor_filter,
    butterworth_lowpass,
    fourier_crop,
    fourier_pad,
    fourier_radius,
    frequency_grid,
    radial_average,
    raised_cosine_lowpass,
    real_space_radius,
    resample_fourier,
    shell_counts,
    soft_mask_outside_sphere,
    soft_sphere,
)
from cryoprior.fourier.grids import resolution_to_shell, shell_resolution_angstrom
from cryoprior.fourier.resample import resampled_size


def _gaussian(
    n: int, *, voxel_size_angstrom: float, sigma_angstrom: float, offset_angstrom=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """exp(-|r - offset|^2 / (2 sigma^2)), r in Angstrom about voxel n//2, (z, y, x) offset."""
    coords = (np.arange(n, dtype=np.float64) - n // 2) * voxel_size_angstrom
    z, y, x = np.meshgrid(coords, coords, coords, indexing="ij")
    oz, oy, ox = offset_angstrom
    r2 = (z - oz) ** 2 + (y - oy) ** 2 + (x - ox) ** 2
    return np.exp(-r2 / (2 * sigma_angstrom**2))


def _readonly(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.setflags(write=False)
    return array


# --- grids and shells ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [7, 8])
def test_full_grid_agrees_with_rfft_grid_and_numpy(n):
    full = frequency_grid(n)
    assert full.shape == (n, n, n, 3)
    np.testing.assert_array_equal(full[:, :, : n // 2 + 1], frequency_grid_rfft(n))
    # Same |f| as numpy's fftfreq (which puts -0.5 at the even Nyquist index).
    f = np.fft.fftfreq(n)
    fz, fy, fx = np.meshgrid(f, f, f, indexing="ij")
    np.testing.assert_allclose(np.sum(full**2, axis=-1), fz**2 + fy**2 + fx**2)
    np.testing.assert_allclose(
        fourier_radius(n, rfft=False), np.sqrt(fz**2 + fy**2 + fx**2) * n, atol=1e-12
    )
    assert frequency_grid(n, ndim=2).shape == (n, n, 2)


@pytest.mark.parametrize("n", [9, 12])
def test_shell_counts_agree_with_full_transform(n):
    counts = shell_counts(n)
    assert counts.shape == (n // 2 + 1,)
    assert counts[0] == 1
    # Independent count on the full grid: every full-grid voxel in a shell is a stored rfft
    # voxel or the Hermitian partner of one with 0 < kx < n/2.
    full_shells = np.floor(fourier_radius(n, rfft=False) + 0.5).astype(int)
    full_counts = np.bincount(full_shells.ravel())[: n // 2 + 1]
    shells = shell_index(n)
    kx = np.arange(n // 2 + 1)
    unpaired = (kx == 0) | ((n % 2 == 0) & (kx == n // 2))
    unpaired_shells = shells[..., unpaired].ravel()
    unpaired_counts = np.bincount(unpaired_shells, minlength=shells.max() + 1)[: n // 2 + 1]
    np.testing.assert_array_equal(full_counts, 2 * counts - unpaired_counts)
    # All stored voxels are in a shell 0..n//2 or in the corners beyond.
    assert counts.sum() + np.count_nonzero(shells > n // 2) == shells.size


def test_radial_average_closed_forms_and_batch():
    n = 10
    np.testing.assert_allclose(radial_average(np.full((n, n, 6), 2.5), n=n), 2.5)
    np.testing.assert_allclose(
        radial_average(shell_index(n).astype(float), n=n), np.arange(n // 2 + 1)
    )
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 3, n, n, n // 2 + 1))
    batched = radial_average(values, n=n)
    assert batched.shape == (2, 3, n // 2 + 1)
    looped = np.array([[radial_average(v, n=n) for v in row] for row in values])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)
    # The brute-force definition.
    shells = shell_index(n)
    expected = [values[0, 0][shells == s].mean() for s in range(n // 2 + 1)]
    np.testing.assert_allclose(batched[0, 0], expected, rtol=1e-13)
    # Complex input averages real and imaginary parts; 2D images work too.
    complex_values = values[0, 0] + 1j * values[0, 1]
    np.testing.assert_allclose(
        radial_average(complex_values, n=n), batched[0, 0] + 1j * batched[0, 1], rtol=1e-13
    )
    assert radial_average(np.ones((n, n // 2 + 1)), n=n, ndim=2).shape == (n // 2 + 1,)
    with pytest.raises(ValueError, match="must end in shape"):
        radial_average(values, n=n + 2)


def test_shell_resolution_helpers():
    res = shell_resolution_angstrom(64, voxel_size_angstrom=1.25)
    assert np.isinf(res[0])
    np.testing.assert_allclose(res[1:], 80.0 / np.arange(1, 33))
    assert resolution_to_shell(4.0, n=64, voxel_size_angstrom=1.25) == 20
    assert resolution_to_shell(2.0, n=41, voxel_size_angstrom=1.0) == 21  # 20.5 rounds up


# --- filters ---------------------------------------------------------------------------------


def test_lowpass_of_a_delta_is_the_filters_inverse_transform():
    n = 16
    filt = raised_cosine_lowpass(n, resolution_angstrom=6.0, voxel_size_angstrom=1.5)
    delta = np.zeros((n, n, n))
    delta[0, 0, 0] = 1.0
    np.testing.assert_allclose(
        apply_filter(delta, filt), np.fft.irfftn(filt, s=(n, n, n), axes=(0, 1, 2)), atol=1e-15
    )
    # At the centre voxel n//2 the response is the same kernel, centred.
    centred = np.zeros((n, n, n))
    centred[n // 2, n // 2, n // 2] = 1.0
    np.testing.assert_allclose(
        apply_filter(centred, filt),
        np.fft.fftshift(np.fft.irfftn(filt, s=(n, n, n), axes=(0, 1, 2))),
        atol=1e-15,
    )


def test_raised_cosine_lowpass_shape_and_edge():
    n = 32
    filt = raised_cosine_lowpass(
        n, resolution_angstrom=8.0, voxel_size_angstrom=1.0, width_fourier_voxels=4.0
    )
    assert filt.shape == (n, n, n // 2 + 1)
    assert filt.dtype == np.float64
    radius = fourier_radius(n)
    cutoff = n * 1.0 / 8.0
    np.testing.assert_array_equal(filt[radius <= cutoff - 2.0], 1.0)
    np.testing.assert_array_equal(filt[radius >= cutoff + 2.0], 0.0)
    np.testing.assert_allclose(filt[0, 0, 4], 0.5)
    # Monotone non-increasing in |k|.
    order = np.argsort(radius, axis=None)
    assert np.all(np.diff(filt.ravel()[order]) <= 1e-15)
    assert raised_cosine_lowpass(
        n, resolution_angstrom=8.0, voxel_size_angstrom=1.0, ndim=2
    ).shape == (n, n // 2 + 1)
    with pytest.raises(ValueError):
        raised_cosine_lowpass(n, resolution_angstrom=0.0, voxel_size_angstrom=1.0)


def test_butterworth_lowpass_closed_form():
    n = 24
    filt = butterworth_lowpass(n, cutoff_cycles_per_voxel=0.2, order=8)
    freq = np.linalg.norm(frequency_grid_rfft(n), axis=-1)
    np.testing.assert_allclose(filt, 1.0 / np.sqrt(1.0 + (freq / 0.2) ** 16), rtol=1e-14)
    np.testing.assert_allclose(
        butterworth_lowpass(20, cutoff_cycles_per_voxel=0.25, order=3)[0, 5, 0], 1 / np.sqrt(2)
    )
    assert filt[0, 0, 0] == 1.0
    order = np.argsort(freq, axis=None)
    assert np.all(np.diff(filt.ravel()[order]) <= 1e-15)


@pytest.mark.parametrize(("sigma_angstrom", "b_factor_angstrom2"), [(2.5, 100.0), (3.5, -100.0)])
def test_bfactor_filter_of_a_gaussian_is_the_wider_gaussian(sigma_angstrom, b_factor_angstrom2):
    n, voxel = 40, 1.2
    blob = _gaussian(n, voxel_size_angstrom=voxel, sigma_angstrom=sigma_angstrom)
    filt = bfactor_filter(n, b_factor_angstrom2=b_factor_angstrom2, voxel_size_angstrom=voxel)
    new_sigma = np.sqrt(sigma_angstrom**2 + b_factor_angstrom2 / (8 * np.pi**2))
    expected = (sigma_angstrom / new_sigma) ** 3 * _gaussian(
        n, voxel_size_angstrom=voxel, sigma_angstrom=new_sigma
    )
    np.testing.assert_allclose(apply_filter(blob, filt), expected, atol=1e-8)
    assert filt[0, 0, 0] == 1.0


def test_apply_filter_batches_2d_and_does_not_modify_inputs():
    rng = np.random.default_rng(1)
    volumes = _readonly(rng.normal(size=(3, 12, 12, 12)))
    filt = _readonly(butterworth_lowpass(12, cutoff_cycles_per_voxel=0.15, order=4))
    batched = apply_filter(volumes, filt)
    assert batched.shape == volumes.shape
    np.testing.assert_allclose(batched[1], apply_filter(volumes[1], filt), atol=1e-14)
    # Parseval: the filtered map's energy is the filtered spectrum's (rfft Hermitian weights).
    weights = np.full(filt.shape, 2.0)
    weights[..., 0] = 1.0
    weights[..., -1] = 1.0  # n even: the Nyquist plane is stored once
    spectrum = np.fft.rfftn(volumes[0]) * filt
    np.testing.assert_allclose(
        np.sum(batched[0] ** 2), np.sum(weights * np.abs(spectrum) ** 2) / 12**3, rtol=1e-12
    )
    images = rng.normal(size=(5, 12, 12))
    filt_2d = butterworth_lowpass(12, cutoff_cycles_per_voxel=0.15, order=4, ndim=2)
    assert apply_filter(images, filt_2d).shape == (5, 12, 12)
    np.testing.assert_allclose(
        apply_filter(images, filt_2d, ndim=2)[2], apply_filter(images[2], filt_2d), atol=1e-14
    )
    # Integer input is accepted and gives float64.
    assert apply_filter(np.ones((8, 8, 8), dtype=np.int32), np.ones((8, 8, 5))).dtype == np.float64
    with pytest.raises(ValueError, match="must end in shape"):
        apply_filter(volumes, np.ones((12, 12, 12)), ndim=3)


# --- masks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [15, 16])
def test_soft_sphere_inside_outside_and_monotone_edge(n):
    radius, width = 4.0, 3.0
    mask = soft_sphere(n, radius_voxels=radius, edge_width_voxels=width)
    assert mask.shape == (n, n, n)
    assert mask.dtype == np.float64
    r = real_space_radius(n)
    np.testing.assert_array_equal(mask[r <= radius], 1.0)
    np.testing.assert_array_equal(mask[r >= radius + width], 0.0)
    edge = (r > radius) & (r < radius + width)
    assert np.all((mask[edge] > 0) & (mask[edge] < 1))
    order = np.argsort(r, axis=None)
    assert np.all(np.diff(mask.ravel()[order]) <= 1e-15)
    # Centred at n//2, with 0.5 half-way along the edge.
    assert mask[n // 2, n // 2, n // 2] == 1.0
    half = soft_sphere(n, radius_voxels=3.0, edge_width_voxels=4.0)
    np.testing.assert_allclose(half[n // 2, n // 2, n // 2 + 5], 0.5)
    np.testing.assert_allclose(half[n // 2 - 5, n // 2, n // 2], 0.5)
    hard = soft_sphere(n, radius_voxels=radius, edge_width_voxels=0.0)
    np.testing.assert_array_equal(hard, (r <= radius).astype(float))
    assert soft_sphere(n, radius_voxels=radius, edge_width_voxels=width, ndim=2).shape == (n, n)


def test_soft_mask_outside_sphere_is_relions_blend():
    n, radius, width = 14, 3.0, 3.0
    rng = np.random.default_rng(2)
    volumes = _readonly(rng.normal(size=(2, n, n, n)))
    out = soft_mask_outside_sphere(volumes, radius_voxels=radius, edge_width_voxels=width)
    # RELION's softMaskOutsideMap, written out voxel by voxel for the first map.
    vol = volumes[0]
    r = real_space_radius(n)
    raised = np.where(r < radius, 0.0, 0.5 + 0.5 * np.cos(np.pi * (radius + width - r) / width))
    raised = np.where(r > radius + width, 1.0, raised)
    background = np.sum(raised * vol) / np.sum(raised)
    expected = (1 - raised) * vol + raised * background
    np.testing.assert_allclose(out[0], expected, atol=1e-14)
    # Batched == looped; constant maps stay constant; an explicit fill value.
    np.testing.assert_allclose(
        out[1],
        soft_mask_outside_sphere(volumes[1], radius_voxels=radius, edge_width_voxels=width),
        atol=1e-14,
    )
    np.testing.assert_allclose(
        soft_mask_outside_sphere(np.full((n, n, n), 3.0), radius_voxels=2, edge_width_voxels=3),
        3.0,
    )
    mask = soft_sphere(n, radius_voxels=radius, edge_width_voxels=width)
    np.testing.assert_allclose(
        soft_mask_outside_sphere(vol, radius_voxels=radius, edge_width_voxels=width, fill_value=0),
        vol * mask,
    )


# --- resampling ------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(16, 24), (16, 25), (15, 20), (15, 16), (9, 9)])
def test_pad_then_crop_is_exact(n, m):
    rng = np.random.default_rng(n * 100 + m)
    volume = _readonly(rng.normal(size=(2, n, n, n)))
    padded = fourier_pad(volume, new_size=m)
    assert padded.shape == (2, m, m, m)
    assert padded.dtype == np.float64
    np.testing.assert_allclose(fourier_crop(padded, new_size=n), volume, rtol=0, atol=1e-12)
    image = rng.normal(size=(n, n))
    round_trip = fourier_crop(fourier_pad(image, new_size=m, ndim=2), new_size=n, ndim=2)
    np.testing.assert_allclose(round_trip, image, rtol=0, atol=1e-12)


def test_resampling_keeps_mean_centre_and_odd_box_energy():
    rng = np.random.default_rng(3)
    volume = rng.normal(size=(15, 15, 15)) + 2.0
    for new_size in (9, 10, 21, 22):
        resized = (fourier_crop if new_size < 15 else fourier_pad)(volume, new_size=new_size)
        np.testing.assert_allclose(resized.mean(), volume.mean(), rtol=1e-13)
    # Parseval: trigonometric interpolation from an odd box keeps the mean square.
    padded = fourier_pad(volume, new_size=22)
    np.testing.assert_allclose(np.mean(padded**2), np.mean(volume**2), rtol=1e-13)
    # Padding interpolates: the old voxels are among the new ones when m = 3 n, and the centre
    # voxel n//2 lands on m//2.
    tripled = fourier_pad(volume, new_size=45)
    np.testing.assert_allclose(tripled[1::3, 1::3, 1::3], volume, atol=1e-12)
    np.testing.assert_allclose(tripled[22, 22, 22], volume[7, 7, 7], atol=1e-12)


@pytest.mark.parametrize(
    ("n", "voxel_size_angstrom", "new_voxel_size_angstrom"),
    [(48, 1.0, 1.5), (48, 1.0, 0.75), (45, 1.0, 1.5), (45, 1.0, 0.9), (40, 1.2, 1.0)],
)
def test_resample_band_limited_gaussian_matches_analytic(
    n, voxel_size_angstrom, new_voxel_size_angstrom
):
    sigma, offset = 3.0, (2.0, -3.0, 1.5)
    volume = _gaussian(
        n, voxel_size_angstrom=voxel_size_angstrom, sigma_angstrom=sigma, offset_angstrom=offset
    )
    out = resample_fourier(
        _readonly(volume),
        voxel_size_angstrom=voxel_size_angstrom,
        new_voxel_size_angstrom=new_voxel_size_angstrom,
    )
    m = round(n * voxel_size_angstrom / new_voxel_size_angstrom)
    assert out.shape == (m, m, m)
    expected = _gaussian(
        m, voxel_size_angstrom=new_voxel_size_angstrom, sigma_angstrom=sigma, offset_angstrom=offset
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


def test_resample_refuses_a_voxel_size_no_integer_box_gives():
    volume = np.zeros((20, 20, 20))
    with pytest.raises(ValueError, match="nearest achievable voxel size"):
        resample_fourier(volume, voxel_size_angstrom=1.0, new_voxel_size_angstrom=1.3)
    assert resampled_size(20, voxel_size_angstrom=1.0, new_voxel_size_angstrom=1.3) == (
        15,
        20 / 15,
    )
    with pytest.raises(ValueError):
        fourier_crop(volume, new_size=21)
    with pytest.raises(ValueError):
        fourier_pad(volume, new_size=19)
    with pytest.raises(ValueError, match="cubic"):
        fourier_pad(np.zeros((4, 5, 5)), new_size=8)
