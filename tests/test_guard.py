"""The guard: spectral trailing at the FSC = 1/7 shell and greyscale matching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from cryoprior.regularizers.guard import (
    GuardSettings,
    apply_guard,
    fsc_cutoff_shell,
    trailing_weights,
)

N = 32


def _radius(n: int) -> np.ndarray:
    k = np.arange(n)
    k = np.where(k < n // 2 + 1, k, k - n).astype(float)
    kx = np.arange(n // 2 + 1, dtype=float)
    return np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)


def _fsc_crossing_at(shell: float, n: int = N) -> np.ndarray:
    """A linear FSC falling from 1 that crosses 1/7 exactly at ``shell``."""
    s = np.arange(n // 2 + 1, dtype=float)
    return np.clip(1.0 - (1.0 - 1.0 / 7.0) * s / shell, 0.0, 1.0)


def test_fsc_cutoff_interpolates():
    fsc = _fsc_crossing_at(10.3)
    assert fsc_cutoff_shell(fsc) == pytest.approx(10.3, abs=1e-9)
    assert fsc_cutoff_shell(np.ones(N // 2 + 1)) == N // 2
    assert fsc_cutoff_shell(np.r_[1.0, np.zeros(N // 2)]) == pytest.approx(0.0 + (1 - 1 / 7) / 1.0)


def test_trailing_removes_beyond_and_keeps_below_exactly():
    rng = np.random.default_rng(0)
    plain, regularized = rng.normal(size=(2, N, N, N))
    cutoff = 10.3
    settings = GuardSettings(rescale=False, edge_width_shells=3.0)
    out, report = apply_guard(regularized, plain, fsc=_fsc_crossing_at(cutoff), settings=settings)
    assert report.cutoff_shell == pytest.approx(cutoff, abs=1e-9)
    r = _radius(N)
    out_ft, plain_ft, reg_ft = (scipy.fft.rfftn(a) for a in (out, plain, regularized))
    beyond = r >= report.cutoff_shell
    below = r <= report.cutoff_shell - settings.edge_width_shells
    scale = np.abs(plain_ft).max()
    np.testing.assert_allclose(out_ft[beyond], plain_ft[beyond], atol=1e-9 * scale)
    np.testing.assert_allclose(out_ft[below], reg_ft[below], atol=1e-9 * scale)
    # white noise: the removed power is the fraction of shells beyond the edge, about
    assert 0.5 < report.power_removed_fraction < 1.0


def test_band_limited_regularizer_loses_nothing():
    rng = np.random.default_rng(1)
    plain = rng.normal(size=(N, N, N))
    reg_ft = scipy.fft.rfftn(rng.normal(size=(N, N, N)))
    reg_ft[_radius(N) > 5] = 0
    regularized = scipy.fft.irfftn(reg_ft, s=(N, N, N))
    out, report = apply_guard(
        regularized, plain, fsc=_fsc_crossing_at(12.0), settings=GuardSettings(rescale=False)
    )
    assert report.power_removed_fraction == pytest.approx(0.0, abs=1e-12)


def test_greyscale_is_fitted_in_the_particle_region_not_by_maximum():
    rng = np.random.default_rng(2)
    plain = rng.normal(size=(N, N, N))
    regularized = 3.0 * plain + 2.0
    out, report = apply_guard(regularized, plain, fsc=_fsc_crossing_at(9.0))
    assert report.scale == pytest.approx(1 / 3, rel=1e-9)
    assert report.offset == pytest.approx(-2 / 3, rel=1e-9)
    np.testing.assert_allclose(out, plain, atol=1e-9)
    # a bright voxel outside the particle region does not change the fit (a max-matching
    # rescale, as the paper's script did, would divide the map by about 1e4)
    spiked = regularized.copy()
    spiked[0, 0, 0] += 1e4
    _, report = apply_guard(spiked, plain, fsc=_fsc_crossing_at(9.0))
    assert report.scale == pytest.approx(1 / 3, rel=1e-9)
    assert report.offset == pytest.approx(-2 / 3, rel=1e-9)


def test_trailing_weights_shape_and_range():
    w = trailing_weights(N, cutoff_shell=8.0, edge_width_shells=2.0)
    assert w.shape == (N, N, N // 2 + 1)
    assert w.min() == 0.0 and w.max() == 1.0
    r = _radius(N)
    assert np.all(w[r <= 6.0] == 1.0) and np.all(w[r >= 8.0] == 0.0)


def test_guard_rejects_bad_inputs():
    with pytest.raises(ValueError):
        apply_guard(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), fsc=np.ones(3))
    with pytest.raises(ValueError, match="constant"):
        apply_guard(np.ones((8, 8, 8)), np.zeros((8, 8, 8)), fsc=np.ones(5))
