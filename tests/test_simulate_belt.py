"""The membrane band finder and the micelle/nanodisc belt (cryoprior.simulate.belt).

References: the shipped GltPh model (PDB 2NWL) is in the frame of the OPM database, which put
the membrane normal along z and the hydrophobic core at -13.4 < z < 13.4 A by its own
transfer-energy method (the original file's REMARK and DUM atoms; see PROVENANCE.md); its
three-fold axis is along z. Synthetic models place hydrophobic residues in a slab of known
normal, centre and thickness. The belt is checked against invariants: linear in
relative_density, growing with width, seeded, outside the protein's envelope, inside the slab,
all around the protein, featureless beyond 10 A, and equivariant under a rotation of the model.
"""

from __future__ import annotations

import dataclasses
import logging

import gemmi
import numpy as np
import pytest
from scipy import ndimage

from cryoprior.io.atomic_model import (
    AtomicModel,
    atomic_model_from_structure,
    read_atomic_model,
    read_structure,
)
from cryoprior.io.model_map import model_to_map
from cryoprior.simulate.belt import (
    MembraneBand,
    add_membrane_belt,
    centred_map_origin_angstrom,
    membrane_belt,
    protein_envelope,
    transmembrane_band,
)
from cryoprior.simulate.models import resolve_model_path, shipped_model_path

OPM_HALF_THICKNESS_ANGSTROM = 13.4  # the original pdb2nwl-opm.pdb: "1/2 of bilayer thickness"
VOXEL = 2.5
BOX = 64  # 160 A: GltPh (about 100 A across) and a 20 A belt


@pytest.fixture(scope="module")
def gltph():
    path = shipped_model_path("gltph")
    model = read_atomic_model(path)
    band = transmembrane_band(model)
    density = model_to_map(
        model,
        box_size=BOX,
        voxel_size_angstrom=VOXEL,
        centre=True,
        b_factor_angstrom2=50.0,
        band_limited=True,
    )
    origin = centred_map_origin_angstrom(model, box_size=BOX, voxel_size_angstrom=VOXEL)
    return model, band, density, origin


def _belt(gltph, **options):
    _, band, density, origin = gltph
    options.setdefault("seed", 7)
    return membrane_belt(
        density, band, voxel_size_angstrom=VOXEL, origin_angstrom=origin, **options
    ).astype(np.float64)


def _angle_degrees(a, b) -> float:
    a = np.asarray(a, dtype=np.float64) / np.linalg.norm(a)
    b = np.asarray(b, dtype=np.float64) / np.linalg.norm(b)
    return float(np.degrees(np.arccos(min(1.0, abs(a @ b)))))


def _voxel_positions(origin, n=BOX, voxel=VOXEL) -> np.ndarray:
    """(n, n, n, 3) positions (x, y, z) of the voxels of a (z, y, x) map."""
    k, j, i = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    return np.stack([i, j, k], axis=-1) * voxel + np.asarray(origin)


def test_gltph_is_shipped_c3_and_forbidden_for_training():
    path, shipped = resolve_model_path("2NWL")
    assert shipped.name == "gltph" and shipped.symmetry == "C3"
    assert path == shipped_model_path("gltph")
    from cryoprior.prior.data import FORBIDDEN_MODEL_WORDS

    assert any(word in path.name.lower() for word in FORBIDDEN_MODEL_WORDS)


def test_band_of_gltph_matches_opm(gltph):
    _model, band, _, _ = gltph
    # OPM's normal is z, and so is the three-fold axis.
    assert _angle_degrees(band.normal, (0, 0, 1)) < 3.0
    assert band.normal[2] > 0
    assert abs(band.centre_angstrom - 0.0) < 3.0  # OPM's mid-plane is z = 0
    # found 24 A (1 A bins, 2 A thickness steps) against OPM's 26.8 A
    assert abs(band.thickness_angstrom - 2 * OPM_HALF_THICKNESS_ANGSTROM) <= 4.0
    assert band.hydrophobic_fraction_in - band.hydrophobic_fraction_out >= 0.25
    assert band.score >= 6


def _synthetic_model(normal, centre, thickness, *, seed, p_in=0.85, p_out=0.25) -> AtomicModel:
    """1,500 one-atom residues uniform in a 35 A ball (about one per 120 A^3, like a protein),
    hydrophobic with probability p_in inside the slab and p_out outside."""
    rng = np.random.default_rng(seed)
    n = 1500
    normal = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    points = rng.normal(size=(n, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    points *= 35.0 * rng.random(n)[:, None] ** (1 / 3)
    points += np.array([5.0, -3.0, 2.0])
    inside = np.abs(points @ normal - centre) <= thickness / 2
    hydrophobic = rng.random(n) < np.where(inside, p_in, p_out)
    names = np.where(
        hydrophobic, rng.choice(["LEU", "ILE", "VAL", "PHE"], n), rng.choice(["SER", "GLU"], n)
    )
    return AtomicModel(
        positions_angstrom=points,
        elements=("C",) * n,
        b_factors_angstrom2=np.zeros(n),
        residue_index=np.arange(n),
        residue_labels=tuple(f"A:{i + 1}:{name}" for i, name in enumerate(names)),
        name="synthetic",
    )


@pytest.mark.parametrize(
    ("normal", "centre", "thickness", "seed"),
    [((1, 2, 2), 7.0, 30.0, 0), ((0, 0, 1), -4.0, 26.0, 1), ((1, -1, 0.3), 0.0, 34.0, 2)],
)
def test_band_recovers_a_synthetic_slab(normal, centre, thickness, seed):
    band = transmembrane_band(_synthetic_model(normal, centre, thickness, seed=seed))
    n0 = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    assert _angle_degrees(band.normal, n0) < 3.0
    sign = np.sign(n0 @ np.asarray(band.normal))
    assert abs(sign * band.centre_angstrom - centre) < 2.0
    assert abs(band.thickness_angstrom - thickness) <= 4.0


def test_band_of_a_model_without_one_warns(caplog):
    model = _synthetic_model((0, 0, 1), 0.0, 30.0, seed=1, p_in=0.4, p_out=0.4)
    with caplog.at_level(logging.WARNING, logger="cryoprior.simulate.belt"):
        band = transmembrane_band(model)
    assert "no clear transmembrane band" in caplog.text
    assert band.hydrophobic_fraction_in - band.hydrophobic_fraction_out < 0.25


def test_band_refuses_bad_input():
    model = _synthetic_model((0, 0, 1), 0.0, 30.0, seed=0)
    ligand = dataclasses.replace(model, residue_labels=("A:1:HOH",) * model.n_atoms)
    with pytest.raises(ValueError, match="no amino-acid residues"):
        transmembrane_band(ligand)
    with pytest.raises(ValueError, match="thickness_range_angstrom"):
        transmembrane_band(model, thickness_range_angstrom=(30.0, 20.0))
    with pytest.raises(ValueError, match="unit vector"):
        MembraneBand(normal=(0.0, 0.0, 2.0), centre_angstrom=0.0, thickness_angstrom=30.0)
    with pytest.raises(ValueError, match="thickness_angstrom"):
        MembraneBand(normal=(0.0, 0.0, 1.0), centre_angstrom=0.0, thickness_angstrom=0.0)


def test_centred_origin_is_where_model_to_map_puts_the_model(gltph):
    # The map's density-weighted centroid, located with the origin, is the model's centre of
    # mass (scattering and mass are both about proportional to the atomic number).
    model, _, density, origin = gltph
    positions = _voxel_positions(origin)
    weights = np.asarray(density, dtype=np.float64)
    centroid = (positions * weights[..., None]).sum(axis=(0, 1, 2)) / weights.sum()
    masses = np.array([gemmi.Element(e).weight for e in model.elements])
    com = (model.positions_angstrom * masses[:, None]).sum(axis=0) / masses.sum()
    assert np.abs(centroid - com).max() < 0.5


def test_belt_lies_in_the_slab_outside_the_envelope_and_all_around(gltph):
    _, band, density, origin = gltph
    edge = 6.0
    belt = _belt(gltph, roughness_angstrom=0.0, edge_angstrom=edge)
    envelope = protein_envelope(density, voxel_size_angstrom=VOXEL)
    assert belt.min() >= 0 and belt.max() > 0
    assert not belt[envelope].any()
    height = band.height_angstrom(_voxel_positions(origin))
    # the faces' ramp (edge / 2) plus the mask's Gaussian (sigma edge / 3, cut at 4 sigma)
    reach = band.thickness_angstrom / 2 + edge / 2 + 4 * edge / 3 + VOXEL
    assert not belt[np.abs(height) > reach].any()
    assert belt[np.abs(height) < band.thickness_angstrom / 2].sum() > 0.8 * belt.sum()
    # all around the protein: every 10-degree sector of the mid-plane holds some belt
    mid = int(np.argmin(np.abs(height[:, BOX // 2, BOX // 2])))
    section = belt[mid]
    j, i = np.nonzero(section > 0.25 * section.max())
    degrees = np.mod(np.degrees(np.arctan2(j - BOX // 2, i - BOX // 2)), 360.0)
    sectors = np.floor(degrees / 10).astype(int)
    assert len(np.unique(sectors)) == 36
    # and not in the protein's footprint (its pores and enclosed cavities included)
    footprint = ndimage.binary_fill_holes(envelope[mid])
    assert not section[footprint].any()


def test_belt_mass_is_linear_in_density_and_grows_with_width(gltph):
    thin = _belt(gltph, relative_density=0.2)
    thick = _belt(gltph, relative_density=0.4)
    np.testing.assert_allclose(thick, 2 * thin, rtol=1e-5, atol=1e-7 * thick.max())
    masses = [_belt(gltph, width_angstrom=w).sum() for w in (10.0, 20.0, 30.0)]
    assert masses[0] < masses[1] < masses[2]
    assert not _belt(gltph, width_angstrom=0.0).any()
    assert not _belt(gltph, relative_density=0.0).any()
    # the belt's level is relative_density times the mean density in the protein's envelope
    _, _, density, _ = gltph
    envelope = protein_envelope(density, voxel_size_angstrom=VOXEL)
    smooth = _belt(gltph, relative_density=0.4, texture=0.0, roughness_angstrom=0.0)
    assert smooth.max() == pytest.approx(0.4 * density[envelope].mean(), rel=0.05)


def test_belt_is_seeded(gltph):
    first = _belt(gltph, seed=11)
    again = _belt(gltph, seed=np.random.default_rng(11))
    other = _belt(gltph, seed=12)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.1 * first.max()
    assert other.sum() == pytest.approx(first.sum(), rel=0.15)


def test_add_membrane_belt_leaves_its_input_alone(gltph):
    _, band, density, origin = gltph
    before = density.copy()
    total = add_membrane_belt(
        density, band, voxel_size_angstrom=VOXEL, origin_angstrom=origin, seed=3
    )
    np.testing.assert_array_equal(density, before)
    assert total.dtype == np.float32 and total is not density
    belt = membrane_belt(density, band, voxel_size_angstrom=VOXEL, origin_angstrom=origin, seed=3)
    np.testing.assert_allclose(total, density + belt, rtol=0, atol=1e-6 * float(total.max()))


def test_belt_from_the_model_uses_its_band(gltph):
    model, band, density, origin = gltph
    from_model = membrane_belt(
        density, model, voxel_size_angstrom=VOXEL, origin_angstrom=origin, seed=5
    )
    from_band = membrane_belt(
        density, band, voxel_size_angstrom=VOXEL, origin_angstrom=origin, seed=5
    )
    np.testing.assert_array_equal(from_model, from_band)


def test_belt_is_featureless_beyond_10_angstrom(gltph):
    # A micelle has no features finer than about 10 A; the protein (B = 50 A^2) has many.
    _, _, density, _ = gltph
    belt = _belt(gltph)
    f = np.fft.fftfreq(BOX, d=VOXEL)
    radius = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)

    def fine_fraction(volume):
        power = np.abs(np.fft.fftn(volume)) ** 2
        power[0, 0, 0] = 0
        return power[radius > 0.1].sum() / power.sum()

    assert fine_fraction(density) > 0.1
    assert fine_fraction(belt) < 0.02


def test_belt_turns_with_the_model():
    # Rotate GltPh so that its membrane is tilted; the band and the (untextured, unmodulated)
    # belt turn with it: compared with the first belt rotated by scipy, voxel for voxel.
    n, voxel = 48, 4.0
    axis = np.array([1.0, 0.5, 0.0]) / np.linalg.norm([1.0, 0.5, 0.0])
    angle = np.radians(35.0)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
    structure = read_structure(
        shipped_model_path("gltph"), remove_hydrogens=False, remove_waters=False
    )
    turned = structure.clone()
    turned[0].transform_pos_and_adp(
        gemmi.Transform(gemmi.Mat33(rotation.tolist()), gemmi.Vec3(0, 0, 0))
    )
    options = dict(voxel_size_angstrom=voxel, texture=0.0, roughness_angstrom=0.0, seed=0)
    belts, normals = [], []
    for s in (structure, turned):
        model = atomic_model_from_structure(s)
        density = model_to_map(
            model,
            box_size=n,
            voxel_size_angstrom=voxel,
            centre=True,
            b_factor_angstrom2=50.0,
            band_limited=True,
        )
        origin = centred_map_origin_angstrom(model, box_size=n, voxel_size_angstrom=voxel)
        band = transmembrane_band(model)
        normals.append(np.asarray(band.normal))
        belts.append(membrane_belt(density, band, origin_angstrom=origin, **options))
    assert _angle_degrees(normals[1], rotation @ normals[0]) < 3.0
    # out(p) = first(R^T p) about voxel n//2; (x, y, z) <-> (z, y, x) by reversing the axes
    flip = np.eye(3)[::-1]
    matrix = flip @ rotation.T @ flip
    centre = np.full(3, n // 2, dtype=np.float64)
    expected = ndimage.affine_transform(
        belts[0], matrix, offset=centre - matrix @ centre, order=1, mode="constant"
    )
    correlation = np.corrcoef(expected.ravel(), belts[1].ravel())[0, 1]
    assert correlation > 0.9


def test_belt_refuses_bad_input(gltph):
    _, band, density, _origin = gltph
    with pytest.raises(ValueError, match="cubic"):
        membrane_belt(density[:, :, :10], band, voxel_size_angstrom=VOXEL, seed=0)
    with pytest.raises(ValueError, match="width_angstrom"):
        membrane_belt(density, band, voxel_size_angstrom=VOXEL, width_angstrom=-1.0, seed=0)
    with pytest.raises(ValueError, match="voxel_size_angstrom"):
        membrane_belt(density, band, voxel_size_angstrom=0.0, seed=0)
    with pytest.raises(ValueError, match="envelope shape"):
        membrane_belt(
            density, band, voxel_size_angstrom=VOXEL, envelope=np.ones((4, 4, 4), bool), seed=0
        )


def test_simulated_dataset_holds_the_belt_and_keeps_the_protein_alone(tmp_path):
    """``simulate_dataset`` with belt_width_angstrom > 0: true_map.mrc is the protein plus the
    belt the particles were made from, true_map_protein.mrc the protein alone; the record
    carries the band found; the same seed gives the same belt."""
    import json

    import mrcfile

    from cryoprior.simulate.config import SimulationConfig
    from cryoprior.simulate.dataset import simulate_dataset

    config = SimulationConfig(
        model="gltph", box_size=48, voxel_size_angstrom=3.5, b_factor_angstrom2=60.0,
        n_particles=4, belt_width_angstrom=20.0, seed=3, device="cpu", backend="eager",
    )  # fmt: skip
    out = simulate_dataset(config, tmp_path / "a")
    with_belt = mrcfile.read(out.true_map)
    protein = mrcfile.read(tmp_path / "a" / "true_map_protein.mrc")
    belt = with_belt - protein
    assert belt.min() >= -1e-6 and belt.sum() > 0.1 * protein.sum()
    record = json.loads(out.record_json.read_text())
    band = record["derived"]["source"]["membrane_belt"]
    assert abs(band["normal"][2]) > 0.99  # GltPh's membrane normal is its C3 axis, z
    assert record["derived"]["files"]["true_map_protein"] == "true_map_protein.mrc"
    again = simulate_dataset(config, tmp_path / "b")
    assert np.array_equal(mrcfile.read(again.true_map), with_belt)
