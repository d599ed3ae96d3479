"""Applying the prior to a map: resampling, normalisation, overlapping tiles, blending.

1. Fourier-resample the (N, N, N) map to the network's voxel size (box m = round(N * voxel /
   network voxel); the achieved voxel size differs from the asked one by < 1/m). The network
   voxel is the model's (1.5 A for the shipped weights) or, resolution-adaptive, coarser:
   max(model voxel, d / ``voxels_per_resolution``) for a map at resolution d (never a box
   under ``MIN_NETWORK_BOX``).
2. Normalise as in training: mean 0, SD 1 (signal plus noise) in the particle region - the
   sphere of the particle diameter when known, else of radius 0.45 m.
3. Run the map whole when it fits in one tile of at most ``tile_size`` (64 by default); otherwise
   cut the fewest overlapping cubic tiles per axis that fit (evenly spread, ``overlap`` voxels
   shared), skip tiles that are exactly empty, run them through the network in batches (CPU or
   GPU, ``torch.inference_mode``), blend with raised-cosine weights that sum to one. Group
   normalisation statistics per tile, or (``normalisation``) fixed for the whole map.
4. Back to the input's greyscale: multiply by the SD, shift so the mean in the particle region
   equals the input's (the network predicts the clean map in input units, so no fitted scale
   can blow up noise), and Fourier-resample to N. Frequencies beyond the model's Nyquist are
   zero, or optionally taken unchanged from the input (``keep_beyond_model_nyquist``, as the
   regularizer does: the guard then decides what of them may stay).

Deterministic: the same input, weights and settings give the same output bit for bit on one
machine and thread count.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.fft
import torch

from cryoprior.fourier.masks import soft_sphere
from cryoprior.fourier.resample import fourier_crop, fourier_pad, resampled_size
from cryoprior.prior.network import (
    NormStatistics,
    PriorNet,
    PriorNetConfig,
    normalisation_statistics,
)

__all__ = [
    "MIN_NETWORK_BOX",
    "NORMALISATIONS",
    "EnhanceResult",
    "InferenceSettings",
    "LoadedPrior",
    "available_weights",
    "blend_window",
    "enhance_map",
    "load_prior",
    "network_voxel_size",
    "plan_tiles",
    "tile_starts",
    "weights_path",
]

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "default"
_ALIASES = {"default": "cryoprior-prior-v3"}

#: Where the network's group normalisation takes its statistics (InferenceSettings.normalisation).
NORMALISATIONS = ("tile", "map", "particle")
#: Resolution-adaptive inference never makes the network's box smaller than this.
MIN_NETWORK_BOX = 32


@dataclass(frozen=True)
class InferenceSettings:
    """How the network is applied.

    tile_size: largest edge of a cubic tile at the model's voxel size (a multiple of the
        network's divisor); maps up to it are run whole, larger ones in the fewest tiles per
        axis that fit (see :func:`plan_tiles`). The default, 64, is near the training crops
        (48): the network's group normalisation then sees statistics like those it was trained
        on. Larger tiles are faster (whole maps compute no overlap twice; memory grows with the
        tile's volume, about 2 GB at 160) and scored the same on the held-out maps of
        ``benchmarks/prior_eval.py``, but inside refinement whole 141^3 maps gave worse poses
        in one run (``benchmarks/prior_in_refinement.py``), before the normalisation below
        existed. The regularizer uses 256 with ``normalisation="particle"``
        (docs/prior_inference.md).
    overlap: voxels shared by neighbouring tiles (blended).
    batch_size: tiles per forward pass.
    device: "cpu", "cuda", "cuda:1", ...; None: a GPU when one is present, else the CPU.
    keep_beyond_model_nyquist: put the input's frequencies beyond the model's Nyquist back
        (off by default: the enhanced map is band-limited to the model's Nyquist; the
        regularizer turns it on so that the guard, not the network, decides about them).
    voxels_per_resolution: resolution-adaptive voxel size. When :func:`enhance_map` is given
        the map's current resolution d (Angstrom), the network runs at the voxel size
        max(model voxel, d / voxels_per_resolution), never finer than the model's own voxel
        (d / 2 would be Nyquist at d exactly; see docs/prior_inference.md for the value the
        benchmarks support). None: always the model's voxel size.
    normalisation: where the network's group normalisation takes its statistics:
        "tile": from whatever it is given (each tile, or the whole map when it fits one
        tile) - the output then depends on how the map is cut; "map": from the whole map
        (all voxels of the box); "particle": from the whole map's particle region (the
        sphere used to normalise the input). With "map" and "particle", a map too large for
        one tile is first run whole once to record the statistics, and the tiles reuse them
        (so tiled and whole-map outputs agree up to the tiles' borders).
    return_mask: resample the predicted mask to the input's box (off: EnhanceResult.mask is
        None, one full-size Fourier transform less; the regularizer does not use it).
    """

    tile_size: int = 64
    overlap: int = 16
    batch_size: int = 4
    device: str | None = None
    keep_beyond_model_nyquist: bool = False
    voxels_per_resolution: float | None = None
    normalisation: str = "tile"
    return_mask: bool = True

    def __post_init__(self):
        """Refuse an unknown normalisation or a non-positive voxels_per_resolution."""
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"unknown normalisation {self.normalisation!r}; "
                f"choose one of {', '.join(NORMALISATIONS)}"
            )
        if self.voxels_per_resolution is not None and not self.voxels_per_resolution >= 2:
            raise ValueError(
                "voxels_per_resolution must be >= 2 (2 samples the resolution at Nyquist), "
                f"not {self.voxels_per_resolution}"
            )


@dataclass(frozen=True)
class LoadedPrior:
    """A network ready for inference and the metadata of its checkpoint."""

    network: PriorNet
    metadata: dict = field(repr=False)
    source: str = ""

    @property
    def voxel_size_angstrom(self) -> float:
        """Voxel size (Angstrom) the network was trained at."""
        return self.network.config.voxel_size_angstrom


@dataclass(frozen=True)
class EnhanceResult:
    """The prior's output for one map.

    map: (N, N, N) float64 enhanced map on the input's greyscale; mask: (N, N, N) float64 in
    [0, 1] predicted molecular mask, or None; info: sizes, tiles, timings.
    """

    map: np.ndarray
    mask: np.ndarray | None
    info: dict


def _weights_dir():
    return resources.files("cryoprior.prior").joinpath("weights")


def available_weights() -> list[str]:
    """Names of the weights shipped in the package (plus the alias 'default')."""
    names = sorted(
        p.name[: -len(".pt")] for p in _weights_dir().iterdir() if p.name.endswith(".pt")
    )
    return (["default"] if _ALIASES["default"] in names else []) + names


def weights_path(name_or_path: str | Path = DEFAULT_WEIGHTS) -> Path:
    """File of shipped weights by name ('default', 'cryoprior-prior-v1'), or a path as is."""
    text = str(name_or_path)
    if text.endswith(".pt") or "/" in text or Path(text).exists():
        path = Path(text)
    else:
        path = Path(str(_weights_dir().joinpath(_ALIASES.get(text, text) + ".pt")))
    if not path.exists():
        raise FileNotFoundError(
            f"no prior weights {name_or_path!r} ({path}); shipped: {', '.join(available_weights())}"
        )
    return path


@lru_cache(maxsize=4)
def _load_cached(path: str) -> LoadedPrior:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != "cryoprior-prior-1":
        raise ValueError(f"{path}: not a cryoprior prior checkpoint")
    config = PriorNetConfig.from_dict(payload["network_config"])
    net = PriorNet(config)
    net.load_state_dict(payload["state_dict"])
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return LoadedPrior(net, meta, path)


def load_prior(name_or_path: str | Path = DEFAULT_WEIGHTS) -> LoadedPrior:
    """Load shipped weights by name (offline) or a checkpoint file from ``train-prior``."""
    return _load_cached(str(weights_path(name_or_path).resolve()))


def tile_starts(n: int, *, tile_size: int, overlap: int) -> list[int]:
    """Return the start indices of tiles of ``tile_size`` covering 0..n-1, evenly spread.

    Neighbours share at least ``overlap`` voxels. n <= tile_size gives [0].
    """
    if n <= tile_size:
        return [0]
    if not 0 <= overlap < tile_size:
        raise ValueError("overlap must be in [0, tile_size)")
    count = int(np.ceil((n - overlap) / (tile_size - overlap)))
    count = max(count, 2)
    return [round(s) for s in np.linspace(0, n - tile_size, count)]


def plan_tiles(n: int, *, tile_size: int, overlap: int, divisor: int = 1) -> tuple[int, list[int]]:
    """Tiles for an axis of n voxels: (edge, start indices).

    The fewest tiles per axis whose edge - a multiple of ``divisor``, at most ``tile_size`` -
    covers n with neighbours sharing at least ``overlap`` voxels; n <= tile_size gives one tile
    of n rounded up to the divisor (the caller pads the map to it).
    """
    if tile_size % divisor or tile_size <= 0:
        raise ValueError(f"tile_size must be a positive multiple of {divisor}")
    if n <= tile_size:
        return int(np.ceil(n / divisor) * divisor), [0]
    if not 0 <= overlap < tile_size:
        raise ValueError("overlap must be in [0, tile_size)")
    count = 2
    while True:
        edge = int(np.ceil((n + (count - 1) * overlap) / count / divisor) * divisor)
        if edge <= tile_size:
            return edge, tile_starts(n, tile_size=edge, overlap=overlap)
        count += 1


def blend_window(tile_size: int, overlap: int) -> np.ndarray:
    """Return (tile_size,)^3 separable raised-cosine weights, > 0 everywhere.

    The weights ramp over ``overlap`` voxels at each face; blended tiles are divided by the sum of
    the weights.
    """
    w = np.ones(tile_size)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap] = ramp
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w[:, None, None] * w[None, :, None] * w[None, None, :]


def _device(settings: InferenceSettings) -> torch.device:
    if settings.device:
        return torch.device(settings.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _forward(net, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    pred, mask_logits = net(batch)
    masks = None if mask_logits is None else torch.sigmoid(mask_logits[:, 0]).double().cpu().numpy()
    return pred[:, 0].double().cpu().numpy(), masks


def _run_tiles(
    x: np.ndarray,
    prior: LoadedPrior,
    settings: InferenceSettings,
    empty: np.ndarray,
    region: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Run the network over an (m, m, m) normalised map; return the map, mask and tiles run.

    Tiles where ``empty`` (m, m, m) bool is True everywhere are not run (output 0).
    ``region`` (m, m, m) bool: the particle region ("particle" normalisation).
    """
    net = prior.network
    div = net.config.divisor
    m = x.shape[0]
    overlap = min(settings.overlap, settings.tile_size // 2)
    tile, starts = plan_tiles(m, tile_size=settings.tile_size, overlap=overlap, divisor=div)
    size = max(-(-m // div) * div, tile)  # the whole map must fit the network too
    padded = np.zeros((size,) * 3, dtype=np.float32)
    padded[:m, :m, :m] = x
    occupied = np.zeros((size,) * 3, dtype=bool)
    occupied[:m, :m, :m] = ~empty
    corners = [(a, b, c) for a in starts for b in starts for c in starts]
    window = blend_window(tile, overlap if len(starts) > 1 else 0).astype(np.float64)
    acc = np.zeros((size,) * 3)
    acc_mask = np.zeros((size,) * 3) if net.config.predict_mask else None
    wsum = np.zeros((size,) * 3)
    device = _device(settings)
    net = net.to(device)
    todo = []
    for corner in corners:
        sl = tuple(slice(c, c + tile) for c in corner)
        wsum[sl] += window
        if occupied[sl].any():
            todo.append(sl)
    statistics = None
    if settings.normalisation != "tile":
        weights = None
        if settings.normalisation == "particle":
            full = np.zeros((size,) * 3, dtype=np.float32)
            full[:m, :m, :m] = region
            weights = torch.from_numpy(full)[None, None].to(device)
        statistics = NormStatistics(region=weights)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if statistics is not None:
            stack.enter_context(normalisation_statistics(net, statistics))
            if len(todo) > 1:  # record the whole map's statistics first, tiles reuse them
                _forward(net, torch.from_numpy(padded[None, None]).to(device))
                statistics.recording = False
        for i in range(0, len(todo), max(1, settings.batch_size)):
            group = todo[i : i + settings.batch_size]
            if statistics is not None and statistics.recording and len(group) > 1:
                raise AssertionError("statistics are recorded on the whole map only")
            batch = torch.from_numpy(np.stack([padded[sl] for sl in group])[:, None]).to(device)
            if statistics is not None:
                statistics.position = 0
            pred, masks = _forward(net, batch)
            for j, sl in enumerate(group):
                acc[sl] += pred[j] * window
                if acc_mask is not None and masks is not None:
                    acc_mask[sl] += masks[j] * window
    inner = (slice(0, m),) * 3  # the tiles cover the map; the padding beyond is not run
    out = acc[inner] / wsum[inner]
    mask = None if acc_mask is None else acc_mask[inner] / wsum[inner]
    return out, mask, len(todo)


def network_voxel_size(
    model_voxel_size_angstrom: float,
    *,
    resolution_angstrom: float | None,
    voxels_per_resolution: float | None,
) -> float:
    """Return the voxel size (Angstrom) the network runs at: max(model voxel, d / k).

    d: the map's current resolution, k: voxels per resolution length
    (InferenceSettings.voxels_per_resolution); either None (or d not finite and positive)
    gives the model's voxel size. Never finer than the model's voxel.

    >>> network_voxel_size(1.5, resolution_angstrom=9.0, voxels_per_resolution=3)
    3.0
    >>> network_voxel_size(1.5, resolution_angstrom=3.0, voxels_per_resolution=3)
    1.5
    """
    if (
        voxels_per_resolution is None
        or resolution_angstrom is None
        or not np.isfinite(resolution_angstrom)
        or resolution_angstrom <= 0
    ):
        return float(model_voxel_size_angstrom)
    return float(max(model_voxel_size_angstrom, resolution_angstrom / voxels_per_resolution))


def _resize(volume: np.ndarray, size: int) -> np.ndarray:
    n = volume.shape[0]
    if size == n:
        return np.array(volume, dtype=np.float64, copy=True)
    # scipy's FFTs use as many threads as torch was given (1 per half-map in the hook)
    with scipy.fft.set_workers(max(1, torch.get_num_threads())):
        if size < n:
            return fourier_crop(volume, new_size=size)
        return fourier_pad(volume, new_size=size)


def enhance_map(
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float,
    prior: LoadedPrior | None = None,
    particle_diameter_angstrom: float | None = None,
    resolution_angstrom: float | None = None,
    settings: InferenceSettings = InferenceSettings(),
) -> EnhanceResult:
    """Apply the prior to one map (see the module docstring).

    Parameters
    ----------
    volume: (N, N, N) real-space map, axis order (z, y, x), box centre N//2.
    voxel_size_angstrom: its voxel size.
    prior: from :func:`load_prior` (default: the shipped 'default' weights).
    particle_diameter_angstrom: sets the normalisation region (default 0.9 of the box).
    resolution_angstrom: the map's current resolution (e.g. where its half-map FSC falls to
        1/7); with ``settings.voxels_per_resolution`` it sets the network's voxel size
        (:func:`network_voxel_size`). None: the model's voxel size.
    settings: InferenceSettings.

    Returns an EnhanceResult; the input is not modified.
    """
    t0 = time.monotonic()
    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise ValueError(f"volume must be a cube, not {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("volume has non-finite values")
    if voxel_size_angstrom is None or voxel_size_angstrom <= 0:
        raise ValueError("voxel_size_angstrom must be positive")
    prior = prior if prior is not None else load_prior()
    n = vol.shape[0]
    target = network_voxel_size(
        prior.voxel_size_angstrom,
        resolution_angstrom=resolution_angstrom,
        voxels_per_resolution=settings.voxels_per_resolution,
    )
    # a coarse resolution never shrinks the map below MIN_NETWORK_BOX voxels
    target = min(target, max(prior.voxel_size_angstrom, n * voxel_size_angstrom / MIN_NETWORK_BOX))
    m, achieved = resampled_size(
        n, voxel_size_angstrom=voxel_size_angstrom, new_voxel_size_angstrom=target
    )
    m = max(m, 2)
    small = _resize(vol, m)
    if particle_diameter_angstrom:
        radius = min(0.5 * particle_diameter_angstrom / achieved, 0.5 * m - 1)
    else:
        radius = 0.45 * m
    region = soft_sphere(m, radius_voxels=max(radius, 2.0), edge_width_voxels=0.0) > 0.5
    mean = float(small[region].mean())
    sd = float(small[region].std())
    if not sd > 0:
        raise ValueError("the map is constant in the particle region")
    x = ((small - mean) / sd).astype(np.float32)
    empty = np.abs(small) <= 1e-7 * np.abs(small).max()
    pred, mask, tiles = _run_tiles(x, prior, settings, empty, region)
    pred = pred * sd
    pred += mean - float(pred[region].mean())
    if settings.keep_beyond_model_nyquist and m < n:
        # resize(pred) + vol - resize(small) in one transform (the resampling is linear)
        out = vol + _resize(pred - small, n)
    else:
        out = _resize(pred, n)
    mask_n = None
    if mask is not None and settings.return_mask:
        mask_n = np.clip(_resize(mask, n), 0.0, 1.0)
    info = {
        "model_box": m,
        "model_voxel_size_angstrom": achieved,
        "tiles": tiles,
        "resolution_angstrom": resolution_angstrom,
        "normalisation": settings.normalisation,
        "normalisation_mean": mean,
        "normalisation_sd": sd,
        "seconds": time.monotonic() - t0,
        "weights": prior.source,
    }
    logger.debug("prior: %s", info)
    return EnhanceResult(out, mask_n, info)
