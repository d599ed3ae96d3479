"""Speed and memory of cryoprior's SIDESPLITTER at 64^3 and 128^3 on this machine.

Inputs are made like the reference case (tests/data/sidesplitter/README.md): Gaussian atoms
(sigma 1.2 A at 1.5 A/voxel) inside a sphere, damped with B = 100 A^2, plus independent white
noise of SD 0.6 x SD(truth) per half, and a soft spherical mask. At 64^3 the reference
half-maps themselves are used.

The C program (SIDESPLITTER V1.2, FFTW double, OMP_NUM_THREADS=2) is not installed here; its
times on this machine kind come from the project's reference notes (64^3: 8.55 s default,
10.8 s rotfl, measured with the reference outputs; 128^3: 157 s), so the ratios below compare
runs made at different times, not side by side.

Usage: python benchmarks/sidesplitter_speed.py [--sizes 64 128] [--runs 3]
Writes benchmarks/results/sidesplitter_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from cryoprior.fourier.filters import apply_filter, bfactor_filter
from cryoprior.io.mrc import read_map
from cryoprior.regularizers.sidesplitter import sidesplitter

HERE = Path(__file__).parent
DATA = HERE.parent / "tests" / "data" / "sidesplitter"
RESULTS = HERE / "results"
C_SECONDS = {(64, "default"): 8.55, (64, "rotfl"): 10.8, (128, "default"): 157.0}


def make_inputs(n: int, seed: int = 0):
    if n == 64:
        return [
            read_map(DATA / f, dtype=np.float64) for f in ("half1.mrc", "half2.mrc", "mask.mrc")
        ]
    rng = np.random.default_rng(seed)
    voxel = 1.5
    radius = 18 * n / 64
    n_atoms = int(400 * (n / 64) ** 3)
    pts = []
    while len(pts) < n_atoms:
        p = rng.uniform(-radius, radius, 3)
        if p @ p <= radius**2:
            pts.append(p + n / 2)
    truth = np.zeros((n, n, n))
    idx = np.clip(np.round(np.array(pts)).astype(int), 0, n - 1)
    np.add.at(truth, tuple(idx.T), 1.0)
    truth = gaussian_filter(truth, 1.2 / voxel)
    truth = apply_filter(
        truth, bfactor_filter(n, b_factor_angstrom2=100.0, voxel_size_angstrom=voxel)
    )
    sd = 0.6 * truth.std()
    half1 = truth + rng.normal(0, sd, truth.shape)
    half2 = truth + rng.normal(0, sd, truth.shape)
    c = np.arange(n) - n / 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    inner, outer = 22 * n / 64, 26 * n / 64
    mask = np.clip((outer - r) / (outer - inner), 0, 1)
    mask = 0.5 - 0.5 * np.cos(np.pi * mask)
    return half1, half2, mask


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        h1, h2, mask = make_inputs(n)
        for mode in ("default", "rotfl"):
            sidesplitter(h1, h2, mask=mask, mode=mode)  # warm-up
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                result = sidesplitter(h1, h2, mask=mask, mode=mode)
                times.append(time.perf_counter() - t)
            tracemalloc.start()
            sidesplitter(h1, h2, mask=mask, mode=mode)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            median = statistics.median(times)
            c = C_SECONDS.get((n, mode))
            rows.append(
                {
                    "size": n,
                    "mode": mode,
                    "seconds": times,
                    "median_seconds": median,
                    "bands": result.n_bands,
                    "peak_memory_map_copies": peak / h1.nbytes,
                    "c_program_seconds": c,
                    "speedup_vs_c": (c / median) if c else None,
                }
            )
            print(rows[-1])
    meta = {
        "command": "python benchmarks/sidesplitter_speed.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "note": "in-process wall time of sidesplitter() after one warm-up; C program times from the reference notes",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sidesplitter_speed.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    lines = [
        "# SIDESPLITTER speed: cryoprior (numpy, float64) vs the C program",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['date']}.  ",
        f"{meta['note']}.",
        "",
        "| size | mode | bands | cryoprior median (s) | C program (s) | speed-up | peak memory (map copies) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = f"{r['c_program_seconds']:.1f}" if r["c_program_seconds"] else "n/a"
        sp = f"{r['speedup_vs_c']:.1f}x" if r["speedup_vs_c"] else "n/a"
        lines.append(
            f"| {r['size']}^3 | {r['mode']} | {r['bands']} | {r['median_seconds']:.2f} | {c} | {sp} | {r['peak_memory_map_copies']:.1f} |"
        )
    (RESULTS / "sidesplitter_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
