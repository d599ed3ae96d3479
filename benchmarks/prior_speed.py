"""Inference time of the learned prior: box sizes, settings, thread counts (issue 17).

Two measurements, both on random maps (noise everywhere: no tile is skipped as empty):

1. Sizes: ``enhance_map`` on (n, n, n) maps, n in 64, 128, 256, 360 (``--sizes``), at
   ``--voxel`` A/px (default 1.0), assumed current resolution ``--nyquist-factor`` x Nyquist
   (default 4: 8 A at 1.0 A/px, an early local-search iteration), with ``--threads`` torch
   threads, the median of ``--repeats`` runs after one warm-up on a small map. Settings:

   - "before": the regularizer's settings before issue 17 - the model's 1.5 A voxel whatever
     the resolution, tiles of at most 64^3 with per-tile normalisation;
   - "adaptive": the regularizer's settings now (``PriorRegularizer().settings``): the
     network's voxel from the current resolution, the whole map in one pass (or the fewest
     tiles) with normalisation statistics from the particle region.

2. Threads (``--concurrency``): the hook regularizes the two half-maps at the same time in
   two processes on the same cores. Two fresh processes each enhance one map (the demo's:
   box 48 at 4.4 A/px at ``--concurrency-resolution`` A, and box ``--concurrency-box``) with
   1 and with 2 torch threads each, computing at the same time (both wait for a common start
   after loading and a warm-up); reported is the slower process's median seconds per map
   over ``--repeats`` runs.

Timings depend on the machine's load: the 1-minute load average is recorded before and after.

Usage: python benchmarks/prior_speed.py [--sizes 64 128 256 360] [--repeats 3] [--threads 2]
       [--settings before adaptive] [--concurrency] [--out benchmarks/results/prior_speed]
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def settings_for(name: str):
    from cryoprior.prior.infer import InferenceSettings
    from cryoprior.regularizers.prior import PriorRegularizer

    if name == "before":
        return InferenceSettings(tile_size=64, overlap=16, keep_beyond_model_nyquist=True)
    if name == "adaptive":
        return PriorRegularizer.default_settings()
    raise ValueError(f"unknown settings {name!r}")


def time_one(n: int, voxel: float, resolution: float, settings, repeats: int, prior) -> dict:
    """Median seconds of ``repeats`` runs of enhance_map on one random (n, n, n) map."""
    import numpy as np

    from cryoprior.prior.infer import enhance_map

    vol = np.random.default_rng(n).normal(size=(n, n, n))
    enhance_map(  # warm-up (allocators, thread pool)
        vol[:32, :32, :32], voxel_size_angstrom=voxel, prior=prior, settings=settings
    )
    runs, info = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        info = enhance_map(
            vol,
            voxel_size_angstrom=voxel,
            prior=prior,
            resolution_angstrom=resolution,
            settings=settings,
        ).info
        runs.append(time.perf_counter() - t0)
    return {
        "seconds_median": statistics.median(runs),
        "seconds_runs": runs,
        "model_box": info["model_box"],
        "network_voxel_angstrom": info["model_voxel_size_angstrom"],
        "tiles": info["tiles"],
    }


def one_process(args) -> None:
    """``--one N VOXEL RESOLUTION THREADS START``: after loading and a warm-up, wait until
    the wall-clock time START (so that both processes compute at the same time), enhance one
    map ``--repeats`` times, print the seconds as JSON (for 2.)."""
    import numpy as np
    import torch

    from cryoprior.prior.infer import enhance_map, load_prior

    n, voxel, resolution, threads, start = args.one
    torch.set_num_threads(int(threads))
    prior = load_prior()
    settings = settings_for("adaptive")
    vol = np.random.default_rng(int(n)).normal(size=(int(n),) * 3)
    kwargs = {"voxel_size_angstrom": voxel, "prior": prior, "resolution_angstrom": resolution}
    enhance_map(vol, settings=settings, **kwargs)  # warm-up
    time.sleep(max(0.0, start - time.time()))
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        enhance_map(vol, settings=settings, **kwargs)
        runs.append(time.perf_counter() - t0)
    print(json.dumps({"seconds_median": statistics.median(runs), "runs": runs}))


def concurrency(args) -> list[dict]:
    rows = []
    cases = [(48, 4.4, args.concurrency_resolution), (args.concurrency_box, 1.0, 8.0)]
    for n, voxel, resolution in cases:
        for threads in (1, 2):
            start = time.time() + 20.0  # both processes loaded and warmed up by then
            cmd = [sys.executable, __file__, "--repeats", str(args.repeats), "--one"]
            cmd += [str(x) for x in (n, voxel, resolution, threads, start)]
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            row = {
                "box": n,
                "voxel_angstrom": voxel,
                "resolution_angstrom": resolution,
                "threads_per_process": threads,
                "slower_process_seconds_median": max(o["seconds_median"] for o in outs),
                "processes": outs,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def markdown(result: dict) -> str:
    lines = [
        "# Inference time of the learned prior (issue 17)",
        "",
        f"Made by `{result['command']}` on {result['machine']}.",
        f"1-minute load average before / after: {result['load_before']:.1f} / "
        f"{result['load_after']:.1f} ({os.cpu_count()} cores). {result.get('note', '')}",
        "",
    ]
    if result["sizes"]:
        lines += [
            f"Random maps at {result['voxel_angstrom']} A/px, assumed current resolution "
            f"{result['resolution_angstrom']:.2f} A ({result['nyquist_factor']:g} x Nyquist), "
            f"{result['threads']} torch threads, median of {result['repeats']} runs:",
            "",
            "| box | settings | seconds (median) | network box | network voxel (A) | tiles |",
            "|---|---|---|---|---|---|",
        ]
        for row in result["sizes"]:
            lines.append(
                f"| {row['box']}^3 | {row['settings']} | {row['seconds_median']:.1f} | "
                f"{row['model_box']}^3 | {row['network_voxel_angstrom']:.2f} | {row['tiles']} |"
            )
        lines.append("")
    if result["concurrency"]:
        lines += [
            "Two processes started together (the hook's two halves), each enhancing one map "
            "with the adaptive settings at the same time (after loading and a warm-up); the "
            "slower process's median seconds per map:",
            "",
            "| box | A/px | resolution (A) | torch threads per process | wall (s, median) |",
            "|---|---|---|---|---|",
        ]
        for row in result["concurrency"]:
            lines.append(
                f"| {row['box']}^3 | {row['voxel_angstrom']} | {row['resolution_angstrom']} | "
                f"{row['threads_per_process']} | {row['slower_process_seconds_median']:.2f} |"
            )
        lines.append("")
    lines += [
        "Settings: 'before' = the regularizer's settings before issue 17 (the model's 1.5 A "
        "voxel, tiles of at most 64^3, per-tile normalisation, the mask resampled too), run "
        "with the current code, whose resampling is faster than that of the time (issue 17 "
        "quotes 43.6 s at 256^3 and 5.7 s at 128^3 for the code of then); 'adaptive' = the "
        f"regularizer's settings now ({result['adaptive_settings']}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256, 360])
    parser.add_argument("--voxel", type=float, default=1.0, help="input A/px")
    parser.add_argument("--nyquist-factor", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before-repeats", type=int, default=1, help="repeats of 'before'")
    parser.add_argument("--settings", nargs="*", default=["before", "adaptive"])
    parser.add_argument("--concurrency", action="store_true")
    parser.add_argument("--concurrency-box", type=int, default=128)
    parser.add_argument("--concurrency-resolution", type=float, default=9.5)
    parser.add_argument("--note", default="", help="free text for the report (e.g. the load)")
    parser.add_argument("--out", default=str(RESULTS / "prior_speed"))
    parser.add_argument("--one", nargs=5, type=float, help=argparse.SUPPRESS)
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from .json")
    args = parser.parse_args()
    if args.markdown_only:
        out = Path(args.out)
        out.with_suffix(".md").write_text(
            markdown(json.loads(out.with_suffix(".json").read_text()))
        )
        return
    if args.one:
        one_process(args)
        return
    import torch

    from cryoprior.prior.infer import load_prior

    load_before = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    prior = load_prior()
    resolution = args.nyquist_factor * 2.0 * args.voxel
    sizes = []
    for n in args.sizes:
        for name in args.settings:
            repeats = args.before_repeats if name == "before" else args.repeats
            row = {"box": n, "settings": name}
            row |= time_one(n, args.voxel, resolution, settings_for(name), repeats, prior)
            print(json.dumps(row), flush=True)
            sizes.append(row)
    result = {
        "command": "python benchmarks/prior_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
        "voxel_angstrom": args.voxel,
        "resolution_angstrom": resolution,
        "nyquist_factor": args.nyquist_factor,
        "threads": args.threads,
        "repeats": args.repeats,
        "adaptive_settings": repr(settings_for("adaptive")),
        "sizes": sizes,
        "concurrency": concurrency(args) if args.concurrency else [],
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "note": args.note,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out}.json and .md")


if __name__ == "__main__":
    main()
