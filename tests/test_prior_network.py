"""The prior's network and inference mechanics, on randomly initialised tiny networks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cryoprior.prior.infer import (
    InferenceSettings,
    LoadedPrior,
    blend_window,
    enhance_map,
    load_prior,
    plan_tiles,
    tile_starts,
)
from cryoprior.prior.network import PriorNet, PriorNetConfig, build_network
from cryoprior.prior.train import TrainConfig, save_checkpoint

TINY = PriorNetConfig(channels=(4, 8), groups=2, voxel_size_angstrom=1.5)


class _Pointwise(torch.nn.Module):
    """A stand-in network: out = 2 x (pointwise, so tiling must not change anything)."""

    def __init__(self, voxel_size_angstrom: float = 1.5):
        super().__init__()
        self.config = PriorNetConfig(
            channels=(1, 1), predict_mask=False, voxel_size_angstrom=voxel_size_angstrom
        )

    def forward(self, x):
        return 2.0 * x, None


class _Identity(_Pointwise):
    def forward(self, x):
        return x, None


def _tiny_prior(seed: int = 0) -> LoadedPrior:
    return LoadedPrior(build_network(TINY, seed=seed).eval(), {}, "tiny")


def test_shapes_and_mask_head():
    net = build_network(TINY)
    out, mask = net(torch.zeros(2, 1, 8, 8, 8))
    assert out.shape == mask.shape == (2, 1, 8, 8, 8)
    net = build_network(PriorNetConfig(channels=(4, 8, 8), groups=0, predict_mask=False))
    out, mask = net(torch.zeros(1, 1, 12, 8, 16))
    assert out.shape == (1, 1, 12, 8, 16) and mask is None
    with pytest.raises(ValueError, match="multiples"):
        net(torch.zeros(1, 1, 10, 8, 8))
    with pytest.raises(ValueError, match="B, 1"):
        net(torch.zeros(1, 2, 8, 8, 8))


def test_initialisation_is_seeded():
    a, b, c = build_network(TINY, seed=1), build_network(TINY, seed=1), build_network(TINY, seed=2)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert any(
        not torch.equal(va, vc)
        for va, vc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )


def test_config_round_trip():
    assert PriorNetConfig.from_dict(TINY.to_dict()) == TINY


def test_tiles_cover_and_overlap():
    for n in (10, 64, 65, 85, 128, 200):
        starts = tile_starts(n, tile_size=64, overlap=16)
        assert starts[0] == 0 and starts[-1] + 64 >= n
        if n > 64:
            assert starts[-1] + 64 == n
            assert all(b - a <= 64 - 16 for a, b in itertools.pairwise(starts))
    w = blend_window(32, 8)
    assert w.min() > 0 and w.max() == 1.0


def test_tile_plan_uses_the_fewest_tiles_that_fit():
    assert plan_tiles(141, tile_size=160, overlap=16, divisor=4) == (144, [0])
    for n in (161, 200, 256, 300, 500):
        edge, starts = plan_tiles(n, tile_size=160, overlap=16, divisor=4)
        assert edge <= 160 and edge % 4 == 0
        assert starts[0] == 0 and starts[-1] + edge == n
        assert all(b - a <= edge - 16 for a, b in itertools.pairwise(starts))
        fewer = len(starts) - 1  # one tile fewer per axis cannot cover n with the overlap
        assert fewer * 160 - (fewer - 1) * 16 < n


def test_pointwise_network_is_unchanged_by_tiling():
    """Blending tiles of a pointwise network gives exactly the whole-map result."""
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(40, 40, 40))
    prior = LoadedPrior(_Pointwise(), {}, "x2")
    whole = enhance_map(
        vol, voxel_size_angstrom=1.5, prior=prior, settings=InferenceSettings(tile_size=64)
    )
    tiled = enhance_map(
        vol,
        voxel_size_angstrom=1.5,
        prior=prior,
        settings=InferenceSettings(tile_size=16, overlap=6, batch_size=3),
    )
    assert tiled.info["tiles"] > 1
    np.testing.assert_allclose(tiled.map, whole.map, atol=1e-5)


@pytest.mark.parametrize("voxel", [1.5, 1.0, 2.25])
def test_identity_network_returns_the_input(voxel):
    """Resampling, normalisation and greyscale undo each other exactly (identity network)."""
    rng = np.random.default_rng(1)
    vol = 3.0 * rng.normal(size=(36, 36, 36)) + 7.0
    before = vol.copy()
    prior = LoadedPrior(_Identity(), {}, "id")
    keep = InferenceSettings(keep_beyond_model_nyquist=True)
    out = enhance_map(vol, voxel_size_angstrom=voxel, prior=prior, settings=keep)
    np.testing.assert_array_equal(vol, before)  # input not modified
    np.testing.assert_allclose(out.map, vol, atol=1e-4 * np.abs(vol).max())
    if voxel < 1.5:  # without them: the input band-limited to the model's Nyquist
        cut = enhance_map(vol, voxel_size_angstrom=voxel, prior=prior).map
        spec = np.abs(np.fft.rfftn(cut))
        assert spec[:, :, 18].max() < 1e-6 * spec.max()  # beyond Nyquist of the 24-box
    assert out.info["model_box"] == round(36 * voxel / 1.5)


def test_greyscale_follows_the_input():
    """Scaling and offsetting the input scales and offsets the output the same way."""
    rng = np.random.default_rng(2)
    vol = rng.normal(size=(24, 24, 24))
    prior = _tiny_prior()
    a = enhance_map(vol, voxel_size_angstrom=1.5, prior=prior).map
    b = enhance_map(5.0 * vol + 3.0, voxel_size_angstrom=1.5, prior=prior).map
    np.testing.assert_allclose(b, 5.0 * a + 3.0, atol=1e-4 * np.abs(b).max())


def test_deterministic_and_batched_equals_looped():
    rng = np.random.default_rng(3)
    vol = rng.normal(size=(40, 40, 40))
    prior = _tiny_prior()
    s1 = InferenceSettings(tile_size=16, overlap=4, batch_size=1)
    s4 = InferenceSettings(tile_size=16, overlap=4, batch_size=4)
    a = enhance_map(vol, voxel_size_angstrom=1.5, prior=prior, settings=s4)
    b = enhance_map(vol, voxel_size_angstrom=1.5, prior=prior, settings=s4)
    c = enhance_map(vol, voxel_size_angstrom=1.5, prior=prior, settings=s1)
    np.testing.assert_array_equal(a.map, b.map)
    np.testing.assert_allclose(a.map, c.map, atol=1e-5 * np.abs(a.map).max())
    assert a.mask is not None and a.mask.min() >= 0 and a.mask.max() <= 1


def test_empty_tiles_are_skipped():
    vol = np.zeros((48, 48, 48))
    vol[:16, :16, :16] = np.random.default_rng(4).normal(size=(16, 16, 16))
    out = enhance_map(
        vol,
        voxel_size_angstrom=1.5,
        prior=_tiny_prior(),
        settings=InferenceSettings(tile_size=16, overlap=0, keep_beyond_model_nyquist=False),
    )
    assert out.info["tiles"] < 27


def test_bad_inputs():
    prior = _tiny_prior()
    with pytest.raises(ValueError, match="cube"):
        enhance_map(np.zeros((8, 8, 9)), voxel_size_angstrom=1.5, prior=prior)
    with pytest.raises(ValueError, match="non-finite"):
        enhance_map(np.full((8, 8, 8), np.nan), voxel_size_angstrom=1.5, prior=prior)
    with pytest.raises(ValueError, match="constant"):
        enhance_map(np.ones((8, 8, 8)), voxel_size_angstrom=1.5, prior=prior)


def test_checkpoint_round_trip(tmp_path):
    net = build_network(TINY, seed=5)
    path = save_checkpoint(tmp_path / "tiny.pt", net, TrainConfig(network=TINY), {"steps": 0})
    loaded = load_prior(path)
    assert isinstance(loaded.network, PriorNet)
    assert loaded.metadata["network_config"] == TINY.to_dict()
    assert loaded.metadata["package_version"]
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.network(x)[0], net.eval()(x)[0])
    with pytest.raises(FileNotFoundError, match="shipped"):
        load_prior("no-such-weights")
