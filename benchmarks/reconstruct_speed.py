"""Speed of cryoprior's reconstruction against RELION's relion_external_reconstruct.

Both programs reconstruct the same job files, side by side in one run, alternating
A B A B so that drifts of the machine's speed hit both alike. Whole processes are timed
(start-up included): ``cryoprior-extrec --when never JOB.star`` against
``relion_external_reconstruct JOB.star --o OUT.mrc``.

Job files: ``relion_project`` makes noise-free projections of an atom-like phantom at the
box size, ``relion_reconstruct --external_reconstruct --pad 2`` writes RELION's Fourier
data and weight arrays and the job STAR; since relion_reconstruct writes no tau2 block
(the stock program needs one), one is added with RELION's own formula
(tau2 = fsc/(1-fsc) * sigma2, sigma2 = shell count / sum of pf^3 W) for a sigmoid FSC
falling to 0.5 at 0.7 x Nyquist. Outputs of the two programs are compared too.

Usage: python benchmarks/reconstruct_speed.py [--boxes 64 128] [--runs 5]
Writes benchmarks/results/reconstruct_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import starfile

from cryoprior.conventions import relion_round, rfft_frequency_indices
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion_extrec import (
    read_external_reconstruct_arrays,
    read_external_reconstruct_job,
)
from cryoprior.simulate.phantom import atom_like_phantom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test support
from relion_project import relion_project_uniform

RESULTS = Path(__file__).parent / "results"


def make_job(workdir: Path, box: int, *, n_particles: int, seed: int = 0) -> Path:
    """Job files for ``box`` at padding 2, with a tau2 block added (see module docstring)."""
    voxel = 1.5
    n_atoms = int(0.012 * box**3 / 8)
    phantom = atom_like_phantom(box, n_atoms=n_atoms, sigma_voxels=1.0, seed=seed)
    write_map_atomic(workdir / "phantom.mrc", phantom, voxel_size_angstrom=voxel)
    relion_project_uniform(
        "phantom.mrc",
        output_root="proj",
        n_particles=n_particles,
        voxel_size_angstrom=voxel,
        workdir=workdir,
    )
    # relion_reconstruct writes the job files, then calls the hook itself; the stock
    # program would crash without a tau2 block, so the hook is `true` and the missing map
    # makes relion_reconstruct exit non-zero after the files we need exist.
    subprocess.run(
        ["relion_reconstruct", "--i", "proj.star", "--o", "rec.mrc", "--external_reconstruct", "--pad", "2"],
        cwd=workdir, capture_output=True, env={**os.environ, "RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE": "true"},
    )  # fmt: skip
    star = workdir / "rec_external_reconstruct.star"
    if not star.exists():
        raise RuntimeError(f"relion_reconstruct did not write {star}")
    job = read_external_reconstruct_job(star)
    _, weight = read_external_reconstruct_arrays(job, base_dir=workdir)
    pf = job.padding_factor
    kz, ky, kx = rfft_frequency_indices(weight.shape[0])
    r2 = kz**2 + ky**2 + kx**2
    r_pad = relion_round(pf * (box // 2))
    inside = r2 < r_pad**2
    shells = relion_round(np.sqrt(r2[inside]) / pf)
    n_shells = box // 2 + 1
    sums = np.bincount(shells, weights=pf**3 * weight[inside], minlength=n_shells)[:n_shells]
    counts = np.bincount(shells, minlength=n_shells)[:n_shells]
    sigma2 = np.where(sums > 0, counts / np.where(sums > 0, sums, 1), 0.0)
    s = np.arange(n_shells)
    fsc = np.clip(1 / (1 + np.exp((s - 0.7 * box / 2) / 2.0)), 0.001, 0.999)
    tau2 = fsc / (1 - fsc) * sigma2
    blocks = starfile.read(star, always_dict=True)
    import pandas as pd

    blocks["external_reconstruct_tau2"] = pd.DataFrame(
        {"rlnSpectralIndex": s, "rlnReferenceTau2": tau2, "rlnGoldStandardFsc": fsc}
    )
    starfile.write(blocks, star, overwrite=True)
    return star


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr[-500:]}")
    return elapsed


def bench_box(box: int, runs: int, extrec: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench{box}_") as tmp:
        workdir = Path(tmp)
        star = make_job(workdir, box, n_particles=2000 if box <= 64 else 3000)
        job = read_external_reconstruct_job(star)
        ours_cmd = [extrec, "--when", "never", "--log-file", str(workdir / "log.jsonl"), star.name]
        stock_cmd = ["relion_external_reconstruct", star.name, "--o", "stock.mrc"]
        timed(ours_cmd, workdir)  # warm-up (file cache, Python bytecode)
        timed(stock_cmd, workdir)
        ours, stock = [], []
        for _ in range(runs):
            ours.append(timed(ours_cmd, workdir))
            stock.append(timed(stock_cmd, workdir))
        a = read_map(workdir / job.result_path)
        b = read_map(workdir / "stock.mrc")
        diff = float(np.abs(a - b).max() / np.abs(b).max())
        ratios = [o / s for o, s in zip(ours, stock, strict=True)]
        return {
            "box": box,
            "padding": job.padding_factor,
            "padded_grid": 2 * (relion_round(job.padding_factor * box / 2) + 1) + 1,
            "runs": runs,
            "cryoprior_seconds": ours,
            "relion_seconds": stock,
            "cryoprior_median_seconds": statistics.median(ours),
            "relion_median_seconds": statistics.median(stock),
            "ratio_per_pair": ratios,
            "ratio_median": statistics.median(ratios),
            "max_abs_diff_over_max": diff,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boxes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    extrec = str(Path(sys.executable).parent / "cryoprior-extrec")
    if not Path(extrec).exists():
        extrec = shutil.which("cryoprior-extrec") or "cryoprior-extrec"
    results = [bench_box(box, args.runs, extrec) for box in args.boxes]
    meta = {
        "command": "python benchmarks/reconstruct_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "relion": "RELION 3.1.3 (Debian, double precision)",
        "date": time.strftime("%Y-%m-%d"),
        "timing": "whole processes, wall clock, alternating cryoprior/RELION after one warm-up each",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconstruct_speed.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    lines = [
        "# Reconstruction speed: cryoprior-extrec vs relion_external_reconstruct",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['relion']}; {meta['date']}.  ",
        f"Timing: {meta['timing']}; medians of {args.runs} runs.",
        "",
        "| box | padding | padded grid | cryoprior (s) | RELION (s) | ratio cryoprior/RELION (median of pairs) | max abs diff / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['box']} | {r['padding']:g} | {r['padded_grid']} | {r['cryoprior_median_seconds']:.2f} | "
            f"{r['relion_median_seconds']:.2f} | {r['ratio_median']:.2f} | {r['max_abs_diff_over_max']:.1e} |"
        )
    (RESULTS / "reconstruct_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
