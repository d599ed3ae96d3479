"""``--regularizer prior``: the regularizer, weight loading by name, the CLI, a real refinement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cryoprior.prior.infer import available_weights, load_prior
from cryoprior.regularizers.base import RegularizationContext
from cryoprior.regularizers.prior import PriorRegularizer
from cryoprior.regularizers.registry import available_regularizers, get_regularizer

DATA = Path(__file__).parent / "data" / "prior"


def test_registered_and_guarded(tiny_weights):
    assert "prior" in available_regularizers()
    reg = get_regularizer("prior", weights=str(tiny_weights), tile_size=32, overlap=8)
    assert isinstance(reg, PriorRegularizer)
    assert reg.name == "prior" and not reg.needs_both_halves and reg.guard_by_default


def test_builtin_table_matches_the_regularizers(tiny_weights):
    """The hook decides before loading a regularizer whether the halves must meet (joint, or
    guarded with cross-half support); its table of the built-ins must say what they are."""
    from cryoprior.regularizers.registry import builtin_guard_by_default, builtin_needs_both_halves

    for name in available_regularizers():
        options = {"weights": str(tiny_weights)} if name == "prior" else {}
        reg = get_regularizer(name, **options)
        assert builtin_needs_both_halves(name) is bool(reg.needs_both_halves), name
        assert builtin_guard_by_default(name) is bool(getattr(reg, "guard_by_default", False))
    assert builtin_guard_by_default("pkg.module:factory") is None


def test_regularize_each_half_independently(tiny_weights):
    reg = PriorRegularizer(str(tiny_weights), tile_size=32, overlap=8)
    rng = np.random.default_rng(0)
    h1, h2 = rng.normal(size=(2, 32, 32, 32))
    ctx = RegularizationContext(voxel_size_angstrom=2.0, particle_diameter_angstrom=50.0, half=1)
    out1 = reg.regularize(h1, context=ctx)
    assert out1.shape == h1.shape and np.all(np.isfinite(out1))
    p1, p2 = reg.regularize_pair(h1, h2, context=ctx)
    np.testing.assert_array_equal(p1, out1)
    np.testing.assert_array_equal(p2, reg.regularize(h2, context=ctx))
    assert reg.last_info["model_box"] == 43
    with pytest.raises(ValueError, match="voxel size"):
        reg.regularize(h1, context=RegularizationContext())


def test_shipped_weights_load_offline_by_name():
    assert "default" in available_weights()
    prior = load_prior("default")
    meta = prior.metadata
    assert meta["format"] == "cryoprior-prior-1"
    for key in (
        "network_config",
        "train_config",
        "data_seed",
        "package_version",
        "training_seconds",
    ):
        assert key in meta, key
    assert not set(meta["training_models"]) & {"5a1a", "6bdf"}
    assert prior.voxel_size_angstrom == 1.5
    files = [p for p in (Path(__file__).parents[1] / "src/cryoprior/prior/weights").glob("*.pt")]
    assert files and all(p.stat().st_size < 8e6 for p in files)
    for name in available_weights():  # every shipped file loads by its name
        assert load_prior(name).network.config.voxel_size_angstrom == 1.5
    # the default is fine-tuned from earlier shipped weights (v3: eight chunks from v2, which
    # was fine-tuned from v1): the chain is recorded, every link with its steps and time
    chain = []
    parent = meta.get("parent")
    while parent is not None:
        assert parent["steps"] > 0 and parent["training_seconds"] > 0, parent["weights"]
        chain.append(parent["weights"])
        parent = parent.get("parent")
    assert not chain or {"cryoprior-prior-v1.pt", "cryoprior-prior-v2.pt"} & set(chain), chain


def test_train_prior_cli(tmp_path):
    from cryoprior.cli.train_prior import train_prior

    app = typer.Typer()
    app.command()(train_prior)
    out = tmp_path / "run"
    args = ["--output-dir", str(out), "--steps", "2", "--batch-size", "1", "--crop-size", "16"]
    args += ["--channels", "4,8", "--model", str(DATA / "5pti.cif.gz"), "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("prior.pt", "losses.json", "losses.png", "train_config.json"):
        assert (out / name).exists(), name
    assert len(json.loads((out / "losses.json").read_text())["train"]) == 2
    loaded = load_prior(out / "prior.pt")
    assert loaded.metadata["steps"] == 2 and loaded.metadata["training_seconds"] > 0
    bad = CliRunner().invoke(app, [*args[:-4], "--crop-size", "15"])
    assert bad.exit_code != 0

    # Fine-tuning starts from the given weights (not a fresh network) and records its parent.
    tuned = tmp_path / "tuned"
    args2 = [a if a != str(out) else str(tuned) for a in args] + ["--steps", "1"]
    args2 += ["--init-weights", str(out / "prior.pt"), "--pure-noise-probability", "1"]
    result = CliRunner().invoke(app, [*args2, "--resolution-range", "4,14"])
    assert result.exit_code == 0, result.output
    child = load_prior(tuned / "prior.pt")
    assert child.metadata["parent"]["weights"] == "prior.pt"
    assert child.metadata["parent"]["steps"] == 2
    assert tuple(child.metadata["train_config"]["data"]["resolution_range_angstrom"]) == (4.0, 14.0)
    before = loaded.network.state_dict()
    after = child.network.state_dict()
    # one step of AdamW at lr warm-up moves each weight by ~1e-5; a fresh init would differ O(1)
    assert max(float((before[k] - after[k]).abs().max()) for k in before) < 1e-2
    missing = CliRunner().invoke(app, [*args2[:-4], "--init-weights", str(tmp_path / "no.pt")])
    assert missing.exit_code != 0 and "no.pt" in missing.output
    for bad_range in ("14,4", "x"):
        assert CliRunner().invoke(app, [*args, "--resolution-range", bad_range]).exit_code != 0


# A real relion_refine_mpi run with --regularizer prior (guard on and off) is part of the
# miniature benchmark: tests/test_experiment_end_to_end.py.
