"""Simulation of test objects and single-particle datasets from atomic models.

Modules: ``phantom`` (atom-like test maps), ``models`` (the shipped paper models), ``density``
(an atomic model's summary; the model is read by ``cryoprior.io.atomic_model``, its map made
by ``cryoprior.io.model_map``), ``poses`` (orientation sets and shifts), ``project`` (Fourier-slice projection as ``relion_project``), ``ctf`` (RELION's
CTF), ``noise``, ``images`` (image formation), ``config`` (a dataset's parameters),
``particles`` (its particles on arrays), ``dataset`` (the shell: the dataset folder RELION
reads, with the ground truth). Importing the package imports nothing (not even numpy) until
one of these names is used.
"""

_LAZY = {
    "add_white_noise": "noise",
    "gaussian_noise_stack": "noise",
    "noise_sd_for_snr": "noise",
    "atom_like_phantom": "phantom",
    "gaussian_lowpass": "phantom",
    "SHIPPED_MODELS": "models",
    "shipped_model_path": "models",
    "uniform_poses": "poses",
    "grid_poses": "poses",
    "over_represent_cone": "poses",
    "with_random_shifts": "poses",
    "fourier_volume": "project",
    "project_slices": "project",
    "CTFOptics": "ctf",
    "ctf_2d": "ctf",
    "ImageFormation": "images",
    "render_particles": "images",
    "SimulationConfig": "config",
    "SimulationResult": "dataset",
    "load_config": "dataset",
    "simulate_dataset": "dataset",
}

__all__ = [*_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"cryoprior.simulate.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'cryoprior.simulate' has no attribute {name!r}")
