"""``cryoprior train-prior``: train the learned prior on maps made from atomic models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["train_prior"]


def _runtime(threads: int):
    """Set up the process's device and rank.

    torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK) sets up DistributedDataParallel; a GPU
    when present; ``threads`` torch CPU threads.
    """
    import os

    import torch

    from cryoprior.prior.train import TrainingRuntime

    if threads > 0:
        torch.set_num_threads(threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = 0
    if world_size > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(torch.device(device))
    return TrainingRuntime(device=device, rank=rank, world_size=world_size)


def train_prior(
    output_dir: Annotated[
        Path, typer.Option(help="folder for prior.pt, losses.png, configs")
    ] = Path("prior_training"),
    steps: Annotated[int, typer.Option(help="optimiser steps (cosine schedule)")] = 1400,
    max_minutes: Annotated[float, typer.Option(help="stop after this wall time")] = 42.0,
    batch_size: Annotated[int, typer.Option(help="crops per step (per GPU with torchrun)")] = 4,
    crop_size: Annotated[int, typer.Option(help="edge of the training crops, voxels")] = 48,
    channels: Annotated[
        str, typer.Option(help="channels per U-Net level, comma-separated")
    ] = "12,24,48",
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate")] = 2e-3,
    seed: Annotated[int, typer.Option(help="seed of the network and the data")] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: default)")] = 0,
    validate_every: Annotated[
        int,
        typer.Option(help="validate and write OUTPUT_DIR/prior.pt (partial) every N steps"),
    ] = 100,
    init_weights: Annotated[
        str | None,
        typer.Option(help="fine-tune: start from these weights (shipped name or prior.pt path)"),
    ] = None,
    pure_noise_probability: Annotated[
        float, typer.Option(help="share of inputs that are noise only (target empty)")
    ] = 0.1,
    resolution_range: Annotated[
        str, typer.Option(help="range of the inputs' half-map FSC=0.5 resolution, A: LOW,HIGH")
    ] = "3.5,10",
    halfmap_filter_probability: Annotated[
        float,
        typer.Option(
            help="share of inputs filtered as RELION filters an intermediate half-map "
            "(attenuation and cut-off beyond the resolution; prior/TRAINING_DATA.md)"
        ),
    ] = 0.0,
    model: Annotated[
        list[Path] | None,
        typer.Option(
            help="training model file (repeatable; default: the structures of the installed "
            "packages listed in cryoprior.prior.data.TRAINING_SOURCES)"
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Train the prior on pairs simulated from atomic models (CPU, one GPU, or torchrun DDP).

    Writes prior.pt (weights + metadata), losses.json, losses.png and train_config.json.
    Use the result with ``cryoprior-extrec --regularizer prior --option weights=PATH/prior.pt``.

    Example: cryoprior train-prior --output-dir prior_training --max-minutes 40 --threads 2
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from cryoprior.cli._common import setup_logging
    from cryoprior.prior.data import DegradationConfig
    from cryoprior.prior.network import PriorNetConfig
    from cryoprior.prior.train import TrainConfig
    from cryoprior.prior.train import train_prior as run_training
    from cryoprior.report.figures import plot_training_losses

    setup_logging(verbose)
    console = Console()
    try:
        chans = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"--channels must be integers separated by commas, not {channels!r}"
        ) from None
    try:
        res_range = tuple(float(v) for v in resolution_range.split(","))
    except ValueError:
        res_range = ()
    if len(res_range) != 2 or not 0 < res_range[0] < res_range[1]:
        raise typer.BadParameter(
            f"--resolution-range must be LOW,HIGH in A (e.g. 3.5,10), not {resolution_range!r}"
        )
    if not 0.0 <= pure_noise_probability <= 1.0:
        raise typer.BadParameter("--pure-noise-probability must be in [0, 1]")
    if validate_every < 1:
        raise typer.BadParameter("--validate-every must be >= 1")
    if not 0.0 <= halfmap_filter_probability <= 1.0:
        raise typer.BadParameter("--halfmap-filter-probability must be in [0, 1]")
    config = TrainConfig(
        network=PriorNetConfig(channels=chans),
        data=DegradationConfig(
            pure_noise_probability=pure_noise_probability,
            resolution_range_angstrom=res_range,
            halfmap_filter_probability=halfmap_filter_probability,
        ),
        init_weights=init_weights,
        steps=steps,
        max_minutes=max_minutes,
        batch_size=batch_size,
        crop_size=crop_size,
        learning_rate=learning_rate,
        seed=seed,
        validate_every=validate_every,
    )
    if crop_size % config.network.divisor or crop_size > config.data.box_size:
        raise typer.BadParameter(
            f"--crop-size must be a multiple of {config.network.divisor} and <= {config.data.box_size}"
        )
    runtime = _runtime(threads)
    with Progress(
        TextColumn("[bold]train-prior"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=steps, loss=float("nan"))
        try:
            result = run_training(
                config,
                output_dir,
                model_paths=list(model) if model else None,
                progress=lambda s, n, loss: bar.update(task, completed=s, loss=loss),
                runtime=runtime,
            )
        except (ValueError, FileNotFoundError) as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
        finally:
            if runtime.world_size > 1:
                import torch.distributed

                torch.distributed.destroy_process_group()
    if runtime.rank == 0:
        plot_training_losses(result.losses, result.validation, Path(output_dir) / "losses.png")
    val = f", validation loss {result.validation[-1][1]:.4g}" if result.validation else ""
    console.print(
        f"{result.steps} steps in {result.seconds / 60:.1f} min{val}; weights: {result.checkpoint}"
    )
