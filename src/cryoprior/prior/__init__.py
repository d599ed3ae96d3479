"""The learned prior: a small 3D U-Net trained here on maps made from atomic models.

``network`` (the model), ``data`` (training pairs by a degradation model), ``train`` (the
training loop), ``infer`` (tiling, resampling, greyscale). Importing this package imports torch.
"""

from cryoprior.prior.infer import (
    EnhanceResult,
    InferenceSettings,
    available_weights,
    enhance_map,
    load_prior,
)
from cryoprior.prior.network import PriorNet, PriorNetConfig, build_network

__all__ = [
    "EnhanceResult",
    "InferenceSettings",
    "PriorNet",
    "PriorNetConfig",
    "available_weights",
    "build_network",
    "enhance_map",
    "load_prior",
]
