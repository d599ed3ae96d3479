"""Additive noise for particle images.

Noise in a dataset is drawn per particle from its own stream,
``numpy.random.default_rng([seed, NOISE_STREAM, particle_index])``, so a particle's noise does
not depend on how the dataset is split into batches or stacks, nor on the device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["NOISE_STREAM", "add_white_noise", "gaussian_noise_stack", "noise_sd_for_snr"]

NOISE_STREAM = 1


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
        assert snr is not None
        sd = noise_sd_for_snr(images, snr=snr)
    rng = np.random.default_rng(seed)
    return (images + rng.normal(0.0, sd, size=images.shape)).astype(np.float32)


def noise_sd_for_snr(images: np.ndarray, *, snr: float) -> float:
    """Noise SD giving a signal-to-noise ratio ``snr`` for these noise-free images.

    SNR is the squared mean of the images' standard deviations (each over its whole box) over
    the noise variance: ``sd = mean_i(std(image_i)) / sqrt(snr)``.

    Parameters
    ----------
    images: (..., h, w) real noise-free images; not modified.
    snr: target SNR (> 0).

    Example
    -------
    >>> img = np.zeros((2, 4, 4)); img[:, 0, 0] = 4.0
    >>> round(noise_sd_for_snr(img, snr=0.25), 6)
    1.936492
    """
    if not snr > 0:
        raise ValueError(f"snr must be positive, not {snr}")
    images = np.asarray(images, dtype=np.float64)
    signal_sd = float(images.std(axis=(-2, -1)).mean())
    return signal_sd / float(np.sqrt(snr))


def gaussian_noise_stack(
    particle_indices, box_size: int, *, sd: float, seed: int, threads: int | None = 1
) -> np.ndarray:
    """White Gaussian noise images, one reproducible stream per particle.

    Parameters
    ----------
    particle_indices: (b,) integers >= 0, the particles' positions in the dataset.
    box_size: N.
    sd: standard deviation (>= 0; 0 gives zeros).
    seed: the dataset's seed.
    threads: threads filling the images (the result does not depend on it).

    Returns
    -------
    float32 array, real space, shape (b, N, N): image i is
    ``sd * default_rng([seed, NOISE_STREAM, particle_indices[i]]).standard_normal((N, N),
    dtype=float32)``.
    """
    if sd < 0:
        raise ValueError(f"sd must be >= 0, not {sd}")
    indices = np.asarray(particle_indices, dtype=np.int64).reshape(-1)
    if (indices < 0).any():
        raise ValueError("particle indices must be >= 0")
    out = np.zeros((indices.size, box_size, box_size), dtype=np.float32)
    if sd == 0 or indices.size == 0:
        return out

    def fill(rows: range) -> None:
        for row in rows:
            rng = np.random.default_rng([int(seed), NOISE_STREAM, int(indices[row])])
            rng.standard_normal(out=out[row], dtype=np.float32)
            out[row] *= np.float32(sd)

    # numpy's generators release the GIL while filling: split the rows over threads
    workers = max(1, min(threads or 1, indices.size))
    if workers == 1:
        fill(range(indices.size))
    else:
        chunks = [range(k, indices.size, workers) for k in range(workers)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, chunks))
    return out
