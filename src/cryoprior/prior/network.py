"""The prior's network: a small 3D U-Net with residual blocks and group normalisation.

Input: (B, 1, D, H, W) noise-normalised half-map at the model's voxel size (see
:mod:`cryoprior.prior.infer`). Output: (B, 1, D, H, W) the enhanced map in the same units, and
optionally (B, 1, D, H, W) mask logits. D, H, W must be multiples of ``2 ** (levels - 1)``.

Group normalisation normally takes its statistics from the input it sees (per sample), so a
map cut into tiles is normalised per tile. :func:`normalisation_statistics` lets inference fix
them instead: one pass over the whole map records every norm layer's per-group mean and
variance (optionally over a region only, e.g. the particle), and later passes - tiles of the
same map - reuse them, so the output does not depend on how the map is cut.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NormStatistics",
    "PriorNet",
    "PriorNetConfig",
    "build_network",
    "normalisation_statistics",
]


@dataclass(frozen=True)
class PriorNetConfig:
    """Architecture of :class:`PriorNet`.

    channels: feature channels per level, top (full resolution) first; the number of
        levels is ``len(channels)``.
    blocks_per_level: residual blocks per level in the encoder and in the decoder.
    groups: groups of the group normalisation (0: no normalisation).
    predict_mask: also output mask logits (a second head).
    voxel_size_angstrom: the voxel size the network works at (maps are resampled to it).
    """

    channels: tuple[int, ...] = (12, 24, 48)
    blocks_per_level: int = 1
    groups: int = 4
    predict_mask: bool = True
    voxel_size_angstrom: float = 1.5

    def to_dict(self) -> dict:
        """Return the configuration as a JSON-ready dict (``channels`` as a list)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PriorNetConfig:
        """Build a configuration from :meth:`to_dict`'s output (``d`` is not modified)."""
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)

    @property
    def divisor(self) -> int:
        """Spatial sizes must be multiples of this."""
        return 2 ** (len(self.channels) - 1)


@dataclass
class NormStatistics:
    """Per-group statistics of every norm layer of one pass (mutable: filled while recording).

    region: (1, 1, D, H, W) float weights in [0, 1] at the network's input size, the voxels
        the statistics are taken over when recording (None: all voxels).
    stats: per norm layer, in call order, (mean, var), each (groups,).
    """

    region: torch.Tensor | None = None
    stats: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    recording: bool = True
    position: int = 0

    def region_at(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """Return the region averaged down to a layer's (D, H, W) (the U-Net halves sizes)."""
        if self.region is None:
            return None
        factor = self.region.shape[-1] // shape[-1]
        return self.region if factor == 1 else F.avg_pool3d(self.region, factor)


class _GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters, same result) that can record or replay statistics."""

    statistics: NormStatistics | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.statistics
        if st is None:
            return super().forward(x)
        b, c = x.shape[:2]
        g = self.num_groups
        if st.recording:
            if b != 1:
                raise ValueError("normalisation statistics are recorded on one map at a time")
            flat = x.reshape(c, -1)
            region = st.region_at(tuple(x.shape[2:]))
            if region is None:
                w = torch.ones(flat.shape[1], dtype=x.dtype, device=x.device)
            else:
                w = region.reshape(-1).to(x.dtype)
            # per-channel weighted sums as matrix-vector products (no (C, V) temporaries but
            # the square), then pooled per group
            count = w.sum() * (c // g)
            mean = (flat @ w).reshape(g, -1).sum(dim=1) / count
            square = (flat.square() @ w).reshape(g, -1).sum(dim=1) / count
            var = (square - mean.square()).clamp_min(0.0)
            st.stats.append((mean, var))
        else:
            mean, var = st.stats[st.position]
            st.position += 1
        # y = (x - mean_g) / sqrt(var_g + eps) * weight_c + bias_c = x * scale_c + shift_c
        inv = torch.rsqrt(var + self.eps).repeat_interleave(c // g)
        mean_c = mean.repeat_interleave(c // g)
        scale = inv * self.weight if self.affine else inv
        shift = (self.bias if self.affine else 0.0) - mean_c * scale
        shape = (1, c) + (1,) * (x.ndim - 2)
        return torch.addcmul(shift.reshape(shape), x, scale.reshape(shape))


@contextlib.contextmanager
def normalisation_statistics(
    network: nn.Module, statistics: NormStatistics
) -> Iterator[NormStatistics]:
    """Within the block, the network's norm layers record into / replay from ``statistics``.

    Recording (``statistics.recording``) needs batches of one map; before each replaying
    forward pass set ``statistics.position = 0``. A network without such layers (a stand-in)
    is unaffected.
    """
    norms = [m for m in network.modules() if isinstance(m, _GroupNorm)]
    for m in norms:
        m.statistics = statistics
    try:
        yield statistics
    finally:
        for m in norms:
            m.statistics = None


def _norm(channels: int, groups: int) -> nn.Module:
    if groups <= 0:
        return nn.Identity()
    return _GroupNorm(min(groups, channels), channels)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.norm2 = _norm(c_out, groups)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.act = nn.SiLU()
        self.skip = nn.Identity() if c_in == c_out else nn.Conv3d(c_in, c_out, 1)
        nn.init.zeros_(self.conv2.weight)
        if self.conv2.bias is not None:
            nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


class PriorNet(nn.Module):
    """3D U-Net (see the module docstring)."""

    def __init__(self, config: PriorNetConfig = PriorNetConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        g = config.groups
        self.stem = nn.Conv3d(1, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, c in enumerate(ch):
            blocks = [_ResBlock(c, c, g) for _ in range(config.blocks_per_level)]
            self.down_blocks.append(nn.Sequential(*blocks))
            if i + 1 < len(ch):
                self.downsamples.append(nn.Conv3d(c, ch[i + 1], 2, stride=2))
        self.upsamples = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in range(len(ch) - 2, -1, -1):
            self.upsamples.append(nn.ConvTranspose3d(ch[i + 1], ch[i], 2, stride=2))
            blocks = [_ResBlock(2 * ch[i], ch[i], g)]
            blocks += [_ResBlock(ch[i], ch[i], g) for _ in range(config.blocks_per_level - 1)]
            self.up_blocks.append(nn.Sequential(*blocks))
        self.out_norm = _norm(ch[0], g)
        self.act = nn.SiLU()
        self.head = nn.Conv3d(ch[0], 2 if config.predict_mask else 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, 1, D, H, W) -> (map (B, 1, D, H, W), mask logits or None)."""
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"input must be (B, 1, D, H, W), not {tuple(x.shape)}")
        div = self.config.divisor
        if any(s % div for s in x.shape[2:]):
            raise ValueError(f"spatial sizes must be multiples of {div}, not {tuple(x.shape[2:])}")
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h)
            if i < len(self.downsamples):
                skips.append(h)
                h = self.downsamples[i](h)
        for up, block in zip(self.upsamples, self.up_blocks, strict=True):
            h = up(h)
            h = block(torch.cat([h, skips.pop()], dim=1))
        out = self.head(self.act(self.out_norm(h)))
        if self.config.predict_mask:
            return out[:, :1], out[:, 1:]
        return out, None


def build_network(config: PriorNetConfig = PriorNetConfig(), *, seed: int = 0) -> PriorNet:
    """Build a freshly initialised network, deterministic for a given seed."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = PriorNet(config)
    finally:
        torch.random.set_rng_state(gen_state)
    return net
