"""Training in chunks: partial checkpoints carry the chain; every seed validates on one set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cryoprior.prior.network import PriorNetConfig
from cryoprior.prior.train import TrainConfig, train_prior

DATA = Path(__file__).parent / "data" / "prior"
TINY = PriorNetConfig(channels=(4, 8), groups=2)


def _config(seed: int, steps: int, init: Path | None = None) -> TrainConfig:
    return TrainConfig(
        network=TINY,
        steps=steps,
        batch_size=1,
        crop_size=16,
        seed=seed,
        validation_models=("5pti.cif.gz",),  # the only model: trained on and validated on
        validation_pairs=2,
        validate_every=1,
        init_weights=None if init is None else str(init),
    )


def _keeping_partial(out: Path, kept: Path):
    def progress(step: int, total: int, loss: float) -> None:
        if step == 2:  # out/prior.pt now holds the partial checkpoint of step 1
            shutil.copy(out / "prior.pt", kept)

    return progress


def test_chunks_resume_from_partial_checkpoints(tmp_path):
    models = [DATA / "5pti.cif.gz"]
    first, kept = tmp_path / "chunk1", tmp_path / "partial1.pt"
    one = train_prior(
        _config(1, 3), first, model_paths=models, progress=_keeping_partial(first, kept)
    )
    partial = torch.load(kept, weights_only=False)
    assert partial["partial"] is True and partial["steps"] == 1
    assert partial["training_seconds"] > 0 and partial["parent"] is None

    # Another seed (other training pairs) from the first chunk's weights: with no step it
    # validates the same network on the same validation pairs, so it reports the same loss.
    check = train_prior(_config(2, 0, first / "prior.pt"), tmp_path / "check", model_paths=models)
    assert check.steps == 0
    assert check.validation[-1][1] == pytest.approx(one.validation[-1][1], rel=1e-5)

    # A chunk's partial checkpoint keeps the chain, and a chunk resumed from it records it.
    second, kept2 = tmp_path / "chunk2", tmp_path / "partial2.pt"
    init = first / "prior.pt"
    train_prior(
        _config(3, 3, init), second, model_paths=models, progress=_keeping_partial(second, kept2)
    )
    partial2 = torch.load(kept2, weights_only=False)
    assert partial2["partial"] is True and partial2["parent"]["weights"] == "prior.pt"
    assert partial2["parent"]["steps"] == 3  # chunk 1's final checkpoint
    resumed = train_prior(_config(4, 1, kept2), tmp_path / "chunk3", model_paths=models)
    meta = torch.load(resumed.checkpoint, weights_only=False)
    assert meta["parent"]["weights"] == "partial2.pt" and meta["parent"]["steps"] == 1
    assert meta["parent"]["parent"]["steps"] == 3
