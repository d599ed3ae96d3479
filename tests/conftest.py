"""Shared fixtures: tiny real RELION refinements, made once per test session.

The reference runs use RELION 3.1.3's own ``relion_external_reconstruct`` as the hook, so
every ``*_external_reconstruct.mrc`` they leave is the stock program's output for the job
files beside it: the parity tests compare cryoprior's reconstruction with those.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from cryoprior.refine.run import extrec_executable

TESTS_DIR = Path(__file__).parent

RELION_PROGRAMS = ("mpirun", "relion_refine_mpi", "relion_project", "relion_external_reconstruct")
HAVE_RELION = all(shutil.which(p) for p in RELION_PROGRAMS)
requires_relion = pytest.mark.skipif(not HAVE_RELION, reason="RELION 3.1 / OpenMPI not on PATH")


def hook_env() -> dict[str, str]:
    """Environment in which hook subprocesses can import the test regularizers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """400 noisy projections of a 32^3 atom-like phantom at 4 A/px, from relion_project."""
    if not HAVE_RELION:
        pytest.skip("RELION 3.1 / OpenMPI not on PATH")
    from demo_dataset import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("dataset"), n_particles=400, seed=0)


def _settings(dataset, output_root: str, **changes):
    from cryoprior.refine.relion import AutoRefineSettings

    base = AutoRefineSettings(
        particles_star=dataset.particles_star,
        reference_map=dataset.reference_map,
        output_root=output_root,
        particle_diameter_angstrom=100.0,
        random_seed=0,
    )
    return replace(base, **changes)


def run_refinement(dataset, tmp_path_factory, name: str, hook: str, **changes):
    from cryoprior.refine.relion import run_auto_refine

    workdir = dataset.workdir  # RELION resolves image names relative to its working folder
    settings = _settings(dataset, f"Refine3D/{name}/run", **changes)
    result = run_auto_refine(
        settings, workdir=workdir, hook_command=hook, timeout_seconds=900, env=hook_env()
    )
    return workdir, result


@pytest.fixture(scope="session")
def stock_run(demo_dataset, tmp_path_factory):
    """Full auto-refine, padding 2, with the stock relion_external_reconstruct as the hook."""
    workdir, result = run_refinement(
        demo_dataset, tmp_path_factory, "stock", "relion_external_reconstruct"
    )
    assert result.returncode == 0, (workdir / "Refine3D/stock/run.err").read_text()[-2000:]
    return workdir, result


@pytest.fixture(scope="session")
def cryoprior_run(demo_dataset, tmp_path_factory):
    """The same auto-refine with ``cryoprior-extrec --regularizer none`` as the hook."""
    hook = f"{extrec_executable()} --regularizer none --when local-searches"
    workdir, result = run_refinement(demo_dataset, tmp_path_factory, "cryoprior", hook)
    assert result.returncode == 0, (workdir / "Refine3D/cryoprior/run.err").read_text()[-2000:]
    return workdir, result


@pytest.fixture(scope="session", params=[1.0, 1.5])
def stock_run_padding(request, demo_dataset, tmp_path_factory):
    """Full auto-refines (they end with the final joined call) at padding 1 and 1.5."""
    pad = request.param
    name = f"stock_pad{str(pad).replace('.', '_')}"
    workdir, result = run_refinement(
        demo_dataset, tmp_path_factory, name, "relion_external_reconstruct", padding_factor=pad
    )
    assert result.returncode == 0, (workdir / f"Refine3D/{name}/run.err").read_text()[-2000:]
    return pad, workdir, result


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Untrained weights of a tiny prior network (channels 4 and 8), saved as a checkpoint."""
    from cryoprior.prior.network import PriorNetConfig, build_network
    from cryoprior.prior.train import TrainConfig, save_checkpoint

    tiny = PriorNetConfig(channels=(4, 8), groups=2)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    return save_checkpoint(
        path, build_network(tiny, seed=0), TrainConfig(network=tiny), {"steps": 0}
    )
