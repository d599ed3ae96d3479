"""The prior regularizer picks its network voxel from the call's FSC and sets its threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryoprior.prior.network import PriorNetConfig, build_network
from cryoprior.prior.train import TrainConfig, save_checkpoint
from cryoprior.regularizers.base import RegularizationContext
from cryoprior.regularizers.prior import (
    DEFAULT_THREADS_PER_HALF,
    DEFAULT_VOXELS_PER_RESOLUTION,
    PriorRegularizer,
    current_resolution_angstrom,
)

TINY = PriorNetConfig(channels=(4, 8), groups=2)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    return save_checkpoint(
        path, build_network(TINY, seed=0), TrainConfig(network=TINY), {"steps": 0}
    )


def _fsc_crossing_at(shell: float, n: int) -> np.ndarray:
    """A falling FSC that crosses 1/7 at ``shell`` exactly (linear between shells)."""
    s = np.arange(n // 2 + 1, dtype=np.float64)
    return np.clip(1.0 / 7.0 - 0.1 * (s - shell), -0.1, 1.0)


def test_current_resolution_is_the_fsc_one_seventh_point():
    fsc = _fsc_crossing_at(6.0, 32)
    assert current_resolution_angstrom(fsc, box_size=32, voxel_size_angstrom=4.0) == pytest.approx(
        32 * 4.0 / 6.0
    )
    assert current_resolution_angstrom(None, box_size=32, voxel_size_angstrom=4.0) is None
    wrong_length = np.ones(10)
    assert current_resolution_angstrom(wrong_length, box_size=32, voxel_size_angstrom=4.0) is None
    never = np.ones(17)  # never below 1/7: Nyquist
    assert current_resolution_angstrom(never, box_size=32, voxel_size_angstrom=4.0) == 8.0


def test_regularizer_runs_the_network_at_the_resolution_voxel(tiny_weights):
    """Box 32 at 4 A, FSC = 1/7 at shell 6 (21.3 A): network voxel 21.3 / 4 = 5.3 A would
    make a box of 24 < 32, so the box is MIN_NETWORK_BOX = 32; at shell 12 (10.7 A): 2.67 A,
    box 48; without an FSC the model's 1.5 A (box 85)."""
    reg = PriorRegularizer(str(tiny_weights))
    assert DEFAULT_VOXELS_PER_RESOLUTION == 4.0
    assert reg.settings.voxels_per_resolution == DEFAULT_VOXELS_PER_RESOLUTION
    assert reg.settings.normalisation == "particle" and reg.num_threads == DEFAULT_THREADS_PER_HALF
    vol = np.random.default_rng(0).normal(size=(32, 32, 32))
    boxes = []
    for fsc in (_fsc_crossing_at(6.0, 32), _fsc_crossing_at(12.0, 32), None):
        ctx = RegularizationContext(voxel_size_angstrom=4.0, gold_standard_fsc=fsc)
        out = reg.regularize(vol, context=ctx)
        assert out.shape == vol.shape and np.all(np.isfinite(out))
        boxes.append(reg.last_info["model_box"])
    assert boxes == [32, 48, 85]
    assert reg.last_info["torch_threads"] == 1
    before = PriorRegularizer(
        str(tiny_weights), voxels_per_resolution="none", normalisation="tile", tile_size=64
    )
    assert before.settings.voxels_per_resolution is None
    ctx = RegularizationContext(voxel_size_angstrom=4.0, gold_standard_fsc=_fsc_crossing_at(6, 32))
    before.regularize(vol, context=ctx)
    assert before.last_info["model_box"] == 85 and before.last_info["tiles"] > 1
