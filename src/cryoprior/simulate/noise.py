"""Additive noise for particle images."""

from __future__ import annotations

import numpy as np

__all__ = ["add_white_noise"]


def add_white_noise(
    images: np.ndarray, *, snr: float | None = None, sd: float | None = None, seed: int
) -> np.ndarray:
    """Add white Gaussian noise to a stack.

    Parameters
    ----------
    images: (..., h, w) real images; not modified.
    snr: target signal-to-noise ratio (variance of the mean image SD over noise variance).
    sd: noise SD in image units (alternative to ``snr``).
    seed: random seed.

    Returns (..., h, w) float32.
    """
    if (snr is None) == (sd is None):
        raise ValueError("give exactly one of snr or sd")
    images = np.asarray(images, dtype=np.float64)
    if sd is None:
        if snr <= 0:
            raise ValueError(f"snr must be positive, not {snr}")
        signal_sd = images.std(axis=(-2, -1)).mean()
        sd = signal_sd / np.sqrt(snr)
    rng = np.random.default_rng(seed)
    return (images + rng.normal(0.0, sd, size=images.shape)).astype(np.float32)
