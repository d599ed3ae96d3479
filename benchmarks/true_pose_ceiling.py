"""How far can better poses take a refinement of the realistic suite? Reconstruct with the true poses.

A mode's own final map in the realistic suite is RELION's unregularized reconstruction from that
mode's poses, so what a regularizer in the loop can gain at FSC 0.5 against the truth is bounded
by the map the true poses give. This script simulates the three repeated cases' datasets (the
suite's own, by its configuration), splits the particles into two random halves (seeded), runs
``relion_reconstruct --ctf`` on the ground-truth poses for each half and for all particles (as
RELION's final map joins both halves), and validates the maps against the truth exactly as the
suite does (``validate_maps``: the truth's mask, FSC 0.5 / 0.143, correlation). The gain a
perfect alignment would give over plain RELION's mean (from the committed ``results.json``) is
the ceiling of an in-loop gain.

Caveat: ``relion_reconstruct`` has no MAP (tau2) term and pads by 2, like the final iteration
of an auto-refine; whether RELION's final map carries more regularization than that was not
checked here.

    python benchmarks/true_pose_ceiling.py --root /work/runs/ceiling \
        --out benchmarks/results/true_pose_ceiling
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from cryoprior.io.mrc import read_map
from cryoprior.io.star import read_star, write_star_atomic
from cryoprior.refine.config import suite
from cryoprior.refine.run import ensure_dataset, validation_summary
from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps

CASES = ("rl-betagal-isotropic", "rl-proteasome-anisotropic", "rl-gltph-belt")
RESULTS = Path(__file__).parent / "results" / "realistic" / "results.json"


def _reconstruct(star: Path, out: Path, symmetry: str, subset: int | None) -> float:
    cmd = ["relion_reconstruct", "--i", str(star), "--o", str(out), "--ctf", "--sym", symmetry]
    if subset is not None:
        cmd += ["--subset", str(subset)]
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=star.parent)
    return time.monotonic() - started


def _plain_relion(case_name: str) -> dict:
    data = json.loads(RESULTS.read_text())
    for case in data["cases"]:
        name = case["case"] if isinstance(case["case"], str) else case["case"]["name"]
        if name == case_name:
            stats = case["repeats"]["statistics"]
            return {
                mode: {
                    key: stats[mode][key]["mean"]
                    for key in ("truth_fsc_05_angstrom", "truth_correlation")
                }
                for mode in ("relion", "prior", "prior-noguard", "post:prior", "post:prior:prior")
                if mode in stats
            }
    raise KeyError(case_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="datasets and maps go here")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random half split")
    args = parser.parse_args()
    cases = {c.name: c for c in suite("realistic")}
    rows = []
    for name in CASES:
        case = cases[name]
        dataset = ensure_dataset(case.simulation, args.root)
        work = args.root / "ceiling" / name
        work.mkdir(parents=True, exist_ok=True)
        star = read_star(dataset / "ground_truth.star")
        particles = star["particles"].copy()
        rng = np.random.default_rng(args.seed)
        halves = np.ones(len(particles), dtype=int)
        halves[rng.permutation(len(particles))[: len(particles) // 2]] = 2
        particles["rlnRandomSubset"] = halves
        # image names are relative to the dataset folder: write the STAR there
        split = dataset / f"ground_truth_split_seed{args.seed}.star"
        write_star_atomic(split, {**star, "particles": particles})
        symmetry = case.refine.symmetry
        seconds = 0.0
        maps = {}
        for label, subset in (("half1", 1), ("half2", 2), ("full", None)):
            out = work / f"{label}.mrc"
            seconds += _reconstruct(split, out.resolve(), symmetry, subset)
            maps[label] = read_map(out, dtype=np.float64)
        voxel = case.simulation.voxel_size_angstrom
        inputs = ValidationInputs(
            half_map_1=maps["half1"],
            half_map_2=maps["half2"],
            voxel_size_angstrom=float(voxel),
            full_map=maps["full"],
            truth_map=read_map(dataset / "true_map.mrc", dtype=np.float64),
        )
        settings = ValidationSettings(
            symmetry=symmetry,
            local_window_voxels=case.validation_window_voxels,
            fscq_window_voxels=case.validation_window_voxels,
            seed=0,
        )
        summary = validation_summary(validate_maps(inputs, settings).to_dict(per_atom=False))
        suite_means = _plain_relion(name)
        relion = suite_means["relion"]["truth_fsc_05_angstrom"]
        true_pose = summary["truth_fsc_05_angstrom"]
        rows.append(
            {
                "case": name,
                "particles": len(particles),
                "true_poses": {
                    k: summary.get(k)
                    for k in (
                        "truth_fsc_05_angstrom",
                        "truth_fsc_0143_angstrom",
                        "truth_correlation",
                        "fsc_0143_angstrom",
                    )
                },
                "suite_means": suite_means,
                "ceiling_gain_percent": 100.0 * (relion - true_pose) / relion,
                "reconstruct_seconds": seconds,
            }
        )
        print(
            name,
            json.dumps(rows[-1]["true_poses"]),
            f"ceiling {rows[-1]['ceiling_gain_percent']:.1f} %",
        )
    record = {
        "command": "python benchmarks/true_pose_ceiling.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "relion_reconstruct": subprocess.run(
            ["relion_reconstruct", "--version"], capture_output=True, text=True
        ).stdout.strip()
        or "RELION 3.1.3 (Debian)",
        "cores": os.cpu_count(),
        "cases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(record, indent=1))
    lines = [
        "# The ceiling of an in-loop gain: the realistic suite's datasets reconstructed with the true poses",
        "",
        f"Made by `{record['command']}` (`benchmarks/true_pose_ceiling.py`; its docstring says how"
        " and its caveat). FSC 0.5 against the truth (A) and correlation with the truth, as the"
        " suite scores its runs; the suite's columns are the means of its 3 repeats"
        " (`benchmarks/results/realistic/results.json`, prior weights v2). The ceiling is"
        " plain RELION's mean over the true poses' FSC 0.5, as a gain: no regularizer in the"
        " loop can give a mode's own final map (RELION's reconstruction from its poses) more"
        " than perfect poses would, up to the caveat. The FSC is unchanged by a radial filter,"
        " the correlation is not: relion_reconstruct's map has no MAP term, so its correlation"
        " is not comparable with the runs'.",
        "",
        "| case | true poses | plain RELION | prior + guard (in the loop) | prior, no guard (in the loop) | RELION, then prior + guard once | prior + guard in the loop, then once | ceiling of an in-loop gain |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(values: dict | None) -> str:
        if not values:
            return "n/a"
        return f"{values['truth_fsc_05_angstrom']:.2f}, cc {values['truth_correlation']:.3f}"

    for row in rows:
        m = row["suite_means"]
        lines.append(
            f"| {row['case']} | {cell(row['true_poses'])} | {cell(m.get('relion'))} | "
            f"{cell(m.get('prior'))} | {cell(m.get('prior-noguard'))} | {cell(m.get('post:prior'))} | "
            f"{cell(m.get('post:prior:prior'))} | {row['ceiling_gain_percent']:+.1f} % |"
        )
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
