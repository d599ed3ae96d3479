"""Atomic models (PDB/mmCIF, gzip allowed) read with gemmi: the package's one model type.

Positions are (x, y, z) in Angstrom in the model's frame. A map's voxel (k, j, i) is at
``origin_angstrom + (i, j, k) * voxel_size_angstrom`` wherever a model meets a map.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoprior.errors import InputFileError

__all__ = ["AtomicModel", "atomic_model_from_structure", "read_atomic_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AtomicModel:
    """The atoms of the first model of a structure.

    Attributes
    ----------
    positions_angstrom : numpy.ndarray
        (n_atoms, 3) float64, (x, y, z) in Angstrom.
    elements : tuple of str
        (n_atoms,) element symbols.
    b_factors_angstrom2 : numpy.ndarray
        (n_atoms,) isotropic B.
    residue_index : numpy.ndarray
        (n_atoms,) int64 index into ``residue_labels``.
    residue_labels : tuple of str
        One ``"chain:number[icode]:name"`` per residue, in file order.
    name : str
        Where it came from (the file name; empty when built from a structure).
    occupancies : numpy.ndarray or None
        (n_atoms,) float64 occupancies; None means 1 for every atom.
    anisou_angstrom2 : numpy.ndarray or None
        (n_atoms, 6) float64 anisotropic displacements (U11, U22, U33, U12, U13, U23) in
        Angstrom^2, zeros for an isotropic atom; None when every atom is isotropic.
    atom_names : tuple of str or None
        (n_atoms,) atom names (``"CA"``); None when not known.
    residue_chain_index : numpy.ndarray or None
        (n_residues,) int64 index of each residue's chain, chains in file order (gemmi's
        chains: one chain name may be several chains, e.g. a polymer and its waters); None
        when not known (then the atoms count as one chain).
    """

    positions_angstrom: np.ndarray
    elements: tuple[str, ...]
    b_factors_angstrom2: np.ndarray
    residue_index: np.ndarray
    residue_labels: tuple[str, ...]
    name: str = ""
    occupancies: np.ndarray | None = None
    anisou_angstrom2: np.ndarray | None = None
    atom_names: tuple[str, ...] | None = None
    residue_chain_index: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return int(self.positions_angstrom.shape[0])

    @property
    def n_chains(self) -> int:
        """Number of chains (1 when ``residue_chain_index`` is not known)."""
        if self.residue_chain_index is None or self.residue_chain_index.size == 0:
            return 1
        return int(self.residue_chain_index.max()) + 1

    def atom_label(self, index: int) -> str:
        """Return ``"chain/residue-name number/atom-name"`` of atom ``index`` (``A/ALA 2/CA``)."""
        chain, number, residue = self.residue_labels[int(self.residue_index[index])].rsplit(":", 2)
        atom = self.atom_names[index] if self.atom_names is not None else self.elements[index]
        return f"{chain}/{residue} {number}/{atom}"

    @property
    def radius_angstrom(self) -> float:
        """Largest distance of an atom from the atoms' centroid."""
        centred = self.positions_angstrom - self.positions_angstrom.mean(axis=0)
        return float(np.sqrt((centred**2).sum(axis=1)).max())

    def centre_of_mass_angstrom(self) -> np.ndarray:
        """Return the (x, y, z) centre of mass, atoms weighted by element mass times occupancy.

        The sums are gemmi's (``Model.calculate_center_of_mass``), to the last bit: each residue's
        atoms in order, then each chain's residues, then the chains, times ``1 / mass``. Residues
        are the runs of equal ``residue_index``; without ``residue_chain_index`` the residues form
        one chain (the same centre, rounded differently from gemmi's on the original chains).

        Returns
        -------
        (3,) float64.
        """
        import gemmi

        weights = np.array([gemmi.Element(symbol).weight for symbol in self.elements])
        if self.occupancies is not None:
            weights = weights * self.occupancies
        moments = self.positions_angstrom * weights[:, None]
        starts = np.flatnonzero(np.diff(self.residue_index, prepend=-1))
        stops = [*starts[1:].tolist(), self.n_atoms]
        residue_moments = [
            np.cumsum(moments[a:b], axis=0)[-1] for a, b in zip(starts, stops, strict=True)
        ]
        residue_masses = [
            float(np.cumsum(weights[a:b])[-1]) for a, b in zip(starts, stops, strict=True)
        ]
        chains = (
            self.residue_chain_index[self.residue_index[starts]]
            if self.residue_chain_index is not None
            else np.zeros(len(starts), dtype=np.int64)
        )
        total, mass = np.zeros(3), 0.0
        for chain in dict.fromkeys(chains.tolist()):
            chain_moment, chain_mass = np.zeros(3), 0.0
            for k in np.flatnonzero(chains == chain).tolist():
                chain_moment = chain_moment + residue_moments[k]
                chain_mass += residue_masses[k]
            total = total + chain_moment
            mass += chain_mass
        return total * (1.0 / mass)

    def centred(self) -> AtomicModel:
        """Return the same model translated so that the atoms' centroid is at the origin."""
        centre = self.positions_angstrom.mean(axis=0)
        return dataclasses.replace(self, positions_angstrom=self.positions_angstrom - centre)


def atomic_model_from_structure(structure, *, name: str = "") -> AtomicModel:
    """Build an :class:`AtomicModel` from the first model of a ``gemmi.Structure`` (unmodified)."""
    positions, elements, bfac, residue_index, labels = [], [], [], [], []
    occupancies, anisou, names, residue_chain = [], [], [], []
    for chain_number, chain in enumerate(structure[0]):
        for residue in chain:
            label = f"{chain.name}:{residue.seqid.num}{residue.seqid.icode.strip()}:{residue.name}"
            labels.append(label)
            residue_chain.append(chain_number)
            for atom in residue:
                positions.append((atom.pos.x, atom.pos.y, atom.pos.z))
                elements.append(atom.element.name)
                names.append(atom.name)
                bfac.append(atom.b_iso)
                occupancies.append(atom.occ)
                anisou.append(atom.aniso.elements_pdb() if atom.aniso.nonzero() else (0.0,) * 6)
                residue_index.append(len(labels) - 1)
    anisotropic = np.asarray(anisou, dtype=np.float64).reshape(-1, 6)
    return AtomicModel(
        positions_angstrom=np.asarray(positions, dtype=np.float64).reshape(-1, 3),
        elements=tuple(elements),
        b_factors_angstrom2=np.asarray(bfac, dtype=np.float64),
        residue_index=np.asarray(residue_index, dtype=np.int64),
        residue_labels=tuple(labels),
        name=name,
        occupancies=np.asarray(occupancies, dtype=np.float64),
        anisou_angstrom2=anisotropic if anisotropic.any() else None,
        atom_names=tuple(names),
        residue_chain_index=np.asarray(residue_chain, dtype=np.int64),
    )


def read_structure(
    path: str | Path,
    *,
    remove_hydrogens: bool = True,
    remove_waters: bool = True,
    remove_ligands: bool = False,
):
    """Read a ``gemmi.Structure`` from a PDB/mmCIF file.

    Entities are set up and the chosen parts removed (empty chains too).

    Raises
    ------
    InputFileError
        A missing or unreadable file, or one without a model.
    """
    import gemmi

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file does not exist")
    try:
        structure = gemmi.read_structure(str(path))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError for malformed files
        raise InputFileError(path, f"not a readable PDB/mmCIF model ({exc})") from exc
    if len(structure) == 0:
        raise InputFileError(path, "the file holds no model")
    structure.setup_entities()
    if remove_hydrogens:
        structure.remove_hydrogens()
    if remove_ligands:
        structure.remove_ligands_and_waters()
    elif remove_waters:
        structure.remove_waters()
    structure.remove_empty_chains()
    return structure


def read_atomic_model(
    path: str | Path,
    *,
    remove_hydrogens: bool = True,
    remove_waters: bool = True,
    remove_ligands: bool = False,
) -> AtomicModel:
    """Read a PDB or mmCIF model (gzip allowed) with gemmi.

    Only the first model is kept. Hydrogens and waters are dropped by default (the prior's
    training and validation's model maps), ligands kept unless ``remove_ligands`` (which also
    drops waters). The simulator keeps hydrogens, and waters unless its configuration's
    ``remove_waters``: its images are of every atom in the file.

    Raises
    ------
    InputFileError
        A missing or unreadable file, one without atoms, or non-finite coordinates.
    """
    path = Path(path)
    structure = read_structure(
        path,
        remove_hydrogens=remove_hydrogens,
        remove_waters=remove_waters,
        remove_ligands=remove_ligands,
    )
    model = atomic_model_from_structure(structure, name=path.name)
    if model.n_atoms == 0:
        raise InputFileError(path, "the model has no atoms")
    bad = np.flatnonzero(~np.isfinite(model.positions_angstrom).all(axis=1))
    if bad.size:
        raise InputFileError(
            path,
            f"{bad.size} atom(s) have non-finite (NaN or infinite) coordinates, the first "
            f"{model.atom_label(int(bad[0]))}",
        )
    return model
