"""Provenance of the prior's training structures (issue 16): the table of TRAINING_DATA.md.

For every file that :func:`cryoprior.prior.data.training_model_paths` finds in the installed
packages of ``TRAINING_SOURCES``: the package and its installed version, the file's path inside
the package, its sha256, the PDB entry (the file's header id, else its REMARK 4 id, else a PDB
id in the file or folder name, else a ``(XXXX)`` in a REMARK), the title, the protein residues
(residues with a carbon CA atom, after :func:`cryoprior.prior.data.load_atomic_model`'s
clean-up) and the atoms the prior sees. Every file is loaded with ``load_atomic_model``, so a
benchmark or reserved protein stops the script.

Checks (exit 1 with one line per problem): one file per PDB entry across all packages; at least
``--min-residues`` protein residues in every file of a source other than mdanalysistests (whose
list is the one cryoprior-prior-v1/v2 were trained on, kept but for one unreadable file).

Usage: python benchmarks/training_data_provenance.py [--write] [--min-residues 100]
Prints the table; with --write, replaces the table between the markers of
src/cryoprior/prior/TRAINING_DATA.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

TRAINING_DATA = (
    Path(__file__).resolve().parents[1] / "src" / "cryoprior" / "prior" / "TRAINING_DATA.md"
)
BEGIN = "<!-- provenance table: written by benchmarks/training_data_provenance.py --write -->"
END = "<!-- end of provenance table -->"
_ID = r"[1-9][0-9a-z]{3}"


def pdb_id(path: Path, structure) -> str:
    """The PDB entry of a file, lower case, or '' when nothing names one."""
    entry = str(dict(structure.info).get("_entry.id", "")).lower()
    if re.fullmatch(_ID, entry):
        return entry
    remarks = [str(r) for r in getattr(structure, "raw_remarks", [])]
    for remark in remarks:
        found = re.match(rf"REMARK   4 ({_ID}) COMPLIES", remark, re.IGNORECASE)
        if found:
            return found.group(1).lower()
    for name in (path.name, path.parent.name):
        stem = re.sub(r"^(addh_)?(pdb|mmcif_)", "", name.lower())
        found = re.match(rf"({_ID})(?![0-9a-z]{{2}})", stem)
        if found:
            return found.group(1)
    for remark in remarks:
        found = re.search(rf"\(({_ID})\)", remark, re.IGNORECASE)
        if found:
            return found.group(1).lower()
    return ""


def describe(source, path: Path) -> dict:
    from cryoprior.io.atomic_model import read_structure
    from cryoprior.prior.data import load_atomic_model

    spec = importlib.util.find_spec(source.module)
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent
    model = load_atomic_model(path)  # raises for a benchmark or reserved protein
    structure = read_structure(path, remove_ligands=True)
    ca = sum(
        1
        for ch in structure[0]
        for res in ch
        if any(a.name == "CA" and a.element.name == "C" for a in res)
    )
    return {
        "package": source.package,
        "version": importlib.metadata.version(source.package),
        "file": f"{source.module}/{path.relative_to(root).as_posix()}",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "pdb_id": pdb_id(path, structure),
        "title": " ".join(str(dict(structure.info).get("_struct.title", "")).split()),
        "residues": ca,
        "atoms": model.n_atoms,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| # | package | version | file in the package | PDB | title | protein residues | atoms "
        "| sha256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, start=1):
        title = r["title"].replace("|", "/") or "-"
        lines.append(
            f"| {i} | {r['package']} | {r['version']} | `{r['file']}` | {r['pdb_id'].upper() or '-'}"
            f" | {title} | {r['residues']} | {r['atoms']} | `{r['sha256']}` |"
        )
    return "\n".join(lines)


def problems(rows: list[dict], min_residues: int) -> list[str]:
    out = []
    seen: dict[str, str] = {}
    for r in rows:
        if r["pdb_id"] and r["pdb_id"] in seen:
            out.append(f"{r['file']}: PDB {r['pdb_id']} again (first: {seen[r['pdb_id']]})")
        seen.setdefault(r["pdb_id"], r["file"]) if r["pdb_id"] else None
        if r["package"] != "mdanalysistests" and r["residues"] < min_residues:
            out.append(f"{r['file']}: {r['residues']} protein residues (< {min_residues})")
    return out


def main(argv: list[str] | None = None) -> int:
    from cryoprior.prior.data import TRAINING_SOURCES, source_model_paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update TRAINING_DATA.md")
    parser.add_argument("--min-residues", type=int, default=100)
    args = parser.parse_args(argv)
    rows = []
    missing = []
    for source in TRAINING_SOURCES:
        paths = source_model_paths(source)
        if not paths:
            missing.append(source.package)
        rows += [describe(source, p) for p in paths]
    text = table(rows)
    total = (
        f"{len(rows)} files, {sum(r['residues'] for r in rows):,} protein residues, "
        f"{sum(r['atoms'] for r in rows):,} atoms"
        + (f"; not installed here: {', '.join(missing)}" if missing else "")
    )
    print(text)
    print(total)
    bad = problems(rows, args.min_residues)
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    if bad:
        return 1
    if args.write:
        doc = TRAINING_DATA.read_text()
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        if not rest:
            print(f"error: {TRAINING_DATA}: no '{BEGIN}' marker", file=sys.stderr)
            return 1
        TRAINING_DATA.write_text(f"{head}{BEGIN}\n\n{text}\n\n{total}\n\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
