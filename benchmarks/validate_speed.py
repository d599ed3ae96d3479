"""Speed of every validation metric on a 128^3 map and a 30k-atom model (target: < 30 s on
2 cores).

Test case: beta-galactosidase (PDB 5A1A, 32,824 heavy atoms without waters) centred in a 128^3
box of 1.5 A voxels; its map (gemmi's electron-scattering density, deposited B-factors) is the
truth. Half-maps are the truth blurred by B = 150 A^2 plus white noise of the truth's SD (the
masked FSC reaches about 4.3 A). The mask is made from the truth (2% of its maximum, dilated 3
voxels, 3-voxel soft edge); the model map for FSC-Q is the truth. Poses: 30,000 particles at
uniform random orientations (D2), refined poses = truth perturbed by 2 degrees and 1 A.

Timed: ``validate_maps`` (all metrics: gold-standard FSC with phase randomisation, local
resolution, conical FSC, FSC against the truth, Q-score, FSC-Q, pose errors and views), per
metric and in total, ``--runs`` times after one warm-up; and once, the whole command line
``cryoprior validate`` in a fresh Python (MRC reading, metrics, JSON, four PNGs).

Usage: python benchmarks/validate_speed.py [--runs 3] [--model PATH]
Writes benchmarks/results/validate_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cryoprior.fourier import apply_filter, bfactor_filter
from cryoprior.io.model_map import model_to_map
from cryoprior.io.mrc import write_map_atomic
from cryoprior.poses import Poses
from cryoprior.validate import (
    ValidationInputs,
    ValidationSettings,
    read_atomic_model,
    validate_maps,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
DEFAULT_MODEL = ROOT / "src" / "cryoprior" / "data" / "5a1a.cif.gz"  # shipped (PROVENANCE.md)
BOX, VOXEL = 128, 1.5

CLI = (
    "import typer; from cryoprior.cli.validate import validate; "
    "app = typer.Typer(); app.command()(validate); app()"
)


def make_case(model_path: Path, *, n_particles: int, seed: int = 0):
    model = read_atomic_model(model_path)
    xyz = model.positions_angstrom
    centre = 0.5 * (xyz.min(axis=0) + xyz.max(axis=0))
    origin = tuple(centre - BOX * VOXEL / 2)  # puts the model's bounding-box centre mid-box
    truth = model_to_map(
        model_path, box_size=BOX, voxel_size_angstrom=VOXEL, origin_angstrom=origin
    )
    rng = np.random.default_rng(seed)
    signal = apply_filter(
        truth, bfactor_filter(BOX, b_factor_angstrom2=150.0, voxel_size_angstrom=VOXEL)
    )
    sd = truth.std()
    h1 = signal + rng.normal(scale=sd, size=truth.shape)
    h2 = signal + rng.normal(scale=sd, size=truth.shape)

    from scipy.spatial.transform import Rotation

    from cryoprior.conventions import matrix_to_euler

    true_m = Rotation.random(n_particles, random_state=rng).as_matrix()
    names = np.array([f"{i + 1:06d}@particles.mrcs" for i in range(n_particles)], dtype=object)
    zeros = np.zeros(n_particles)
    truth_poses = Poses(*matrix_to_euler(true_m), zeros, zeros, image_names=names)
    kick = Rotation.from_rotvec(
        np.deg2rad(2.0) * Rotation.random(n_particles, random_state=rng).as_rotvec() / np.pi
    ).as_matrix()
    refined_poses = Poses(
        *matrix_to_euler(kick @ true_m),
        rng.normal(scale=1.0, size=n_particles),
        rng.normal(scale=1.0, size=n_particles),
        image_names=names,
    )
    inputs = ValidationInputs(
        half_map_1=h1,
        half_map_2=h2,
        voxel_size_angstrom=VOXEL,
        truth_map=truth,
        model=model,
        model_map=truth,
        origin_angstrom=origin,
        refined_poses=refined_poses,
        true_poses=truth_poses,
    )
    return inputs, origin


def run_cli(inputs: ValidationInputs, origin, model_path: Path, workdir: Path) -> float:
    """Whole ``cryoprior validate`` in a fresh Python; returns wall seconds."""
    import gemmi

    structure = gemmi.read_structure(str(model_path))
    structure.setup_entities()
    structure.remove_hydrogens()
    structure.remove_waters()
    shift = -np.asarray(origin)
    structure[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    structure.write_pdb(str(workdir / "model.pdb"))
    for name, array in (
        ("half1.mrc", inputs.half_map_1),
        ("half2.mrc", inputs.half_map_2),
        ("truth.mrc", inputs.truth_map),
        ("model_map.mrc", inputs.model_map),
    ):
        write_map_atomic(workdir / name, array, voxel_size_angstrom=VOXEL)
    cmd = [
        sys.executable, "-c", CLI,
        "--half1", "half1.mrc", "--half2", "half2.mrc", "--truth-map", "truth.mrc",
        "--model", "model.pdb", "--model-map", "model_map.mrc", "--sym", "D2",
        "--out", "out", "--no-per-atom",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"cryoprior validate failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--particles", type=int, default=30000)
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"model not found: {args.model} (give --model PATH)")

    load_before = os.getloadavg()[0]
    inputs, origin = make_case(args.model, n_particles=args.particles)
    settings = ValidationSettings(symmetry="D2")
    validate_maps(inputs, settings)  # warm-up
    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = validate_maps(inputs, settings)
        total = time.perf_counter() - start
        runs.append({"total_seconds": total, **report.timings_seconds})
    with tempfile.TemporaryDirectory() as tmp:
        cli_seconds = run_cli(inputs, origin, args.model, Path(tmp))

    metrics = [k for k in runs[0] if k != "total_seconds"]
    medians = {k: statistics.median(r[k] for r in runs) for k in [*metrics, "total_seconds"]}
    summary = report.to_dict(per_atom=False)
    values = {
        "fsc_0143_angstrom": summary["gold_standard_fsc"]["resolution_0143_angstrom"],
        "local_resolution_median_angstrom": summary["local_resolution"]["median_angstrom"],
        "directional_best_worst_angstrom": [
            summary["directional_resolution"]["best_angstrom"],
            summary["directional_resolution"]["worst_angstrom"],
        ],
        "map_vs_truth_fsc05_angstrom": summary["truth"]["full_map"]["resolution_05_angstrom"],
        "mean_q_score": summary["q_score"]["mean"],
        "mean_fsc_q_angstrom": summary["fsc_q"]["mean_angstrom"],
        "angular_error_median_degrees": summary["pose_errors"]["angular_error_degrees"]["median"],
    }
    meta = {
        "command": f"python benchmarks/validate_speed.py --runs {args.runs}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "case": (
            f"5A1A, {inputs.model.n_atoms} heavy atoms; {BOX}^3 map, {VOXEL} A voxels; "
            f"{args.particles} particles, D2"
        ),
        "timing": f"validate_maps wall clock per metric, median of {args.runs} runs after a warm-up",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validate_speed.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "runs": runs,
                "median_seconds": medians,
                "cli_seconds": cli_seconds,
                "values": values,
            },
            indent=2,
        )
        + "\n"
    )
    names = {
        "gold_standard_fsc": "gold-standard FSC (masked, phase-randomised, corrected)",
        "local_resolution": "local resolution (window 20, step 4, in mask)",
        "directional_resolution": "directional resolution (64 cones of 20 deg)",
        "truth": "FSC and CC of map and half-maps against the truth",
        "q_score": f"Q-score ({inputs.model.n_atoms} atoms)",
        "fsc_q": "FSC-Q (two local-FSC maps, read at every atom)",
        "poses": f"pose errors, views, attraction ({args.particles} particles, D2)",
    }
    lines = [
        "# Validation speed: every metric on a 128^3 map and a 30k-atom model",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['date']}.  ",
        f"Case: {meta['case']}.  ",
        f"Timing: {meta['timing']}.  ",
        "Machine load (1-minute load average before and after; other jobs share the 2 cores): "
        f"{meta['load_average_1min'][0]} / {meta['load_average_1min'][1]}.",
        "",
        "| metric | median (s) |",
        "|---|---|",
    ]
    lines += [f"| {names.get(k, k)} | {medians[k]:.2f} |" for k in metrics]
    lines += [
        f"| **all metrics (`validate_maps`)** | **{medians['total_seconds']:.2f}** |",
        f"| whole `cryoprior validate` command (fresh Python, MRC/PDB reading, JSON, 4 PNGs), one run | {cli_seconds:.2f} |",
        "",
        "Values measured on this case: "
        + ", ".join(
            f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {[round(x, 2) for x in v]}"
            for k, v in values.items()
        )
        + ".",
    ]
    (RESULTS / "validate_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
