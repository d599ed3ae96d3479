"""Speed of cryoprior's particle simulation against RELION's relion_project, side by side.

For each box size, the map is beta-galactosidase (5A1A, shipped) made by
``cryoprior.io.model_map.model_to_map`` (band-limited) at 208/box A per pixel; the poses are uniform
random with random shifts and one defocus per particle, written to a RELION 3.1 STAR file.
Both programs then make the same number of noisy particles (white noise, SD 1) from that map
and those poses, with and without CTF, as whole processes timed by the wall clock, one after
the other (A B A B ...) after one warm-up each:

* ``relion_project --i map.mrc --ang angles.star --angpix V [--ctf] --add_noise --white_noise 1``
* ``python -c "simulate_dataset(SimulationConfig(map_path=map.mrc, orientations='star',
  angles_star=angles.star, ctf=..., noise_sd=1, backend='compiled'), out)"`` - the whole
  cryoprior dataset: imports, map preparation, projection, CTF, noise, .mrcs and STAR files;
  the torch.compile kernel comes from the on-disk cache after the warm-up.

Also, inside this process: the steady-state rate of cryoprior's image formation
(``render_particles``: projection, shift, CTF, noise; batches as ``simulate_dataset`` makes
them) with the compiled projector on torch's default threads and on 1 thread, with the eager
projector, and torch-fourier-slice's ``project_3d_to_2d`` if it is installed (it is not a
dependency; n/a otherwise).

Usage: python benchmarks/simulate_speed.py [--boxes 64 128 256] [--repeats 2] [--merge]
Writes benchmarks/results/simulate_speed.{json,md}.
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
import pandas as pd
import starfile
import torch

from cryoprior.io.atomic_model import read_atomic_model
from cryoprior.io.model_map import model_to_map
from cryoprior.io.mrc import write_map_atomic
from cryoprior.poses import Poses
from cryoprior.simulate.ctf import CTFOptics
from cryoprior.simulate.images import CTFValues, ImageFormation, render_particles
from cryoprior.simulate.models import shipped_model_path
from cryoprior.simulate.particles import auto_batch_size
from cryoprior.simulate.poses import uniform_poses, with_random_shifts
from cryoprior.simulate.project import fourier_volume

RESULTS = Path(__file__).parent / "results"
PARTICLES = {64: 50000, 128: 20000, 256: 2000}
NOISE_SD = 1.0

CRYOPRIOR_SCRIPT = """
import sys
from cryoprior.simulate.config import SimulationConfig
from cryoprior.simulate.dataset import simulate_dataset
ctf = sys.argv[1] == "ctf"
simulate_dataset(
    SimulationConfig(map_path="map.mrc", orientations="star", angles_star="angles.star",
                     ctf=ctf, noise_sd=float(sys.argv[2]), backend="compiled", device="cpu"),
    "cryoprior_out", overwrite=True,
)
"""


def make_inputs(workdir: Path, box: int, n: int) -> tuple[np.ndarray, float, pd.DataFrame]:
    voxel = 208.0 / box
    model = read_atomic_model(
        shipped_model_path("beta-galactosidase"), remove_hydrogens=False, remove_waters=False
    )  # as the simulator reads it
    volume = model_to_map(
        model, box_size=box, voxel_size_angstrom=voxel, centre=True, band_limited=True
    ).astype(np.float32)
    write_map_atomic(workdir / "map.mrc", volume, voxel_size_angstrom=voxel)
    poses = with_random_shifts(uniform_poses(n, seed=1), sd_angstrom=2 * voxel, seed=2)
    rng = np.random.default_rng(3)
    table = poses.to_dataframe()
    table["rlnDefocusU"] = rng.uniform(10000, 25000, n)
    table["rlnDefocusV"] = table["rlnDefocusU"] - 500.0
    table["rlnDefocusAngle"] = rng.uniform(0, 180, n)
    table["rlnOpticsGroup"] = 1
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnImagePixelSize": [voxel],
            "rlnImageSize": [box],
            "rlnImageDimensionality": [2],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
        }
    )
    starfile.write({"optics": optics, "particles": table}, workdir / "angles.star", overwrite=True)
    return volume, voxel, table


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout)[-800:]}")
    return elapsed


def steady_state_rate(
    volume, voxel, table, *, ctf: bool, backend: str, n: int, threads: int | None = None
) -> float:
    """Particles per second of render_particles (batches as simulate_dataset makes them)
    after one warm-up batch, with ``threads`` torch threads (None: torch's default)."""
    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _steady_state_rate(volume, voxel, table, ctf=ctf, backend=backend, n=n)
    finally:
        torch.set_num_threads(default_threads)


def _steady_state_rate(volume, voxel, table, *, ctf: bool, backend: str, n: int) -> float:
    batch = min(auto_batch_size(volume.shape[0]), n)
    fvol = fourier_volume(volume)
    poses = Poses(
        table.rlnAngleRot, table.rlnAngleTilt, table.rlnAnglePsi,
        table.rlnOriginXAngst, table.rlnOriginYAngst,
    )  # fmt: skip
    defocus = CTFValues(table.rlnDefocusU, table.rlnDefocusV, table.rlnDefocusAngle)
    formation = ImageFormation(
        voxel_size_angstrom=voxel, ctf_optics=CTFOptics() if ctf else None, noise_sd=NOISE_SD
    )

    def run(rows):
        render_particles(
            fvol, poses.take(rows), formation=formation, ctf=defocus.take(rows) if ctf else None,
            particle_indices=rows, seed=0, backend=backend,
        )  # fmt: skip

    run(np.arange(batch))
    start = time.perf_counter()
    for b0 in range(0, n, batch):
        run(np.arange(b0, min(b0 + batch, n)))
    return n / (time.perf_counter() - start)


def torch_fourier_slice_rate(volume, table, n: int) -> float | None:
    try:
        from scipy.spatial.transform import Rotation
        from torch_fourier_slice import project_3d_to_2d
    except ImportError:
        return None
    matrices = Rotation.from_euler(
        "ZYZ", table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy()[:n], degrees=True
    ).as_matrix()
    vol = torch.from_numpy(np.asarray(volume, dtype=np.float32))
    rot = torch.from_numpy(matrices).float()
    project_3d_to_2d(vol, rot[:8])
    start = time.perf_counter()
    for b0 in range(0, n, 256):
        project_3d_to_2d(vol, rot[b0 : b0 + 256])
    return n / (time.perf_counter() - start)


def bench_box(box: int, repeats: int) -> list[dict]:
    n = PARTICLES[box]
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"simbench{box}_") as tmp:
        workdir = Path(tmp)
        volume, voxel, table = make_inputs(workdir, box, n)
        for ctf in (False, True):
            relion_cmd = [
                "relion_project", "--i", "map.mrc", "--o", "relion_out", "--ang", "angles.star",
                "--angpix", f"{voxel:g}", "--add_noise", "--white_noise", f"{NOISE_SD:g}",
            ] + (["--ctf"] if ctf else [])  # fmt: skip
            ours_cmd = [sys.executable, "-c", CRYOPRIOR_SCRIPT, "ctf" if ctf else "none",
                        f"{NOISE_SD:g}"]  # fmt: skip
            load_before = os.getloadavg()[0]
            timed(relion_cmd, workdir)  # warm-up
            timed(ours_cmd, workdir)  # warm-up (fills torch.compile's cache)
            relion, ours = [], []
            for _ in range(repeats):
                relion.append(timed(relion_cmd, workdir))
                ours.append(timed(ours_cmd, workdir))
            n_eager = min(n, 2048 if box <= 128 else 512)
            row = {
                "box": box,
                "voxel_size_angstrom": voxel,
                "ctf": ctf,
                "particles": n,
                "relion_project_seconds": relion,
                "cryoprior_seconds": ours,
                "relion_project_particles_per_second": n / statistics.median(relion),
                "cryoprior_particles_per_second": n / statistics.median(ours),
                "speedup_median_of_pairs": statistics.median(
                    r / o for r, o in zip(relion, ours, strict=True)
                ),
                "cryoprior_steady_compiled_particles_per_second": steady_state_rate(
                    volume, voxel, table, ctf=ctf, backend="compiled", n=n
                ),
                "cryoprior_steady_compiled_1_thread_particles_per_second": steady_state_rate(
                    volume, voxel, table, ctf=ctf, backend="compiled", n=min(n, 8192), threads=1
                ),
                "cryoprior_steady_eager_particles_per_second": steady_state_rate(
                    volume, voxel, table, ctf=ctf, backend="eager", n=n_eager
                ),
                "torch_fourier_slice_particles_per_second": None
                if ctf
                else torch_fourier_slice_rate(volume, table, min(n, 1024)),
                "measured_at": time.strftime("%Y-%m-%d %H:%M"),
                "load_average_1min_before": load_before,
                "load_average_1min_after": os.getloadavg()[0],
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boxes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of other boxes from the existing results (e.g. to re-measure one "
        "box that another workload disturbed); each row records its command and time",
    )
    args = parser.parse_args()
    command = ("python benchmarks/simulate_speed.py " + " ".join(sys.argv[1:])).strip()
    results = [row for box in args.boxes for row in bench_box(box, args.repeats)]
    for row in results:
        row["command"] = command
    previous = RESULTS / "simulate_speed.json"
    if args.merge and previous.exists():
        old = json.loads(previous.read_text())
        kept = [r for r in old["results"] if r["box"] not in args.boxes]
        results = sorted(kept + results, key=lambda r: (r["box"], r["ctf"]))
    relion_version = subprocess.run(
        ["relion_project", "--version"], capture_output=True, text=True
    ).stdout.strip()
    meta = {
        "commands": list(dict.fromkeys(r.get("command", command) for r in results)),
        "machine": f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        "relion": relion_version.splitlines()[0] if relion_version else "relion_project",
        "date": time.strftime("%Y-%m-%d"),
        "timing": "whole processes, wall clock, alternating relion_project/cryoprior after one "
        f"warm-up each, {args.repeats} runs each; particles per second = particles / median "
        "time",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulate_speed.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    text = markdown_table(meta, results)
    (RESULTS / "simulate_speed.md").write_text(text)
    print(text)


def markdown_table(meta: dict, results: list[dict]) -> str:
    """The Markdown report of a results JSON (meta and rows)."""

    def rate(value) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    lines = [
        "# Simulation speed: cryoprior vs relion_project",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in meta["commands"]) + " (each row: its own "
        "command and time)  ",
        f"Machine: {meta['machine']}; {meta['relion']}; {meta['date']}.  ",
        f"Timing: {meta['timing']}. Noise SD {NOISE_SD:g} in both.",
        "",
        "| box | CTF | particles | relion_project (particles/s) | cryoprior whole process "
        "(particles/s) | speed-up (median of pairs) | cryoprior steady state, compiled "
        "(particles/s) | same, 1 thread (particles/s) | cryoprior steady state, eager (particles/s) "
        "| torch-fourier-slice (particles/s, projection only) | load average (1 min) before / "
        "after | measured at | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['box']} | {'yes' if r['ctf'] else 'no'} | {r['particles']} | "
            f"{rate(r['relion_project_particles_per_second'])} | "
            f"{rate(r['cryoprior_particles_per_second'])} | {r['speedup_median_of_pairs']:.2f} | "
            f"{rate(r['cryoprior_steady_compiled_particles_per_second'])} | "
            f"{rate(r['cryoprior_steady_compiled_1_thread_particles_per_second'])} | "
            f"{rate(r['cryoprior_steady_eager_particles_per_second'])} | "
            f"{rate(r['torch_fourier_slice_particles_per_second'])} | "
            f"{r['load_average_1min_before']:.1f} / {r['load_average_1min_after']:.1f} | "
            f"{r.get('measured_at', meta['date'])} | `{r.get('command', '')}` |"
        )
    lines += [
        "",
        "Whole-process rates include start-up (for cryoprior Python imports, about 1.5 s, and "
        "loading the cached torch.compile kernel, 2-4 s; for both reading the map and its "
        "padded 3D FFT) and writing the stacks and STAR files; cryoprior draws its own "
        "defocus values rather than reading the STAR file's. Steady state: images made in "
        "memory after a warm-up batch, nothing written. torch-fourier-slice: n/a when not "
        "installed (it is not a dependency). The load average counts this benchmark's own "
        "processes (up to about 2); rows measured while other jobs ran were re-measured.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
