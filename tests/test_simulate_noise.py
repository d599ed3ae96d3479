"""Tests of cryoprior.simulate.noise: Gaussian statistics, one stream per particle (the same
particle gets the same noise in any batch and with any number of threads), and the SNR
definition (squared mean image SD over the noise variance)."""

from __future__ import annotations

import numpy as np
import pytest

from cryoprior.simulate.noise import add_white_noise, gaussian_noise_stack, noise_sd_for_snr


def test_noise_statistics_and_streams():
    noise = gaussian_noise_stack(np.arange(50), 64, sd=3.0, seed=7)
    assert noise.shape == (50, 64, 64) and noise.dtype == np.float32
    assert noise.std() == pytest.approx(3.0, rel=0.01)
    assert abs(noise.mean()) < 0.02
    # white: neighbouring pixels uncorrelated
    assert abs(np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]) < 0.01
    # the same particle index gives the same image in any batch, with any threads
    again = gaussian_noise_stack([49, 3, 10], 64, sd=3.0, seed=7, threads=2)
    np.testing.assert_array_equal(again, noise[[49, 3, 10]])
    assert not np.array_equal(gaussian_noise_stack([3], 64, sd=3.0, seed=8)[0], noise[3])
    np.testing.assert_array_equal(gaussian_noise_stack([1, 2], 8, sd=0.0, seed=1), 0.0)
    with pytest.raises(ValueError):
        gaussian_noise_stack([-1], 8, sd=1.0, seed=1)


def test_snr_definition_and_add_white_noise():
    images = np.zeros((3, 16, 16))
    images[:, 8, 8] = [16.0, 32.0, 48.0]
    sds = images.std(axis=(1, 2))
    assert noise_sd_for_snr(images, snr=0.5) == pytest.approx(sds.mean() / np.sqrt(0.5))
    copy = images.copy()
    noisy = add_white_noise(images, snr=0.5, seed=2)
    np.testing.assert_array_equal(images, copy)
    assert (noisy - images).std() == pytest.approx(sds.mean() / np.sqrt(0.5), rel=0.1)
    expected = images + np.random.default_rng(2).normal(0.0, 1.5, size=images.shape)
    np.testing.assert_allclose(add_white_noise(images, sd=1.5, seed=2), expected, rtol=1e-6)
    with pytest.raises(ValueError):
        add_white_noise(images, seed=0)
