"""Training pairs from atomic models: density placement, envelope, seeded degradation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.fft

from cryoprior.prior.data import (
    FORBIDDEN_MODEL_WORDS,
    TRAINING_SOURCES,
    AtomicModel,
    DegradationConfig,
    ModelSource,
    fsc_shaped_noise,
    halfmap_filter,
    load_atomic_model,
    make_training_pair,
    model_envelope,
    source_model_paths,
    target_map,
    training_model_paths,
)

DATA = Path(__file__).parent / "data" / "prior"


def atoms_target(positions, elements, **kwargs) -> np.ndarray:
    """The prior's target map of bare atoms (x, y, z) in the box's frame."""
    n = len(positions)
    atoms = AtomicModel(
        np.asarray(positions, dtype=np.float64),
        tuple(elements),
        np.zeros(n),
        np.arange(n),
        tuple(f"A:{i + 1}:GLY" for i in range(n)),
    )
    return target_map(atoms, **kwargs)


SMALL = DegradationConfig(box_size=40)


@pytest.fixture(scope="module")
def bpti() -> AtomicModel:
    return load_atomic_model(DATA / "5pti.cif.gz")


def test_load_centres_and_cleans(bpti):
    assert len(bpti.elements) == 454 or 400 < len(bpti.elements) < 500
    assert "H" not in bpti.elements
    np.testing.assert_allclose(bpti.positions_angstrom.mean(axis=0), 0.0, atol=1e-9)
    assert 15 < bpti.radius_angstrom < 30


def test_benchmark_proteins_are_refused(tmp_path):
    for name in ("5a1a.cif.gz", "6bdf.pdb", "my_proteasome.pdb", "beta-galactosidase.cif"):
        with pytest.raises(ValueError, match="benchmark"):
            load_atomic_model(tmp_path / name)


def _tiny_pdb(
    path: Path, *, title: str, entry_id: str = "XXXX", names=("N", "CA", "C", "O"), element=True
) -> Path:
    """A one-glycine PDB file with a HEADER id and a TITLE (hand-written, 4 atoms)."""
    header = f"HEADER    MEMBRANE PROTEIN                        04-DEC-13   {entry_id}"
    xyz = [(11.104, 6.134, -6.504), (11.639, 6.071, -5.147), (10.674, 5.457, -4.128)]
    xyz.append((9.464, 5.535, -4.297))
    lines = [header, f"TITLE     {title}"]
    for i, (name, (x, y, z)) in enumerate(zip(names, xyz, strict=True), start=1):
        lines.append(
            f"ATOM  {i:5d}  {name:<3s} GLY A   1    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00"
            f"           {name[0] if element else ' '}"
        )
    path.write_text("\n".join([*lines, "END", ""]))
    return path


def test_reserved_proteins_are_refused(tmp_path):
    """TRPV1 and apoferritin (independent checks): refused by file name and by title or id."""
    for name in ("3j5p.cif", "7A4M.pdb.gz", "trpv1_rat.pdb", "apoferritin.cif", "5irz.pdb"):
        with pytest.raises(ValueError, match="reserved"):
            load_atomic_model(tmp_path / name)
    titled = {
        "a.pdb": ("STRUCTURE OF THE TRPV1 ION CHANNEL", "XXXX"),
        "b.pdb": ("CRYO-EM STRUCTURE OF MOUSE HEAVY-CHAIN APOFERRITIN", "XXXX"),
        "c.pdb": ("TRANSIENT RECEPTOR POTENTIAL VANILLOID 1", "XXXX"),
        "d.pdb": ("AN UNNAMED CHANNEL", "3J5P"),
    }
    for name, (title, entry_id) in titled.items():
        path = _tiny_pdb(tmp_path / name, title=title, entry_id=entry_id)
        with pytest.raises(ValueError, match="reserved"):
            load_atomic_model(path)
    # The same file with a neutral title and id loads: the refusal is the title's doing.
    ok = load_atomic_model(_tiny_pdb(tmp_path / "e.pdb", title="A GLYCINE", entry_id="1ABC"))
    assert ok.n_atoms == 4


def test_unknown_elements_are_refused(tmp_path):
    """A file without element columns whose atom names gemmi cannot map (element X)."""
    bad = _tiny_pdb(tmp_path / "q.pdb", title="A", names=("QN", "QA", "QC", "QO"), element=False)
    with pytest.raises(ValueError, match="4 atoms of unknown element"):
        load_atomic_model(bad)


def test_training_sources_are_allowed_and_distinct():
    """File names: none forbidden, none twice; the default list is every source's files."""
    names = [f.rsplit("/", 1)[-1].lower() for s in TRAINING_SOURCES for f in s.files]
    assert len(set(names)) == len(names)
    assert not [n for n in names if any(w in n for w in FORBIDDEN_MODEL_WORDS)]
    found = [source_model_paths(s) for s in TRAINING_SOURCES]
    assert training_model_paths() == [p for paths in found for p in paths]
    installed = [(s, paths) for s, paths in zip(TRAINING_SOURCES, found, strict=True) if paths]
    if not installed:
        pytest.skip("none of the training packages is installed")
    for source, paths in installed:  # every listed file is in the installed package
        fixed = [f for f in source.files if "*" not in f]
        assert {p.name for p in paths} >= {f.rsplit("/", 1)[-1] for f in fixed}, source.package


def test_source_model_paths_globs_and_skips(tmp_path, monkeypatch):
    """A source in a package made here: glob expanded sorted, skip words and absent files out."""
    package = tmp_path / "fakepkg_cryoprior_test"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("b.pdb", "a.pdb", "a_failing.pdb", "c.cif"):
        (package / "data" / name).write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = ModelSource(
        "fakepkg",
        "fakepkg_cryoprior_test",
        ("data/*.pdb", "data/c.cif", "data/gone.cif"),
        ("fail",),
    )
    got = [p.name for p in source_model_paths(source)]
    assert got == ["a.pdb", "b.pdb", "c.cif"]
    assert source_model_paths(ModelSource("x", "no_such_module_cryoprior", ("a.pdb",))) == []


def test_density_axis_order_and_position():
    """One carbon at (x, y, z) = (12, 18, 27) A on a 1.5 A grid peaks at [z, y, x] = [18, 12, 8]."""
    d = atoms_target(
        np.array([[12.0, 18.0, 27.0]]),
        ["C"],
        box_size=32,
        voxel_size_angstrom=1.5,
        b_factor_angstrom2=20.0,
    )
    assert np.unravel_index(np.argmax(d), d.shape) == (18, 12, 8)
    assert d.min() >= -1e-6 * d.max()


def test_density_never_wraps():
    """An atom at the face of the box is dropped rather than wrapped to the opposite face."""
    d = atoms_target(
        np.array([[1.0, 24.0, 24.0]]),
        ["C"],
        box_size=32,
        voxel_size_angstrom=1.5,
        b_factor_angstrom2=20.0,
    )
    assert d.max() == 0.0
    with pytest.raises(ValueError, match="B = 0"):
        atoms_target(
            np.zeros((1, 3)), ["C"], box_size=8, voxel_size_angstrom=1.0, b_factor_angstrom2=0.0
        )


def test_handedness_is_kept(bpti):
    """The map is the model, not its mirror image: a chiral 3-atom probe."""
    pos = np.array([[30.0, 30.0, 30.0], [36.0, 30.0, 30.0], [30.0, 39.0, 30.0], [30.0, 30.0, 42.0]])
    d = atoms_target(pos, ["C"] * 4, box_size=48, voxel_size_angstrom=1.5, b_factor_angstrom2=10.0)
    zyx = pos[:, ::-1] / 1.5
    for p in np.rint(zyx).astype(int):
        assert d[tuple(p)] > 0.5 * d.max()


def test_envelope_covers_the_model(bpti):
    pos = bpti.positions_angstrom + 30.0
    d = atoms_target(
        pos, bpti.elements, box_size=40, voxel_size_angstrom=1.5, b_factor_angstrom2=15.0
    )
    env = model_envelope(d, voxel_size_angstrom=1.5)
    assert env.min() >= 0 and env.max() <= 1
    assert (d * env).sum() > 0.99 * d.sum()
    assert 0.02 < env.mean() < 0.6


def test_fsc_shaped_noise_crosses_at_the_resolution():
    """Noise power equals signal power (FSC 0.5) at the requested resolution, grows beyond."""
    rng = np.random.default_rng(0)
    n, vox, res = 48, 1.5, 6.0
    signal = rng.normal(size=(n, n, n))
    noise = fsc_shaped_noise(signal, voxel_size_angstrom=vox, resolution_angstrom=res, rng=rng)
    k = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    r = np.rint(
        np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    ).astype(int)
    ps = np.bincount(r.ravel(), np.abs(scipy.fft.rfftn(signal)).ravel() ** 2)
    pn = np.bincount(r.ravel(), np.abs(scipy.fft.rfftn(noise)).ravel() ** 2)
    ratio = pn[1 : n // 2] / ps[1 : n // 2]
    shell = round(n * vox / res)
    assert 0.6 < ratio[shell - 1] < 1.6
    assert ratio[2] < 0.05 and ratio[-1] > 20


def test_pairs_are_seeded_and_normalised(bpti):
    a = make_training_pair(bpti, np.random.default_rng(7), SMALL)
    b = make_training_pair(bpti, np.random.default_rng(7), SMALL)
    c = make_training_pair(bpti, np.random.default_rng(8), SMALL)
    assert a.input.shape == a.target.shape == a.envelope.shape == (40, 40, 40)
    assert a.input.dtype == np.float32
    np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_array_equal(a.target, b.target)
    assert a.info == b.info
    assert not np.array_equal(a.input, c.input)


def test_pure_noise_has_an_empty_target(bpti):
    cfg = replace(SMALL, pure_noise_probability=1.0)
    pair = make_training_pair(bpti, np.random.default_rng(0), cfg)
    assert pair.info["pure_noise"] and not pair.target.any() and not pair.envelope.any()
    assert pair.input.std() > 0.5


def test_target_correlates_with_input(bpti):
    cfg = replace(
        SMALL,
        pure_noise_probability=0.0,
        resolution_range_angstrom=(4.0, 4.0),
        belt_probability=0.0,
    )
    pair = make_training_pair(bpti, np.random.default_rng(1), cfg)
    cc = np.corrcoef(pair.input.ravel(), pair.target.ravel())[0, 1]
    assert cc > 0.5
    assert np.all(pair.target[pair.envelope == 0] == 0)


def test_belt_adds_density_outside_the_envelope(bpti):
    base = replace(
        SMALL,
        pure_noise_probability=0.0,
        sphere_mask_probability=0.0,
        resolution_range_angstrom=(3.0, 3.0),
    )
    plain = make_training_pair(bpti, np.random.default_rng(2), replace(base, belt_probability=0.0))
    belt = make_training_pair(bpti, np.random.default_rng(2), replace(base, belt_probability=1.0))
    assert belt.info.get("belt") and not plain.info.get("belt")
    np.testing.assert_array_equal(plain.envelope, belt.envelope)


def test_default_pairs_are_unchanged(bpti):
    """The half-map filter is off by default and draws nothing: pairs are as before it existed.

    Reference: make_training_pair(bpti, default_rng(11), DegradationConfig(box_size=40)) at
    commit 8f27063 (before the option), input[::5, ::5, ::5].sum() and target.sum() in float64.
    """
    pair = make_training_pair(bpti, np.random.default_rng(11), SMALL)
    assert "halfmap_filter" not in pair.info
    assert pair.info["resolution_angstrom"] == pytest.approx(6.830485037640543, rel=1e-12)
    assert pair.info["sphere_mask_radius_voxels"] == pytest.approx(16.26574168873304, rel=1e-12)
    sub = float(pair.input[::5, ::5, ::5].astype(np.float64).sum())
    assert sub == pytest.approx(-94.66572221581009, rel=1e-4)
    assert float(pair.target.astype(np.float64).sum()) == pytest.approx(7015.819850086009, rel=1e-4)


def test_halfmap_filter_is_the_closed_form():
    """Each Fourier coefficient times exp(-k (s d)^2) up to s = cutoff / d, zero beyond."""
    n, vox, d, k, cutoff = 32, 2.5, 12.0, 2.0, 1.3
    volume = np.random.default_rng(0).standard_normal((n, n, n))
    out = halfmap_filter(volume, voxel_size_angstrom=vox, resolution_angstrom=d, k=k, cutoff=cutoff)
    f = np.fft.fftfreq(n, d=vox)
    fx = np.fft.rfftfreq(n, d=vox)
    x = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fx[None, None, :] ** 2) * d
    ratio = np.fft.rfftn(out) / np.fft.rfftn(volume)
    inside = x <= cutoff
    np.testing.assert_allclose(ratio[inside].real, np.exp(-k * x[inside] ** 2), atol=1e-9)
    np.testing.assert_allclose(ratio[inside].imag, 0.0, atol=1e-9)
    assert np.abs(np.fft.rfftn(out)[~inside]).max() < 1e-9 * np.abs(np.fft.rfftn(volume)).max()
    assert (~inside).sum() > 0.5 * x.size  # the cut removes most of the box at this resolution


def test_halfmap_filter_option_in_pairs(bpti):
    """With the option on, nothing of the input lies beyond the drawn cut-off."""
    cfg = replace(SMALL, halfmap_filter_probability=1.0, sphere_mask_probability=0.0)
    pair = make_training_pair(bpti, np.random.default_rng(4), cfg)
    drawn = pair.info["halfmap_filter"]
    assert 0.5 <= drawn["k"] <= 2.0 and 1.15 <= drawn["cutoff"] <= 1.55
    n, vox = cfg.box_size, cfg.voxel_size_angstrom
    f = np.fft.fftfreq(n, d=vox)
    fx = np.fft.rfftfreq(n, d=vox)
    s = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fx[None, None, :] ** 2)
    beyond = s * pair.info["resolution_angstrom"] > drawn["cutoff"] + 1e-9
    spec = np.abs(np.fft.rfftn(pair.input.astype(np.float64)))
    assert beyond.any() and spec[beyond].max() < 1e-4 * spec.max()  # float32 rounding only
