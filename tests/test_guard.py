"""The guard: spectral trailing (v1) or per-shell amplitude cap (v2) beyond the FSC = 1/7 shell,
and greyscale matching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from cryoprior.regularizers.guard import (
    GuardSettings,
    apply_guard,
    fsc_cutoff_shell,
    significant_fsc,
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
    settings = GuardSettings(rescale=False, edge_width_shells=3.0, method="trailing")
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
    for method in ("trailing", "bounded"):
        _, report = apply_guard(
            regularized,
            plain,
            fsc=_fsc_crossing_at(12.0),
            settings=GuardSettings(rescale=False, method=method),
        )
        assert report.power_removed_fraction == pytest.approx(0.0, abs=1e-12), method


def test_greyscale_is_fitted_in_the_particle_region_not_by_maximum():
    rng = np.random.default_rng(2)
    plain = rng.normal(size=(N, N, N))
    regularized = 3.0 * plain + 2.0
    v1 = GuardSettings(method="trailing")  # beyond the cut-off the plain map: out == plain
    out, report = apply_guard(regularized, plain, fsc=_fsc_crossing_at(9.0), settings=v1)
    assert report.scale == pytest.approx(1 / 3, rel=1e-9)
    assert report.offset == pytest.approx(-2 / 3, rel=1e-9)
    np.testing.assert_allclose(out, plain, atol=1e-9)
    # a bright voxel outside the particle region does not change the fit (a max-matching
    # rescale, as the paper's script did, would divide the map by about 1e4)
    spiked = regularized.copy()
    spiked[0, 0, 0] += 1e4
    _, report = apply_guard(spiked, plain, fsc=_fsc_crossing_at(9.0), settings=v1)
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


# --- guard v2 ("bounded"): beyond the cut-off the regularized map, capped per shell ---------

V2 = GuardSettings(method="bounded", rescale=False)


def _shell_power(volume_ft: np.ndarray, n: int = N) -> np.ndarray:
    idx = np.minimum(np.rint(_radius(n)).astype(int), n // 2 + 1)
    return np.bincount(idx.ravel(), weights=(np.abs(volume_ft) ** 2).ravel(), minlength=n // 2 + 2)


def test_v2_keeps_below_the_edge_and_caps_each_shell_beyond_at_sqrt_fsc():
    """Closed form: below cutoff - edge the output is the regularized map bit for bit; in every
    shell beyond the cut-off its power is min(regularized power, FSC x plain power)."""
    rng = np.random.default_rng(3)
    plain = rng.normal(size=(N, N, N))
    regularized = 5.0 * rng.normal(size=(N, N, N))  # far more power than the plain map
    fsc = np.clip(_fsc_crossing_at(10.3), 0.1, 1.0)  # 0.1 > 3 SD of noise from shell 9 on
    assert np.all(significant_fsc(fsc, n=N)[11:] == 0.1)
    out, report = apply_guard(regularized, plain, fsc=fsc, settings=V2)
    assert report.method == "bounded"
    out_ft, reg_ft, pln_ft = (scipy.fft.rfftn(a) for a in (out, regularized, plain))
    r = _radius(N)
    below = r <= report.cutoff_shell - V2.edge_width_shells
    np.testing.assert_allclose(out_ft[below], reg_ft[below], atol=1e-9 * np.abs(reg_ft).max())
    p_out, p_reg, p_pln = _shell_power(out_ft), _shell_power(reg_ft), _shell_power(pln_ft)
    for s in range(11, N // 2 + 1):  # wholly beyond the cut-off (10.3, edge ends at 9.5)
        assert p_out[s] == pytest.approx(min(p_reg[s], fsc[s] * p_pln[s]), rel=1e-9)
    # the phases beyond the cut-off stay the regularized map's (a positive factor per shell)
    beyond = (r >= 11.5) & (r < N // 2 + 0.5)  # corners beyond Nyquist are set to 0
    ratio = out_ft[beyond] / reg_ft[beyond]
    assert np.all(ratio.real > 0) and np.allclose(ratio.imag, 0.0, atol=1e-9)
    assert 0.0 < report.power_removed_fraction < 1.0


def test_v2_ignores_the_fsc_of_the_dc_term():
    """Zero-mean half-maps (normalised by some pipelines) can have any FSC at the DC term,
    which is no shell: a negative one must not move the cut-off to 0 and drop the map."""
    rng = np.random.default_rng(5)
    plain = rng.normal(size=(N, N, N))
    regularized = 2.0 * rng.normal(size=(N, N, N))
    fsc = np.clip(_fsc_crossing_at(10.3), 0.1, 1.0)
    zero_mean = fsc.copy()
    zero_mean[0] = -0.3
    out, report = apply_guard(regularized, plain, fsc=fsc, settings=V2)
    out0, report0 = apply_guard(regularized, plain, fsc=zero_mean, settings=V2)
    assert report0.cutoff_shell == report.cutoff_shell > 9
    np.testing.assert_allclose(out0, out, atol=1e-12 * np.abs(out).max())


def test_v2_never_raises_a_shell():
    """A regularized map weaker than the data allow passes unchanged (the cap only lowers)."""
    rng = np.random.default_rng(4)
    plain = rng.normal(size=(N, N, N))
    reg_ft = scipy.fft.rfftn(0.01 * rng.normal(size=(N, N, N)))
    reg_ft[np.rint(_radius(N)) > N // 2] = 0  # no FSC beyond Nyquist: v2 sets the corners to 0
    regularized = scipy.fft.irfftn(reg_ft, s=(N, N, N))
    fsc = np.full(N // 2 + 1, 0.1)
    fsc[:9] = 1.0  # 0.1 is significant (> 3 SD of noise) from shell 9 on
    out, report = apply_guard(regularized, plain, fsc=fsc, settings=V2)
    np.testing.assert_allclose(out, regularized, atol=1e-12)
    assert report.power_removed_fraction == pytest.approx(0.0, abs=1e-12)


def test_v2_cutoff_control_low_passed_half_gains_no_power_beyond_the_cutoff():
    """The cut-off control as an invariant: two half-maps low-passed at shell 9 (nothing beyond
    it, as particles low-passed there), a regularizer that extrapolates (power at every
    frequency): nothing of it may appear beyond shell 9 - the output there is exactly zero,
    whereas the unguarded regularizer has most of its power there."""
    rng = np.random.default_rng(5)
    r = _radius(N)
    keep = np.rint(r) <= 9

    def low_passed(volume):
        return scipy.fft.irfftn(scipy.fft.rfftn(volume) * keep, s=(N, N, N))

    signal = rng.normal(size=(N, N, N))
    half_1 = low_passed(signal + 0.3 * rng.normal(size=(N, N, N)))
    half_2 = low_passed(signal + 0.3 * rng.normal(size=(N, N, N)))
    from cryoprior.validate.fsc import fourier_shell_correlation

    fsc = fourier_shell_correlation(half_1, half_2)  # 0 beyond shell 9 (empty shells)
    extrapolated = half_1 + rng.normal(size=(N, N, N))  # "sharpened" at every frequency
    out, _ = apply_guard(extrapolated, half_1, fsc=fsc, settings=GuardSettings(method="bounded"))
    out_ft = scipy.fft.rfftn(out)
    scale = np.abs(out_ft).max()
    assert np.abs(out_ft[~keep]).max() <= 1e-9 * scale
    extra_ft = scipy.fft.rfftn(extrapolated)
    assert (np.abs(extra_ft[~keep]) ** 2).sum() > 0.5 * (np.abs(extra_ft) ** 2).sum()


def test_v2_pure_noise_gives_nothing_back():
    """Pure noise: the halves' FSC is noise around 0, so no shell is significant and nothing but
    the mean of the regularized map may come back - whatever the regularizer made of the noise.
    (Today's trailing guard returns the plain noise there instead.)"""
    from cryoprior.validate.fsc import fourier_shell_correlation

    rng = np.random.default_rng(6)
    noise_1, noise_2 = rng.normal(size=(2, N, N, N))
    fsc = fourier_shell_correlation(noise_1, noise_2)
    invented = 3.0 + rng.normal(size=(N, N, N))  # a regularizer that invents structure
    out, _ = apply_guard(invented, noise_1, fsc=fsc, settings=GuardSettings(method="bounded"))
    out_v1, _ = apply_guard(invented, noise_1, fsc=fsc, settings=GuardSettings(method="trailing"))
    assert out.std() < 0.02 * noise_1.std()
    assert out_v1.std() > 0.9 * noise_1.std()


def test_significant_fsc_floor_is_the_sd_of_pure_noise_fsc():
    """The floor's unit 1/sqrt(2 n_s): the FSC of independent Gaussian noise maps divided by it
    has SD 1 (pooled over shells 4..N/2 and 8 pairs; measured here, not assumed)."""
    from cryoprior.conventions import shell_index
    from cryoprior.validate.fsc import fourier_shell_correlation

    rng = np.random.default_rng(7)
    counts = np.bincount(shell_index(N).ravel(), minlength=N // 2 + 1)[: N // 2 + 1]
    z = []
    for _ in range(8):
        a, b = rng.normal(size=(2, N, N, N))
        z.append(fourier_shell_correlation(a, b)[4:] * np.sqrt(2.0 * counts[4:]))
    assert 0.85 < np.std(np.concatenate(z)) < 1.15
    floor = 3.0 / np.sqrt(2.0 * counts)
    fsc = np.ones(N // 2 + 1)
    fsc[6:] = 0.1  # significant from shell 9 on (floor 0.086), not at shells 6-8
    np.testing.assert_array_equal(
        significant_fsc(fsc, n=N, sigmas=3.0), np.r_[np.ones(6), np.zeros(11)]
    )
    fsc[6:9] = 1.0  # now significant throughout
    assert np.all(fsc[9:] > floor[9:])
    np.testing.assert_array_equal(significant_fsc(fsc, n=N, sigmas=3.0), fsc)
    # support ends at the first insignificant shell: a later chance pass is not support
    fsc[12] = 0.0
    np.testing.assert_array_equal(significant_fsc(fsc, n=N)[12:], 0.0)


def test_guard_v2_is_the_default():
    assert GuardSettings().method == "bounded" and not GuardSettings().cross_half_support


def test_hook_options_default_to_the_hook_guard():
    """``cryoprior-extrec``'s guard options left out are HOOK_GUARD (guard v2 with cross-half
    support); guard v1 never asks for the other half."""
    from cryoprior.cli.extrec import build_config
    from cryoprior.regularizers.guard import HOOK_GUARD

    assert build_config({}, None).guard_settings == HOOK_GUARD
    v1 = build_config({"guard_method": "trailing"}, None).guard_settings
    assert v1.method == "trailing" and not v1.cross_half_support
    alone = build_config({"guard_cross_half": False}, None).guard_settings
    assert alone == GuardSettings()


def test_guard_settings_reject_unknown_method():
    with pytest.raises(ValueError, match="unknown guard method"):
        GuardSettings(method="magic")
    with pytest.raises(ValueError, match="non-finite"):
        apply_guard(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), fsc=np.full(5, np.nan))


def test_v2_drops_insignificant_low_shells_even_below_the_cutoff():
    """Pure noise's FSC over the few voxels of shells 1-2 can exceed 1/7 by chance (0.18-0.22
    for 5a1a d8 of benchmarks/prior_eval.py); those shells hold nothing and must not pass."""
    rng = np.random.default_rng(8)
    plain, regularized = rng.normal(size=(2, N, N, N))
    fsc = np.zeros(N // 2 + 1)
    fsc[0], fsc[1], fsc[2] = 1.0, 0.2, 0.2  # above 1/7, below 3 SD (0.59, 0.35)
    out, report = apply_guard(regularized, plain, fsc=fsc, settings=V2)
    assert report.cutoff_shell > 2.0
    assert np.abs(out - regularized.mean()).max() < 1e-9


def _band(volume: np.ndarray, low: float, high: float) -> np.ndarray:
    """The volume's Fourier components with low <= rounded shell <= high."""
    r = np.rint(_radius(volume.shape[0]))
    ft = scipy.fft.rfftn(volume) * ((r >= low) & (r <= high))
    return scipy.fft.irfftn(ft, s=volume.shape)


def test_cross_half_support_ends_where_the_other_half_does_not_hold_the_map():
    """The halves share content in shells 9-10 that is not the truth (as interpolation leakage
    past a sharp cut-off): their FSC is significant there, so guard v2 keeps an extrapolating
    regularizer's shells 9-10; with cross-half support they end at shell 9, because the
    regularized map of half 1 (the truth there) does not correlate with half 2's plain map.
    When half 2 holds the truth in those shells, the support goes on."""
    from cryoprior.validate.fsc import fourier_shell_correlation

    rng = np.random.default_rng(5)
    truth = rng.normal(size=(N, N, N))
    shared = _band(rng.normal(size=(N, N, N)), 9, 10)  # common to both halves, not the truth
    noise = [0.3 * _band(rng.normal(size=(N, N, N)), 1, N) for _ in range(2)]
    plain = [_band(truth, 0, 8) + shared + noise[i] for i in range(2)]
    regularized = _band(truth, 0, 12)  # knows the truth up to shell 12: extrapolates
    fsc = fourier_shell_correlation(plain[0], plain[1])[: N // 2 + 1]
    assert fsc[9] > 0.5 and fsc[10] > 0.5  # the shared content passes the FSC's test
    bounded = GuardSettings(method="bounded", rescale=False)
    v2, report = apply_guard(regularized, plain[0], fsc=fsc, settings=bounded)
    assert report.support_end_shell is None
    cross = GuardSettings(method="bounded", rescale=False, cross_half_support=True)
    out, report = apply_guard(regularized, plain[0], fsc=fsc, settings=cross, other_plain=plain[1])
    assert report.support_end_shell == 9
    v2_power, out_power = _shell_power(scipy.fft.rfftn(v2)), _shell_power(scipy.fft.rfftn(out))
    assert v2_power[9] > 0 and v2_power[10] > 0  # guard v2 alone lets the extrapolation through
    # nothing from the first unsupported shell on (round-off of the transforms aside)
    assert out_power[9:].max() < 1e-20 * out_power.sum()
    low = np.rint(_radius(N)) <= 6
    v2_ft, out_ft = scipy.fft.rfftn(v2), scipy.fft.rfftn(out)
    np.testing.assert_allclose(out_ft[low], v2_ft[low], atol=1e-9 * np.abs(v2_ft).max())
    # the other half holds the truth in shells 9-10: the same map is supported there
    holding = _band(truth, 0, 10) + noise[1]
    _, report = apply_guard(regularized, plain[0], fsc=fsc, settings=cross, other_plain=holding)
    assert report.support_end_shell == 11
    with pytest.raises(ValueError, match="other half"):
        apply_guard(regularized, plain[0], fsc=fsc, settings=cross)
