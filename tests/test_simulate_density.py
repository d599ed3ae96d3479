"""Tests of the simulator's model map (cryoprior.io.model_map, band-limited and centred, as the
simulator calls it), its reading of a model (cryoprior.io.atomic_model.read_atomic_model with the
simulator's options), its summary (cryoprior.simulate.density) and the shipped models.

Closed forms: gemmi's atoms are sums of Gaussians whose Fourier transforms carry
exp(-B s^2 / 4), so the map made with every B-factor set to B2 equals the map made with B1
filtered by exp(-(B2 - B1) s^2 / 4) (up to Fourier components beyond the box's Nyquist, which
the band limit drops in both). Invariants: the centre of mass of the map is at voxel N//2,
the deposited symmetry (D2 for 5A1A, D7 for 6BDF) holds about RELION's axes, the total density
does not depend on the voxel size, the model is not modified.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import gemmi
import numpy as np
import pytest

from cryoprior.errors import InputFileError
from cryoprior.fourier.filters import apply_filter, bfactor_filter
from cryoprior.io.atomic_model import (
    atomic_model_from_structure,
    read_atomic_model,
    read_structure,
)
from cryoprior.io.model_map import model_to_map
from cryoprior.simulate.density import structure_summary
from cryoprior.simulate.models import SHIPPED_MODELS, resolve_model_path, shipped_model_path

PROVENANCE = Path(shipped_model_path("5a1a")).parent / "PROVENANCE.md"


def read_model(path, *, remove_waters: bool = False):
    """Read a model as the simulator does: hydrogens kept, waters unless asked."""
    return read_atomic_model(path, remove_hydrogens=False, remove_waters=remove_waters)


def read_gemmi(path):
    """The same atoms as a gemmi structure (to transform them with gemmi)."""
    return read_structure(path, remove_hydrogens=False, remove_waters=False)


@pytest.fixture(scope="module")
def betagal():
    return read_gemmi(shipped_model_path("beta-galactosidase"))


def _truth_map(structure, **kwargs) -> np.ndarray:
    """The simulator's ground truth of a gemmi structure: centred, band-limited."""
    model = atomic_model_from_structure(structure)
    return model_to_map(model, centre=True, band_limited=True, **kwargs)


def _cc(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _flip(volume: np.ndarray, axes) -> np.ndarray:
    """Rotate by 180 degrees about the axis perpendicular to ``axes`` through voxel N//2."""
    n = volume.shape[0]
    out = volume
    for axis in axes:
        out = np.roll(np.flip(out, axis=axis), 2 * (n // 2) - (n - 1), axis=axis)
    return out


def test_shipped_models_match_their_provenance():
    text = PROVENANCE.read_text()
    for model in SHIPPED_MODELS.values():
        path = shipped_model_path(model.name)
        assert path.is_file()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in text, f"{path.name}: sha256 {digest} not in PROVENANCE.md"
        if path.suffix == ".gz":  # the uncompressed original's checksum is recorded too
            raw = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
            assert raw in text or digest in text
    assert shipped_model_path("6BDF") == shipped_model_path("proteasome")
    with pytest.raises(KeyError, match="beta-galactosidase"):
        shipped_model_path("lysozyme")


def test_read_model_counts_and_errors(tmp_path):
    info = structure_summary(read_model(shipped_model_path("beta-galactosidase")))
    assert info.n_atoms == 33696 and info.n_chains == 4
    proteasome = read_model(shipped_model_path("proteasome"))
    assert structure_summary(proteasome).n_atoms == 46382
    assert structure_summary(
        read_model(shipped_model_path("5a1a"), remove_waters=True)
    ).n_atoms == (33696 - 776)
    with pytest.raises(InputFileError, match="does not exist"):
        read_model(tmp_path / "missing.pdb")
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell.length_a oops\n")
    with pytest.raises(InputFileError):
        read_model(bad)
    # a user file (gzip) is accepted and a name resolves to the shipped file
    copy = tmp_path / "user.cif.gz"
    shutil.copy(shipped_model_path("5a1a"), copy)
    assert resolve_model_path(copy) == (copy, None)
    path, shipped = resolve_model_path("beta-galactosidase")
    assert shipped.symmetry == "D2" and path == shipped_model_path("5a1a")
    with pytest.raises(FileNotFoundError, match="shipped"):
        resolve_model_path(tmp_path / "nothing.pdb")


@pytest.mark.parametrize("name", ["beta-galactosidase", "proteasome", "gltph"])
@pytest.mark.parametrize("remove_waters", [False, True])
def test_summary_centre_is_gemmis_to_the_last_bit(name, remove_waters):
    # The simulator's centre of mass (simulation.json, the belt's origin) was gemmi's
    # Model.calculate_center_of_mass on the structure; the model read through the io reader
    # must give the same floats, or simulated datasets change.
    path = shipped_model_path(name)
    model = read_model(path, remove_waters=remove_waters)
    structure = read_structure(path, remove_hydrogens=False, remove_waters=remove_waters)
    expected = structure[0].calculate_center_of_mass().tolist()
    assert model.centre_of_mass_angstrom().tolist() == expected
    info = structure_summary(model)
    assert info.centre_of_mass_angstrom == tuple(expected)
    assert info.n_chains == len(structure[0]) and info.n_atoms == structure[0].count_atom_sites()
    # farthest atom: chain/residue number/atom name, as gemmi names them
    far = max(
        ((chain, res, atom) for chain in structure[0] for res in chain for atom in res),
        key=lambda cra: cra[2].pos.dist(gemmi.Position(*expected)),
    )
    chain, res, atom = far
    assert info.farthest_atom == f"{chain.name}/{res.name} {res.seqid.num}/{atom.name}"


def test_simulator_keeps_hydrogens(tmp_path):
    # Two atoms of a residue, one of them a hydrogen: the simulator images both (the prior's
    # reader, with its defaults, drops the hydrogen).
    line = "ATOM  {:>5d} {:<4s} ALA A   1    {:8.3f}{:8.3f}{:8.3f}  1.00 20.00           {:>2s}\n"
    path = tmp_path / "h.pdb"
    path.write_text(
        line.format(1, " CA", 1.0, 2.0, 3.0, "C") + line.format(2, " HA", 1.0, 2.0, 4.09, "H")
    )
    assert read_model(path).n_atoms == 2
    assert read_model(path).atom_names == ("CA", "HA")
    assert read_atomic_model(path).n_atoms == 1


def test_map_is_centred_symmetric_and_model_unchanged(betagal):
    before = betagal[0][0][0][0].pos.tolist()
    raw = _truth_map(betagal, box_size=48, voxel_size_angstrom=5.0)
    assert raw.shape == (48, 48, 48) and raw.dtype == np.float64
    volume = raw.astype(np.float64)
    assert betagal[0][0][0][0].pos.tolist() == before
    coords = np.indices(volume.shape).reshape(3, -1)
    centre = (coords * volume.ravel()).sum(axis=1) / volume.sum()
    np.testing.assert_allclose(centre, 24.0, atol=0.05)
    # D2 with its two-folds along x, y and z (RELION's D2 axes)
    for axes in ((1, 2), (0, 1), (0, 2)):
        assert _cc(volume, _flip(volume, axes)) > 0.9999


def test_proteasome_has_d7_about_relion_axes():
    structure = read_gemmi(shipped_model_path("proteasome"))
    volume = _truth_map(structure, box_size=56, voxel_size_angstrom=4.0)
    assert _cc(volume, _flip(volume, (0, 1))) > 0.9999  # two-fold about x
    com = np.array(structure[0].calculate_center_of_mass().tolist())
    angle = 2 * np.pi / 7
    rz = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    rotated = structure.clone()
    for chain in rotated[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = gemmi.Position(*(rz @ (np.array(atom.pos.tolist()) - com) + com))
    assert _cc(volume, _truth_map(rotated, box_size=56, voxel_size_angstrom=4.0)) > 0.9999


def test_b_factor_is_a_fourier_filter(betagal):
    """map(B=60) = map(B=20) filtered by exp(-40 s^2 / 4)."""
    kw = dict(box_size=40, voxel_size_angstrom=6.0)
    low = _truth_map(betagal, b_factor_angstrom2=20.0, **kw).astype(np.float64)
    high = _truth_map(betagal, b_factor_angstrom2=60.0, **kw).astype(np.float64)
    filtered = apply_filter(
        low, bfactor_filter(40, b_factor_angstrom2=40.0, voxel_size_angstrom=6.0)
    )
    np.testing.assert_allclose(high, filtered, atol=2e-3 * np.abs(high).max())
    assert np.abs(high - low).max() > 0.02 * np.abs(high).max()  # the check can fail


def test_total_density_and_oversampling(betagal):
    """The integral (sum x voxel volume) does not depend on the voxel size; oversampling 2 and
    3 agree closely."""
    coarse = _truth_map(betagal, box_size=40, voxel_size_angstrom=6.0).astype(np.float64)
    fine = _truth_map(betagal, box_size=60, voxel_size_angstrom=4.0).astype(np.float64)
    np.testing.assert_allclose(coarse.sum() * 6.0**3, fine.sum() * 4.0**3, rtol=5e-3)
    three = _truth_map(betagal, box_size=40, voxel_size_angstrom=6.0, oversampling=3)
    assert _cc(coarse, three) > 0.99999
    with pytest.raises(ValueError, match="oversampling"):
        _truth_map(betagal, box_size=40, voxel_size_angstrom=6.0, oversampling=1)


def test_too_small_box_warns(betagal, caplog):
    with caplog.at_level("WARNING", logger="cryoprior.io.model_map"):
        _truth_map(betagal, box_size=24, voxel_size_angstrom=5.0)
    assert "wraps around" in caplog.text
