"""Simulation of test objects and particle datasets."""

from cryoprior.simulate.noise import add_white_noise
from cryoprior.simulate.phantom import atom_like_phantom, gaussian_lowpass

__all__ = ["atom_like_phantom", "gaussian_lowpass", "add_white_noise"]
