"""The prior's training data (issue 16): where the structures come from, how inputs compare.

``provenance``: for every file that :func:`cryoprior.prior.data.training_model_paths` finds in
the installed packages of ``TRAINING_SOURCES``: the package and its installed version, the
file's path inside the package, its sha256, the PDB entry (the file's header id, else its
REMARK 4 id, else a PDB id in the file or folder name, else a ``(XXXX)`` in a REMARK), the title,
the protein residues (residues with a carbon CA atom, after
:func:`cryoprior.prior.data.load_atomic_model`'s clean-up) and the atoms the prior sees. Every
file is loaded with ``load_atomic_model``, so a benchmark or reserved protein stops the script.
Checks (exit 1 with one line per problem): one file per PDB entry across all packages; at least
``--min-residues`` protein residues in every file of a source other than mdanalysistests (whose
list is the one cryoprior-prior-v1/v2 were trained on, kept but for one unreadable file).
With --write, replaces the table between the markers of src/cryoprior/prior/TRAINING_DATA.md.

``halfmaps``: the half-maps of finished plain-RELION runs (``RUNS/relion-*/Refine3D``: every
iteration's ``run_itNNN_half{1,2}_class001.mrc`` from iteration 1 and the final
``run_half{1,2}_class001_unfil.mrc``) against their dataset's ``true_map.mrc``, and half-map
pairs made the way :func:`cryoprior.prior.data.make_training_pair` makes an input (same signal,
two independent noise draws, at the runs' voxel size), without and with
:func:`cryoprior.prior.data.halfmap_filter`. In units of x = s d (d: where the half-map FSC
falls to 0.5): the FSC at x, the signal's gain against the truth fitted as exp(-k x^2) on
0.1 <= x <= 1, where the power ends (first shell below 1e-6 of the largest), the FSC of the
three lowest shells; in real space: noise SD ((h1 - h2) / sqrt 2) over signal SD (cov(h1, h2))
in the sphere of radius 0.45 n, and the noise SD in radial bands relative to r < 0.3 n.

Usage: python benchmarks/prior_training_data.py provenance [--write] [--min-residues 100]
       python benchmarks/prior_training_data.py halfmaps [--runs /work/runs/realistic]
       [--model PATH] [--pairs 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np

TRAINING_DATA = (
    Path(__file__).resolve().parents[1] / "src" / "cryoprior" / "prior" / "TRAINING_DATA.md"
)
BEGIN = "<!-- provenance table: written by benchmarks/prior_training_data.py provenance --write -->"
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


def provenance(args) -> int:
    from cryoprior.prior.data import TRAINING_SOURCES, source_model_paths

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


# ---------------------------------------------------------------- half-maps

XS = (0.25, 0.5, 0.75, 1.25, 1.5)


def shells(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return np.minimum(np.rint(r).astype(int), n // 2 + 1)


def shell_mean(sh: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = np.bincount(sh.ravel(), minlength=sh.max() + 1)
    sums = np.bincount(sh.ravel(), weights=values.ravel(), minlength=sh.max() + 1)
    return sums / np.maximum(counts, 1)


def fsc_crossing(s: np.ndarray, fsc: np.ndarray, level: float = 0.5) -> float:
    for k in range(1, len(fsc) - 1):
        if fsc[k] < level:
            a, b = fsc[k - 1], fsc[k]
            return float(s[k - 1] + (a - level) / (a - b) * (s[k] - s[k - 1]))
    return float(s[len(fsc) - 2])


def halfmap_stats(h1: np.ndarray, h2: np.ndarray, truth: np.ndarray, voxel: float) -> dict:
    """Statistics of one half-map pair against its truth (see the module docstring)."""
    n = h1.shape[0]
    sh = shells(n)
    f1, f2, ft = np.fft.rfftn(h1), np.fft.rfftn(h2), np.fft.rfftn(truth)
    p1 = shell_mean(sh, np.abs(f1) ** 2)
    p2 = shell_mean(sh, np.abs(f2) ** 2)
    fsc = shell_mean(sh, (f1 * f2.conj()).real) / np.sqrt(np.maximum(p1 * p2, 1e-300))
    gain = shell_mean(sh, (f1 * ft.conj()).real) / np.maximum(
        shell_mean(sh, np.abs(ft) ** 2), 1e-300
    )
    s = np.arange(fsc.size) / (n * voxel)
    s0 = fsc_crossing(s, fsc)
    x = s / s0
    ok = (x >= 0.1) & (x <= 1.0) & (gain > 0)
    k = -np.polyfit(x[ok] ** 2, np.log(gain[ok]), 1)[0] if ok.sum() >= 2 else float("nan")
    top = p1[1:].max()
    ends = [i for i in range(2, n // 2 + 1) if p1[i] < 1e-6 * top]
    c = np.arange(n) - n / 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2) / n
    region = r < 0.45
    a, b = h1[region] - h1[region].mean(), h2[region] - h2[region].mean()
    noise = (h1 - h2) / np.sqrt(2)
    inner = noise[r < 0.3].std()
    bands = [(0.3, 0.4), (0.4, 0.45), (0.45, 0.5), (0.5, 1.0)]
    return {
        "d_angstrom": 1 / s0,
        "fsc_at_x": [
            float(np.interp(v * s0, s, fsc)) if v * s0 < s[-2] else float("nan") for v in XS
        ],
        "fsc_lowest_shells": [float(v) for v in fsc[1:4]],
        "gain_k": float(k),
        "power_ends_at_x": float(x[ends[0]]) if ends else float("nan"),
        "noise_over_signal_sd": float(noise[region].std() / np.sqrt(max(np.mean(a * b), 1e-300))),
        "radial_noise_sd": [float(noise[(r >= lo) & (r < hi)].std() / inner) for lo, hi in bands],
    }


def relion_halfmaps(runs: Path):
    """(group, run, iteration, h1, h2, truth, voxel) of every finished plain-RELION run."""
    from cryoprior.io.mrc import read_map, read_map_header

    for run in sorted(Path(p) for p in glob.glob(str(runs / "runs" / "relion-*"))):
        try:
            finished = json.loads((run / "refine.json").read_text()).get("finished")
            dataset = json.loads((run / "result.json").read_text())["dataset"]
        except (OSError, ValueError, KeyError):
            continue
        if not finished:
            continue
        truth_path = runs / "datasets" / dataset / "true_map.mrc"
        truth = read_map(truth_path).astype(np.float64)
        voxel = read_map_header(truth_path).voxel_size_angstrom
        refine = run / "Refine3D"
        its = sorted(
            int(m.group(1))
            for p in refine.glob("run_it*_half1_class001.mrc")
            if (m := re.search(r"run_it(\d+)_half1", p.name))
        )
        pairs = [(f"run_it{i:03d}_half{{}}_class001.mrc", "intermediate", i) for i in its if i >= 1]
        pairs.append(("run_half{}_class001_unfil.mrc", "final", "final"))
        for pattern, group, it in pairs:
            files = [refine / pattern.format(h) for h in (1, 2)]
            if all(f.exists() for f in files):
                h1, h2 = (read_map(f).astype(np.float64) for f in files)
                yield group, run.name, it, h1, h2, truth, voxel


def simulated_halfmaps(
    model_path: Path, *, box: int, voxel: float, pairs: int, seed: int, filt: bool
):
    """Half-map pairs the way make_training_pair makes an input, from one model.

    The default DegradationConfig's B, resolution and white-noise ranges; the model centred;
    one signal, two draws of its noise; with ``filt``, both halves through halfmap_filter
    (the same k and cut-off: one reconstruction's filter).
    """
    from cryoprior.prior.data import (
        DegradationConfig,
        fsc_shaped_noise,
        halfmap_filter,
        load_atomic_model,
        normalisation_region,
        target_map,
    )

    cfg = DegradationConfig()
    model = load_atomic_model(model_path)
    centred = type(model)(
        positions_angstrom=model.positions_angstrom + box * voxel / 2,
        elements=model.elements,
        b_factors_angstrom2=model.b_factors_angstrom2,
        residue_index=model.residue_index,
        residue_labels=model.residue_labels,
        name=model.name,
    )
    sharp = target_map(
        centred, box_size=box, voxel_size_angstrom=voxel, b_factor_angstrom2=cfg.target_b_angstrom2
    )
    f = np.fft.fftfreq(box, d=voxel)
    fx = np.fft.rfftfreq(box, d=voxel)
    s2 = f[:, None, None] ** 2 + f[None, :, None] ** 2 + fx[None, None, :] ** 2
    region = normalisation_region(box, radius_fraction=cfg.region_radius_fraction)
    rng = np.random.default_rng(seed)
    for _ in range(pairs):
        b = rng.uniform(*cfg.b_factor_range_angstrom2)
        blurred = np.fft.irfftn(
            np.fft.rfftn(sharp) * np.exp(-b * s2 / 4), s=sharp.shape, axes=(0, 1, 2)
        )
        d = rng.uniform(*cfg.resolution_range_angstrom)
        white = rng.uniform(*cfg.white_noise_range) * float(blurred[region].std())
        halves = [
            blurred
            + fsc_shaped_noise(blurred, voxel_size_angstrom=voxel, resolution_angstrom=d, rng=rng)
            + white * rng.standard_normal(sharp.shape)
            for _ in range(2)
        ]
        if filt:
            k = rng.uniform(*cfg.halfmap_filter_k_range)
            cut = rng.uniform(*cfg.halfmap_cutoff_range)
            halves = [
                halfmap_filter(h, voxel_size_angstrom=voxel, resolution_angstrom=d, k=k, cutoff=cut)
                for h in halves
            ]
        yield halves[0], halves[1], sharp, d


def summary_table(groups: dict[str, list[dict]]) -> str:
    def med(rows, key, i=None):
        v = np.array([r[key] if i is None else r[key][i] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        if not v.size:
            return "-"
        lo, mid, hi = np.percentile(v, [10, 50, 90])
        return f"{mid:.2f} ({lo:.2f}-{hi:.2f})"

    head = ["maps", "n", "d (A)"] + [f"FSC x={x}" for x in XS]
    head += ["FSC shells 1-3 (min)", "gain k", "power ends at x", "noise/signal SD"]
    head += ["noise SD r 0.3-0.4", "0.4-0.45", "0.45-0.5", ">0.5"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rows in groups.items():
        low = [min(r["fsc_lowest_shells"]) for r in rows]
        cells = [name, str(len(rows)), med(rows, "d_angstrom")]
        cells += [med(rows, "fsc_at_x", i) for i in range(len(XS))]
        cells += [f"{np.median(low):.3f} (min {min(low):.3f})", med(rows, "gain_k")]
        cells += [med(rows, "power_ends_at_x"), med(rows, "noise_over_signal_sd")]
        cells += [med(rows, "radial_noise_sd", i) for i in range(4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def halfmaps(args) -> int:
    from cryoprior.prior.data import training_model_paths

    groups: dict[str, list[dict]] = {"RELION intermediate": [], "RELION final unfil": []}
    box = voxel = None
    for group, run, it, h1, h2, truth, vox in relion_halfmaps(Path(args.runs)):
        row = {"run": run, "iteration": it, **halfmap_stats(h1, h2, truth, vox)}
        groups["RELION intermediate" if group == "intermediate" else "RELION final unfil"].append(
            row
        )
        box, voxel = h1.shape[0], vox
    if box is None:
        print(f"error: {args.runs}: no finished plain-RELION run", file=sys.stderr)
        return 1
    model = args.model
    if model is None:
        found = [p for p in training_model_paths() if p.name == "pdb3enl.pdb"]
        model = (
            found[0]
            if found
            else Path(__file__).resolve().parents[1] / "tests/data/prior/5pti.cif.gz"
        )
    for filt in (False, True):
        name = f"make_training_pair{' + halfmap_filter' if filt else ''} ({Path(model).name})"
        groups[name] = []
        for h1, h2, sharp, d in simulated_halfmaps(
            Path(model), box=box, voxel=voxel, pairs=args.pairs, seed=args.seed, filt=filt
        ):
            groups[name].append({"drawn_d": d, **halfmap_stats(h1, h2, sharp, voxel)})
    print(f"voxel {voxel} A, box {box}")
    print(summary_table(groups))
    if args.json:
        Path(args.json).write_text(json.dumps(groups, indent=1, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("provenance", help="table of the training files")
    p.add_argument("--write", action="store_true", help="update TRAINING_DATA.md")
    p.add_argument("--min-residues", type=int, default=100)
    h = sub.add_parser("halfmaps", help="real half-maps against the degradation model")
    h.add_argument("--runs", default="/work/runs/realistic", help="suite folder (runs/, datasets/)")
    h.add_argument("--model", default=None, help="model for the simulated pairs")
    h.add_argument("--pairs", type=int, default=24)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--json", default=None, help="write every row here")
    args = parser.parse_args(argv)
    return provenance(args) if args.command == "provenance" else halfmaps(args)


if __name__ == "__main__":
    raise SystemExit(main())
