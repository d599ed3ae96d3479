"""Speed and memory of cryoprior's SIDESPLITTER at 64^3 and 128^3 on this machine.

Inputs are made like the reference case (tests/data/sidesplitter/README.md): Gaussian atoms
(sigma 1.2 A at 1.5 A/voxel) inside a sphere, damped with B = 100 A^2, plus independent white
noise of SD 0.6 x SD(truth) per half, and a soft spherical mask. At 64^3 the reference
half-maps themselves are used.

The C program (SIDESPLITTER V1.2, FFTW double, OMP_NUM_THREADS=2) is not installed here; its
times on this machine kind come from the project's reference notes (64^3: 8.55 s default,
10.8 s rotfl, measured with the reference outputs; 128^3: 157 s), so the ratios below compare
runs made at different times, not side by side. The target is 5x the C program.

The machine is shared (RELION runs may be going on): the 1-minute load average is recorded
before and after each row's timed runs, next to the wall-time median and the process CPU
time (all threads). At 64^3 the outputs are also compared with the C program's (relative L2).

Usage: python benchmarks/sidesplitter_speed.py [--sizes 64 128] [--runs 5]
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
TARGET_SPEEDUP = 5.0


def load_1min() -> float:
    return os.getloadavg()[0]


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy (not idle/iowait) since boot (Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def parity(result, mode: str) -> float:
    """Largest relative L2 difference of the two halves from the C program's (64^3 only)."""
    errors = []
    for i, ours in enumerate((result.half_map_1, result.half_map_2), start=1):
        ref = read_map(DATA / mode / f"half{i}_sidesplitter.mrc", dtype=np.float64)
        errors.append(float(np.linalg.norm(ours - ref) / np.linalg.norm(ref)))
    return max(errors)


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
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the committed rows of sizes not measured now (each row keeps its date)",
    )
    args = parser.parse_args()
    rows = []
    kept = []
    previous = RESULTS / "sidesplitter_speed.json"
    if args.merge and previous.exists():
        old = json.loads(previous.read_text())
        kept = [
            {**r, "date": r.get("date", old["meta"]["date"])}
            for r in old["results"]
            if r["size"] not in args.sizes
        ]
    for n in args.sizes:
        h1, h2, mask = make_inputs(n)
        for mode in ("default", "rotfl"):
            sidesplitter(h1, h2, mask=mask, mode=mode)  # warm-up
            times, cpu = [], []
            load_before = load_1min()
            busy_before, wall_before, own_before = (
                busy_cpu_seconds(),
                time.perf_counter(),
                time.process_time(),
            )
            for _ in range(args.runs):
                t, c = time.perf_counter(), time.process_time()
                result = sidesplitter(h1, h2, mask=mask, mode=mode)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            load_after = load_1min()
            busy_after = busy_cpu_seconds()
            others = (
                (busy_after - busy_before - (time.process_time() - own_before))
                / (time.perf_counter() - wall_before)
                if busy_before is not None and busy_after is not None
                else None
            )
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
                    "cpu_seconds": cpu,
                    "median_cpu_seconds": statistics.median(cpu),
                    "load_1min_before": load_before,
                    "load_1min_after": load_after,
                    "other_processes_cpu_cores": others,
                    "bands": result.n_bands,
                    "peak_memory_map_copies": peak / h1.nbytes,
                    "parity_rel_l2_vs_c": parity(result, mode) if n == 64 else None,
                    "c_program_seconds": c,
                    "target_seconds": (c / TARGET_SPEEDUP) if c else None,
                    "speedup_vs_c": (c / median) if c else None,
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                }
            )
            print(rows[-1])
    rows = sorted(kept + rows, key=lambda r: (r["size"], r["mode"]))
    meta = {
        "command": "python benchmarks/sidesplitter_speed.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if k != "merge"
        )
        + (" --merge (other sizes: earlier runs, dated per row)" if args.merge else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "note": "in-process wall time of sidesplitter() after one warm-up (median, min-max of the runs); "
        "CPU = process CPU time, all threads; load = 1-minute load average before -> after the "
        "timed runs (this benchmark's own 2 threads count in it); others = CPU cores the other "
        "processes kept busy on average during the timed runs (/proc/stat minus our CPU time; "
        "2 CPUs in all); C program times from the reference notes, target = 5x the C program",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sidesplitter_speed.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    lines = [
        "# SIDESPLITTER speed: cryoprior (numpy/scipy, float64 decisions) vs the C program",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['date']}.  ",
        f"{meta['note']}.",
        "",
        "| size | mode | bands | wall median (s) [min-max] | CPU median (s) | load 1-min | others (cores) | C program (s) | target (s) | speed-up | target met | peak memory (map copies) | parity vs C (rel. L2) | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = f"{r['c_program_seconds']:.1f}" if r["c_program_seconds"] else "n/a"
        tg = f"{r['target_seconds']:.2f}" if r["target_seconds"] else "n/a"
        sp = f"{r['speedup_vs_c']:.1f}x" if r["speedup_vs_c"] else "n/a"
        met = (
            ("yes" if r["median_seconds"] <= r["target_seconds"] else "NO")
            if r["target_seconds"]
            else "n/a"
        )
        par = f"{r['parity_rel_l2_vs_c']:.1e}" if r["parity_rel_l2_vs_c"] is not None else "n/a"
        wall = f"{r['median_seconds']:.2f} [{min(r['seconds']):.2f}-{max(r['seconds']):.2f}]"
        load = f"{r['load_1min_before']:.2f} -> {r['load_1min_after']:.2f}"
        others = (
            f"{r['other_processes_cpu_cores']:.2f}"
            if r["other_processes_cpu_cores"] is not None
            else "n/a"
        )
        lines.append(
            f"| {r['size']}^3 | {r['mode']} | {r['bands']} | {wall} | {r['median_cpu_seconds']:.2f} | {load} | {others} | {c} | {tg} | {sp} | {met} | {r['peak_memory_map_copies']:.1f} | {par} | {r.get('date', meta['date'])} |"
        )
    (RESULTS / "sidesplitter_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
