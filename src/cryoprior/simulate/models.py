"""The atomic models shipped with cryoprior, by name.

The paper's two simulated cases and a membrane protein for the membrane-belt case.

The files live in ``cryoprior/data/`` (package data); their sources and checksums are in
``cryoprior/data/PROVENANCE.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["SHIPPED_MODELS", "ShippedModel", "resolve_model_path", "shipped_model_path"]


@dataclass(frozen=True)
class ShippedModel:
    """A model file shipped in the package.

    Attributes
    ----------
    name: the name to select it by (``--model beta-galactosidase``).
    pdb_id: its PDB entry.
    filename: the file in ``cryoprior/data/``.
    symmetry: its point group in RELION's notation; the deposited coordinates have the
        symmetry axes where RELION expects them (n-fold along z, a two-fold along x), so
        this symmetry can be given to ``relion_refine --sym`` for maps made with
        ``centre=True``.
    description: what it is.
    """

    name: str
    pdb_id: str
    filename: str
    symmetry: str
    description: str


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "beta-galactosidase": ShippedModel(
        name="beta-galactosidase",
        pdb_id="5A1A",
        filename="5a1a.cif.gz",
        symmetry="D2",
        description="E. coli beta-galactosidase, 2.2 A cryo-EM (Bartesaghi et al. 2015), "
        "4 chains, 33,696 atoms; the paper's first simulated case (same protein as 3J7H)",
    ),
    "proteasome": ShippedModel(
        name="proteasome",
        pdb_id="6BDF",
        filename="6bdf.pdb.gz",
        symmetry="D7",
        description="T. acidophilum 20S proteasome, 2.8 A cryo-EM (Campbell et al. 2015), "
        "28 chains, 46,382 atoms; the paper's second (anisotropic) simulated case",
    ),
    "gltph": ShippedModel(
        name="gltph",
        pdb_id="2NWL",
        filename="2nwl_opm.pdb.gz",
        symmetry="C3",
        description="Pyrococcus horikoshii glutamate transporter homologue GltPh (the "
        "L-aspartate complex, X-ray, Boudker et al. 2007, ligands removed), 3 chains, 1,203 "
        "residues, 8,643 atoms, 114 kDa without hydrogens; a membrane protein as positioned "
        "by the OPM database: membrane normal and three-fold axis along z, hydrophobic core "
        "-13.4 < z < 13.4 A; the membrane-belt case",
    ),
}

_ALIASES = {
    "betagal": "beta-galactosidase",
    "beta_galactosidase": "beta-galactosidase",
    "5a1a": "beta-galactosidase",
    "20s-proteasome": "proteasome",
    "20s_proteasome": "proteasome",
    "t20s": "proteasome",
    "6bdf": "proteasome",
    "2nwl": "gltph",
    "glt-ph": "gltph",
    "glt_ph": "gltph",
}


def _canonical(name: str) -> str | None:
    key = name.strip().lower()
    if key in SHIPPED_MODELS:
        return key
    return _ALIASES.get(key)


def shipped_model_path(name: str) -> Path:
    """Path of a shipped model file by name.

    Names are ``beta-galactosidase``, ``proteasome``, or an alias such as ``5a1a``, ``6bdf``,
    ``betagal``, ``20s-proteasome``.

    Raises KeyError listing the names for an unknown one.

    Example
    -------
    >>> shipped_model_path("5a1a").name
    '5a1a.cif.gz'
    """
    key = _canonical(name)
    if key is None:
        known = ", ".join(sorted(SHIPPED_MODELS) + sorted(_ALIASES))
        raise KeyError(f"no shipped model named {name!r} (known: {known})")
    resource = resources.files("cryoprior") / "data" / SHIPPED_MODELS[key].filename
    return Path(str(resource))


def resolve_model_path(name_or_path: str | Path) -> tuple[Path, ShippedModel | None]:
    """Resolve a shipped model's name, or a path to any PDB/mmCIF file (gzip too).

    Returns (path, the ShippedModel or None for a user file). An existing file wins over a
    name. Raises FileNotFoundError naming both possibilities when neither matches.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path, None
    key = _canonical(str(name_or_path))
    if key is not None:
        return shipped_model_path(key), SHIPPED_MODELS[key]
    known = ", ".join(sorted(SHIPPED_MODELS))
    raise FileNotFoundError(
        f"{name_or_path}: neither a model file nor a shipped model name (shipped: {known})"
    )
