"""Scores against the ground truth: closed forms of the real-space correlation and of the FSC of
noisy maps against the signal."""

from __future__ import annotations

import numpy as np
import pytest

from cryoprior.fourier import soft_sphere
from cryoprior.validate.fsc import fourier_shell_correlation
from cryoprior.validate.truth import compare_with_truth, real_space_correlation


def _white(n, seed):
    return np.random.default_rng(seed).normal(size=(n, n, n))


def test_correlation_is_affine_invariant_and_signed():
    a = _white(12, 0)
    assert real_space_correlation(a, 2.5 * a - 7.0) == pytest.approx(1.0)
    assert real_space_correlation(a, -a) == pytest.approx(-1.0)
    assert real_space_correlation(a, np.ones_like(a)) == 0.0


def test_binary_mask_equals_the_correlation_of_the_selected_voxels():
    a, b = _white(12, 1), _white(12, 2) + 0.5 * _white(12, 1)
    mask = (soft_sphere(12, radius_voxels=4, edge_width_voxels=0) > 0.5).astype(float)
    sel = mask > 0
    assert real_space_correlation(a, b, mask=mask) == pytest.approx(
        np.corrcoef(a[sel], b[sel])[0, 1]
    )


def test_correlation_of_signal_plus_noise_is_one_over_sqrt_one_plus_noise_to_signal():
    signal, noise = _white(48, 3), _white(48, 4)
    sigma = 0.75
    expected = 1.0 / np.sqrt(1.0 + sigma**2)
    assert real_space_correlation(signal + sigma * noise, signal) == pytest.approx(
        expected, abs=0.01
    )


def test_bad_inputs_are_rejected():
    a = _white(8, 5)
    with pytest.raises(ValueError):
        real_space_correlation(a, a[:4])
    with pytest.raises(ValueError):
        real_space_correlation(a, a, mask=-np.ones_like(a))
    with pytest.raises(ValueError):
        compare_with_truth(a, a, half_map_1=a, voxel_size_angstrom=1.0)


def test_fsc_against_truth_is_the_square_root_of_the_half_map_fsc():
    # halves = s + n_i (white, SNR 1): FSC(h1, h2) = S/(S+N), FSC(h, s) = sqrt(S/(S+N)),
    # FSC((h1+h2)/2, s) = sqrt(S/(S+N/2))
    n = 48
    s = _white(n, 6)
    h1, h2 = s + _white(n, 7), s + _white(n, 8)
    c = compare_with_truth(0.5 * (h1 + h2), s, half_map_1=h1, half_map_2=h2, voxel_size_angstrom=1)
    half_fsc = fourier_shell_correlation(h1, h2)
    assert c.half_map_1.fsc[4:].mean() == pytest.approx(np.sqrt(0.5), abs=0.015)
    assert c.half_map_2.fsc[4:].mean() == pytest.approx(np.sqrt(0.5), abs=0.015)
    assert np.mean(c.half_map_1.fsc[4:] ** 2) == pytest.approx(half_fsc[4:].mean(), abs=0.02)
    assert c.full_map.fsc[4:].mean() == pytest.approx(np.sqrt(2.0 / 3.0), abs=0.015)
    assert c.correlation_full_map == pytest.approx(np.sqrt(2.0 / 3.0), abs=0.01)
    d = c.to_dict()
    assert set(d) >= {"full_map", "half_map_1", "half_map_2", "correlation_half_maps"}


def test_a_perfect_map_reaches_nyquist_and_a_wrong_one_does_not():
    s = _white(24, 9)
    perfect = compare_with_truth(s, s, voxel_size_angstrom=1.5)
    assert perfect.full_map.resolution_angstrom(0.5) == 3.0
    assert perfect.correlation_full_map == pytest.approx(1.0)
    wrong = compare_with_truth(_white(24, 10), s, voxel_size_angstrom=1.5)
    assert wrong.full_map.resolution_angstrom(0.5) > 20.0
