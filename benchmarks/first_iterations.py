"""Poses of the first iterations of a plain RELION auto-refine against a dataset's true poses.

Runs ``relion_refine_mpi`` (3 ranks, RELION's own reconstruction, no hook) on a simulated
dataset folder with the benchmark's sampling and any extra options, stops it once iteration
``--iterations`` is written, and prints the angular error of each iteration's poses. Made to
find why CTF runs converged on wrong maps (benchmarks/results/calibration_realistic.md), e.g.

    python benchmarks/first_iterations.py DATASET --work /tmp/it --iterations 1 -- --ctf
    python benchmarks/first_iterations.py DATASET --work /tmp/it --iterations 1 -- \
        --ctf --ctf_corrected_ref
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cryoprior.io.relion import poses_from_star
from cryoprior.refine.relion import AutoRefineSettings, build_refine_command
from cryoprior.refine.watchdog import stop_session
from cryoprior.validate.poses import match_poses, pose_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a `cryoprior simulate` folder")
    parser.add_argument("--work", type=Path, required=True, help="run folder (replaced)")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--sym", default="D2")
    parser.add_argument("--diameter", type=float, default=190.0)
    parser.add_argument("--ini-high", type=float, default=30.0)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.relion_options = argv[split + 1 :]  # after --: extra relion_refine options

    dataset = args.dataset.resolve()
    if args.work.exists():
        shutil.rmtree(args.work)
    (args.work / "Refine3D").mkdir(parents=True)
    (args.work / "Particles").symlink_to(dataset / "Particles")
    for name in ("particles.star", "initial_reference.mrc"):
        shutil.copy(dataset / name, args.work / name)
    # the benchmark's sampling (RefineOptions' defaults), RELION's own reconstruction (no hook)
    settings = AutoRefineSettings(
        particles_star="particles.star",
        reference_map="initial_reference.mrc",
        output_root="Refine3D/run",
        particle_diameter_angstrom=args.diameter,
        symmetry=args.sym,
        ini_high_angstrom=args.ini_high,
        healpix_order=1,
        auto_local_healpix_order=3,
        offset_range_pixels=3.0,
        offset_step_pixels=1.5,
        external_reconstruct=False,
        extra_args=tuple(args.relion_options),
    )
    command = build_refine_command(settings, hook_variable=False)
    last = args.work / "Refine3D" / f"run_it{args.iterations:03d}_data.star"
    with open(args.work / "run.log", "w") as log:
        proc = subprocess.Popen(
            command, cwd=args.work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        while proc.poll() is None and not last.exists():
            time.sleep(2)
        time.sleep(2)  # the STAR is written before the iteration's maps
        if proc.poll() is None:
            stop_session(proc.pid, leader=proc)  # every rank, SIGKILL after a grace period
    truth = poses_from_star(dataset / "ground_truth.star")
    print(f"options: {' '.join(args.relion_options) or '(none)'}")
    for it in range(args.iterations + 1):
        star = args.work / "Refine3D" / f"run_it{it:03d}_data.star"
        if not star.exists():
            break
        refined, true = match_poses(poses_from_star(star), truth)
        error = pose_errors(refined, true, symmetry=args.sym).angular_error_degrees
        print(
            f"iteration {it}: angular error median {np.median(error):.1f} deg, "
            f"mean {error.mean():.1f} deg, within 10 deg {np.mean(error < 10):.2f}"
        )


if __name__ == "__main__":
    main()
