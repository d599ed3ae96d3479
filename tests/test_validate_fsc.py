"""FSC, resolution at a threshold, masked-FSC phase randomisation: closed forms, constructed
cases, and RELION 3.1.3's ``relion_postprocess`` on the same half-maps and mask."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import starfile

from cryoprior.conventions import shell_index
from cryoprior.fourier import apply_filter, bfactor_filter, raised_cosine_lowpass, soft_sphere
from cryoprior.fourier.correlation import crossing_shell, fourier_correlation, shell_sums
from cryoprior.fourier.grids import fourier_radius, shell_counts
from cryoprior.io.model_map import model_to_map
from cryoprior.io.mrc import write_map_atomic
from cryoprior.validate.fsc import (
    FscCurve,
    fourier_shell_correlation,
    gold_standard_fsc,
    randomize_phases_beyond,
    resolution_at_threshold,
)

DATA = Path(__file__).parent / "data" / "validate"


def _white(n, seed):
    return np.random.default_rng(seed).normal(size=(n, n, n))


# --- closed forms ----------------------------------------------------------------------------


def test_identical_and_scaled_maps_correlate_perfectly():
    v = _white(16, 0)
    assert np.allclose(fourier_shell_correlation(v, v), 1.0)
    assert np.allclose(fourier_shell_correlation(v, -2.0 * v)[1:], -1.0)
    # an offset only changes shell 0
    assert np.allclose(fourier_shell_correlation(v, 3.0 * v + 5.0)[1:], 1.0)


def test_independent_noise_gives_zero_within_its_standard_error():
    fsc = fourier_shell_correlation(_white(32, 1), _white(32, 2))
    counts = shell_counts(32)
    z = fsc[2:] * np.sqrt(counts[2:])  # ~ N(0, 1) per shell
    assert np.abs(z).max() < 4.5
    assert abs(z.mean()) < 3.0 / np.sqrt(z.size) * 1.5


def test_signal_plus_noise_follows_snr_over_one_plus_snr():
    # white signal of variance 1, white noise of variance 1/snr per half: FSC = snr / (1 + snr)
    n, snr = 48, 2.0
    rng = np.random.default_rng(3)
    signal = rng.normal(size=(n, n, n))
    h1 = signal + rng.normal(scale=np.sqrt(1 / snr), size=signal.shape)
    h2 = signal + rng.normal(scale=np.sqrt(1 / snr), size=signal.shape)
    fsc = fourier_shell_correlation(h1, h2)
    assert abs(fsc[4:].mean() - snr / (1 + snr)) < 0.01


def test_matches_a_direct_sum_over_shells_and_the_mask_is_applied():
    n = 12
    a, b, m = _white(n, 4), _white(n, 5), np.abs(_white(n, 6))
    fa, fb = np.fft.rfftn(a * m), np.fft.rfftn(b * m)
    shells = shell_index(n)
    direct = []
    for s in range(n // 2 + 1):
        sel = shells == s
        num = np.sum((fa[sel] * np.conj(fb[sel])).real)
        den = np.sqrt(np.sum(np.abs(fa[sel]) ** 2) * np.sum(np.abs(fb[sel]) ** 2))
        direct.append(num / den)
    assert np.allclose(fourier_shell_correlation(a, b, mask=m), direct)


def test_batch_equals_loop_and_inputs_are_not_modified():
    a = np.stack([_white(12, i) for i in range(3)])
    b = np.stack([_white(12, 10 + i) for i in range(3)])
    a0, b0 = a.copy(), b.copy()
    batched = fourier_shell_correlation(a, b)
    looped = np.stack([fourier_shell_correlation(x, y) for x, y in zip(a, b, strict=True)])
    assert np.allclose(batched, looped)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_crossing_and_resolution_interpolate_linearly_in_frequency():
    fsc = np.array([1.0, 0.9, 0.6, 0.2, 0.1])
    assert crossing_shell(fsc, threshold=0.5) == pytest.approx(2.25)
    assert crossing_shell(fsc, threshold=0.95) == pytest.approx(0.5)  # shell 0 counts as 1
    assert np.isnan(crossing_shell(fsc, threshold=0.05))
    curves = np.stack([fsc, fsc[::-1], np.ones(5)])  # batched == looped
    looped = [float(crossing_shell(c, threshold=0.5)) for c in curves]
    assert np.allclose(crossing_shell(curves, threshold=0.5), looped, equal_nan=True)
    r = resolution_at_threshold(fsc, threshold=0.5, box_size=8, voxel_size_angstrom=1.5)
    assert r == pytest.approx(8 * 1.5 / 2.25)
    # RELION's rule: last shell before the first one below the threshold
    rule = resolution_at_threshold(
        fsc, threshold=0.5, box_size=8, voxel_size_angstrom=1.5, interpolate=False
    )
    assert rule == pytest.approx(8 * 1.5 / 2)
    # never below: Nyquist
    assert resolution_at_threshold(fsc, threshold=0.05, box_size=8, voxel_size_angstrom=1.5) == 3.0
    with pytest.raises(ValueError):
        resolution_at_threshold(fsc, threshold=0.5, box_size=16, voxel_size_angstrom=1.0)


def test_fsc_curve_reports_frequencies_and_resolutions():
    curve = FscCurve(np.array([1.0, 0.9, 0.6, 0.2, 0.1]), 8, 2.0)
    assert np.allclose(curve.spatial_frequency_per_angstrom, np.arange(5) / 16.0)
    assert curve.resolution_per_shell_angstrom[2] == 8.0
    d = curve.to_dict()
    assert d["resolution_05_angstrom"] == pytest.approx(16 / 2.25)


# --- phase randomisation -------------------------------------------------------------------------


def test_phase_randomisation_keeps_amplitudes_and_low_frequencies():
    n, start = 24, 5
    v = _white(n, 7)
    w = randomize_phases_beyond(v, shell=start, seed=1)
    fv, fw = scipy.fft.rfftn(v), scipy.fft.rfftn(w)
    inner = fourier_radius(n) < start - 1  # well inside: untouched by the Hermitian symmetrising
    assert np.allclose(fv[inner], fw[inner])
    fsc = fourier_shell_correlation(v, w)
    assert np.allclose(fsc[: start - 1], 1.0)
    assert np.abs(fsc[start + 1 :]).max() < 0.3
    # amplitudes of the kx > 0 half (free of the Hermitian constraint) are kept exactly
    assert np.allclose(np.abs(fv[..., 1:-1]), np.abs(fw[..., 1:-1]))
    assert np.array_equal(v, _white(n, 7))


def test_without_mask_the_gold_standard_is_the_plain_fsc():
    h1, h2 = _white(16, 8), _white(16, 9)
    g = gold_standard_fsc(h1, h2, voxel_size_angstrom=1.0)
    assert g.masked is None and g.randomize_from_shell is None
    assert np.array_equal(g.corrected.fsc, g.unmasked.fsc)


def test_masked_correction_removes_the_correlation_a_sharp_mask_creates():
    # signal limited to 8 A plus weak independent noise: beyond 8 A the halves share nothing,
    # but a hard-edged mask spreads the shared low-resolution signal to high frequencies; the
    # phase-randomised curve measures that and the corrected curve comes back to ~0
    n = 48
    rng = np.random.default_rng(10)
    signal = apply_filter(
        rng.normal(size=(n, n, n)),
        raised_cosine_lowpass(n, resolution_angstrom=8.0, voxel_size_angstrom=1.0),
    )
    h1 = signal + 0.05 * rng.normal(size=signal.shape)
    h2 = signal + 0.05 * rng.normal(size=signal.shape)
    mask = soft_sphere(n, radius_voxels=14, edge_width_voxels=0)
    g = gold_standard_fsc(h1, h2, mask=mask, voxel_size_angstrom=1.0)
    start = g.randomize_from_shell
    assert 5 <= start <= 8
    beyond = slice(start + 2, None)
    assert abs(g.unmasked.fsc[8:].mean()) < 0.03
    assert g.masked.fsc[beyond].mean() > 0.2  # the mask's spurious correlation
    assert abs(g.corrected.fsc[beyond].mean()) < 0.08
    # the formula, shell by shell
    t, r = g.masked.fsc, g.phase_randomised_masked.fsc
    t, r = t[beyond], r[beyond]
    expected = np.where(r > t, 0.0, (t - r) / (1.0 - r))
    assert np.allclose(g.corrected.fsc[beyond], expected)
    assert np.array_equal(g.corrected.fsc[: start + 2], g.masked.fsc[: start + 2])


def test_mask_without_a_drop_below_randomize_at_fsc_is_an_error():
    v = _white(16, 11)
    with pytest.raises(ValueError, match="never falls below"):
        gold_standard_fsc(v, v, mask=np.ones_like(v), voxel_size_angstrom=1.0)


# --- against relion_postprocess ------------------------------------------------------------------


@pytest.fixture(scope="module")
def postprocess_run(tmp_path_factory):
    """Half-maps of a model map plus noise, a soft mask, and relion_postprocess's STAR file."""
    if shutil.which("relion_postprocess") is None:
        pytest.skip("relion_postprocess (RELION 3.1) is not on PATH")
    work = tmp_path_factory.mktemp("postprocess")
    n = 64
    # the model map blurred with B = 200 A^2, noise at half its SD: the FSC falls steeply
    # through 0.143 near 3.8 A, so the resolution is well defined
    truth = apply_filter(
        model_to_map(DATA / "6bdf_chainA_fragment.pdb", box_size=n, voxel_size_angstrom=1.0),
        bfactor_filter(n, b_factor_angstrom2=200.0, voxel_size_angstrom=1.0),
    )
    rng = np.random.default_rng(0)
    sd = 0.5 * truth.std()
    h1 = truth + rng.normal(scale=sd, size=truth.shape)
    h2 = truth + rng.normal(scale=sd, size=truth.shape)
    mask = soft_sphere(n, radius_voxels=20, edge_width_voxels=6)
    for name, array in (("half1.mrc", h1), ("half2.mrc", h2), ("mask.mrc", mask)):
        write_map_atomic(work / name, array, voxel_size_angstrom=1.0)
    (work / "pp").mkdir()
    cmd = [
        "relion_postprocess", "--i", "half1.mrc", "--i2", "half2.mrc", "--mask", "mask.mrc",
        "--angpix", "1", "--adhoc_bfac", "0", "--o", "pp/postprocess",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    star = work / "pp" / "postprocess.star"
    assert star.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    blocks = starfile.read(star, always_dict=True)
    # read the half-maps back as RELION read them (float32 MRC)
    import mrcfile

    maps = [
        mrcfile.read(work / f).astype(np.float64) for f in ("half1.mrc", "half2.mrc", "mask.mrc")
    ]
    return maps, blocks


@pytest.mark.relion
def test_unmasked_and_masked_fsc_equal_relion_postprocess(postprocess_run):
    (h1, h2, mask), blocks = postprocess_run
    table = blocks["fsc"]
    g = gold_standard_fsc(h1, h2, mask=mask, voxel_size_angstrom=1.0)
    assert np.abs(g.unmasked.fsc - table["rlnFourierShellCorrelationUnmaskedMaps"]).max() < 1e-4
    assert np.abs(g.masked.fsc - table["rlnFourierShellCorrelationMaskedMaps"]).max() < 1e-4


@pytest.mark.relion
def test_corrected_fsc_and_resolution_agree_with_relion_postprocess(postprocess_run):
    (h1, h2, mask), blocks = postprocess_run
    table = blocks["fsc"]
    general = blocks["general"]
    relion_corrected = table["rlnFourierShellCorrelationCorrected"].to_numpy()
    relion_resolution = float(general["rlnFinalResolution"])
    relion_randomise_from = float(general["rlnRandomiseFrom"])
    for seed in (0, 1):
        g = gold_standard_fsc(h1, h2, mask=mask, voxel_size_angstrom=1.0, seed=seed)
        # same shell where randomisation starts
        assert 64 / g.randomize_from_shell == pytest.approx(relion_randomise_from)
        # the random phases differ from RELION's: the corrected curves agree statistically
        assert np.abs(g.corrected.fsc - relion_corrected).max() < 0.12
        # resolution within one shell, with RELION's rule and interpolated
        rule = g.corrected.resolution_angstrom(0.143, interpolate=False)
        assert abs(64 / rule - 64 / relion_resolution) <= 1.0
        assert abs(64 / g.resolution_0143_angstrom - 64 / relion_resolution) <= 1.0
    # the resolution is not trivially Nyquist or the box: the test case is informative
    assert 2.5 < relion_resolution < 8.0
    # the unmasked resolution with RELION's rule, from RELION's own unmasked column
    unmasked_rule = resolution_at_threshold(
        table["rlnFourierShellCorrelationUnmaskedMaps"].to_numpy(),
        threshold=0.143,
        box_size=64,
        voxel_size_angstrom=1.0,
        interpolate=False,
    )
    assert g.unmasked.resolution_angstrom(0.143, interpolate=False) == pytest.approx(unmasked_rule)


def test_fourier_correlation_in_a_cone_mask_equals_the_sums_by_hand():
    """The kernel with an fft_mask: the same sums written out with a Python loop over voxels."""
    rng = np.random.default_rng(3)
    n = 8
    f1 = np.fft.rfftn(rng.normal(size=(n, n, n)))
    f2 = np.fft.rfftn(rng.normal(size=(n, n, n)))
    mask = rng.random(f1.shape) < 0.5
    shells = shell_index(n)
    num, d1, d2 = np.zeros(n // 2 + 1), np.zeros(n // 2 + 1), np.zeros(n // 2 + 1)
    for idx in np.ndindex(f1.shape):
        s = shells[idx]
        if mask[idx] and s <= n // 2:
            num[s] += (f1[idx] * np.conj(f2[idx])).real
            d1[s] += abs(f1[idx]) ** 2
            d2[s] += abs(f2[idx]) ** 2
    den = np.sqrt(d1 * d2)
    expected = np.divide(num, den, out=np.zeros_like(num), where=den > 0)  # empty shells: 0
    assert np.allclose(fourier_correlation(f1, f2, n=n, fft_mask=mask), expected)
    assert np.array_equal(shell_sums(mask, n=n), np.bincount(shells[mask & (shells <= n // 2)]))
