"""Regularizers applied by ``cryoprior-extrec`` to RELION's half-map reconstructions."""

from cryoprior.regularizers.base import RegularizationContext, Regularizer
from cryoprior.regularizers.registry import available_regularizers, get_regularizer

__all__ = ["RegularizationContext", "Regularizer", "available_regularizers", "get_regularizer"]
