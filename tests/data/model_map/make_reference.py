"""Make the frozen references of tests/test_io_model_map.py (run once, with the OLD code).

The three model -> map operators the package had before they became
``cryoprior.io.model_map.model_to_map`` were run on ``tiny_20_atoms.pdb`` (written here, from
seed 20) at commit 3f986c8eff69622572a9e04b60b77f3f26ef38fb, where they still exist:

    git worktree add /tmp/old 3f986c8eff69622572a9e04b60b77f3f26ef38fb
    cd /tmp/old && PYTHONPATH=src python /path/to/tests/data/model_map/make_reference.py OUT

The maps are gemmi float32 grids (or float32 FFTs), so storing them as float32 is lossless
(checked below).
"""

from __future__ import annotations

import sys
from pathlib import Path

import gemmi
import numpy as np

HERE = Path(__file__).parent
MODEL = HERE / "tiny_20_atoms.pdb"


def write_tiny_model(path: Path) -> None:
    """18 atoms within 7 A of (15, 15, 15) and 2 within 6 A of a face of a 30 A box; B from 5 to
    60 A^2; atom 3 at occupancy 0.5, atom 7 with an anisotropic U."""
    rng = np.random.default_rng(20)
    inner = rng.normal(size=(18, 3))
    inner *= 7.0 * rng.random(18)[:, None] ** (1 / 3) / np.linalg.norm(inner, axis=1)[:, None]
    positions = np.concatenate([inner + 15.0, [[4.0, 15.0, 16.0], [26.5, 14.0, 15.0]]])
    elements = ["C", "N", "O", "C", "S", "C", "O", "N", "C", "C"] * 2
    structure = gemmi.Structure()
    structure.cell = gemmi.UnitCell(30, 30, 30, 90, 90, 90)
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for i, (xyz, el) in enumerate(zip(np.round(positions, 3), elements, strict=True)):
        residue = gemmi.Residue()
        residue.name = "ALA"
        residue.seqid = gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name = el
        atom.element = gemmi.Element(el)
        atom.pos = gemmi.Position(*xyz)
        atom.b_iso = float(np.round(rng.uniform(5.0, 60.0), 2))
        atom.occ = 0.5 if i == 3 else 1.0
        if i == 7:
            atom.aniso = gemmi.SMat33f(0.30, 0.20, 0.25, 0.05, -0.02, 0.01)
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    structure.write_pdb(str(path), gemmi.PdbWriteOptions(minimal_file=True))


def main(out: Path) -> None:
    from cryoprior.io.atomic_model import read_atomic_model, read_structure
    from cryoprior.prior.data import model_density
    from cryoprior.simulate.density import model_to_map, read_model
    from cryoprior.validate.atoms import model_density_map

    structure = read_model(MODEL)
    model = read_atomic_model(MODEL)
    maps = {
        # simulate/density.py model_to_map: its defaults (centre, own B, oversampling 2)
        "simulate_default": model_to_map(structure, box_size=20, voxel_size_angstrom=1.5),
        # ... every atom at B = 30, file coordinates, oversampling 3
        "simulate_b30_uncentred_x3": model_to_map(
            structure,
            box_size=20,
            voxel_size_angstrom=1.5,
            b_factor_angstrom2=30.0,
            centre=False,
            oversampling=3,
        ),
        # prior/data.py model_density: the training target (B = 15, atoms near faces dropped)
        "prior_b15": model_density(
            model.positions_angstrom,
            model.elements,
            box_size=20,
            voxel_size_angstrom=1.5,
            b_factor_angstrom2=15.0,
        ),
        # validate/atoms.py model_density_map: its defaults, from the structure
        "validate_default": model_density_map(
            read_structure(MODEL), box_size=20, voxel_size_angstrom=1.5
        ),
        # ... from the path, with an origin and an extra blur
        "validate_origin_blur12": model_density_map(
            MODEL,
            box_size=20,
            voxel_size_angstrom=1.5,
            origin_angstrom=(1.0, -2.0, 0.5),
            blur_angstrom2=12.0,
        ),
    }
    frozen = {}
    for key, value in maps.items():
        value = np.asarray(value)
        single = value.astype(np.float32)
        assert np.array_equal(single.astype(value.dtype), value), key
        frozen[key] = single
    np.savez_compressed(out, **frozen)


if __name__ == "__main__":
    if not MODEL.exists():
        write_tiny_model(MODEL)
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "reference_maps.npz")
