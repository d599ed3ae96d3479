"""``cryoprior-extrec --device``: reaches the prior's InferenceSettings; cpu runs (no GPU here)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from cryoprior.cli.extrec import app, build_config
from cryoprior.regularizers.base import RegularizationContext
from cryoprior.regularizers.registry import get_regularizer


def test_device_reaches_the_settings_and_cpu_runs(tiny_weights):
    cfg = build_config({"regularizer": "prior", "device": "cpu"}, None)
    assert cfg.regularizer_options["device"] == "cpu"
    reg = get_regularizer("prior", **cfg.regularizer_options, weights=str(tiny_weights))
    assert reg.settings.device == "cpu"
    vol = np.random.default_rng(0).normal(size=(16, 16, 16))
    out = reg.regularize(vol, context=RegularizationContext(voxel_size_angstrom=3.0))
    assert out.shape == vol.shape and np.all(np.isfinite(out))
    auto = build_config({"regularizer": "prior"}, None)
    assert "device" not in auto.regularizer_options  # auto: InferenceSettings.device None
    assert get_regularizer("prior", weights=str(tiny_weights)).settings.device is None


def test_device_precedence_command_line_then_file(tmp_path):
    toml = tmp_path / "extrec.toml"
    toml.write_text('regularizer = "prior"\ndevice = "cuda:1"\n')
    assert build_config({}, toml).regularizer_options["device"] == "cuda:1"
    assert build_config({"device": "cpu"}, toml).regularizer_options["device"] == "cpu"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"regularizer": "prior", "device": "gpu0"}, "--device must be auto, cpu, cuda or cuda:N"),
        ({"regularizer": "sidesplitter", "device": "cpu"}, "applies to a learned regularizer"),
        (
            {"regularizer": "prior", "device": "cpu", "option": ["device=cuda"]},
            "disagree",
        ),
    ],
)
def test_bad_device_is_a_usage_error(given, message):
    with pytest.raises(ValueError, match=message):
        build_config(given, None)


def test_bad_device_on_the_command_line_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            str(tmp_path / "x_external_reconstruct.star"),
            "--regularizer",
            "prior",
            "--device",
            "tpu",
        ],
    )
    assert result.exit_code == 2
    assert "--device must be auto, cpu, cuda or cuda:N, not 'tpu'" in result.output
    assert "Traceback" not in result.output
