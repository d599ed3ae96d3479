"""The prior's network: a small 3D U-Net with residual blocks and group normalisation.

Input: (B, 1, D, H, W) noise-normalised half-map at the model's voxel size (see
:mod:`cryoprior.prior.infer`). Output: (B, 1, D, H, W) the enhanced map in the same units, and
optionally (B, 1, D, H, W) mask logits. D, H, W must be multiples of ``2 ** (levels - 1)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["PriorNet", "PriorNetConfig", "build_network"]


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


def _norm(channels: int, groups: int) -> nn.Module:
    if groups <= 0:
        return nn.Identity()
    return nn.GroupNorm(min(groups, channels), channels)


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
