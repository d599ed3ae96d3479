"""Find regularizers by name, or by ``module:attribute`` for third-party ones.

Built-in names map to import paths so that nothing heavy (torch) is imported unless the
regularizer is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from cryoprior.regularizers.base import Regularizer

__all__ = [
    "BUILTIN_REGULARIZERS",
    "available_regularizers",
    "builtin_needs_both_halves",
    "get_regularizer",
]

BUILTIN_REGULARIZERS: dict[str, str] = {
    "none": "cryoprior.regularizers.identity:IdentityRegularizer",
    "sidesplitter": "cryoprior.regularizers.sidesplitter:SidesplitterRegularizer",
    "prior": "cryoprior.regularizers.prior:PriorRegularizer",
}


def available_regularizers() -> list[str]:
    """Names of the built-in regularizers."""
    return sorted(BUILTIN_REGULARIZERS)


def _load(spec: str):
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a regularizer spec must be a name or 'module:attribute', not {spec!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise ValueError(f"{module_name} has no attribute {attribute!r}") from exc


def get_regularizer(name: str, **options: Any) -> Regularizer:
    """Build a regularizer from a built-in name or a ``module:factory`` spec.

    ``options`` are passed to the factory (a class or a function returning a regularizer).
    Raises ValueError for an unknown name or an object that is not a regularizer.
    """
    if name in BUILTIN_REGULARIZERS:
        factory = _load(BUILTIN_REGULARIZERS[name])
    elif ":" in name:
        factory = _load(name)
    else:
        raise ValueError(
            f"unknown regularizer {name!r}; built-in: {', '.join(available_regularizers())}, "
            "or give 'module:factory'"
        )
    regularizer = factory(**options)
    for attr in ("needs_both_halves", "regularize", "regularize_pair"):
        if not hasattr(regularizer, attr):
            raise ValueError(f"{name!r} did not give a regularizer (no attribute {attr!r})")
    return regularizer


#: Which built-in regularizers are joint (need both half-maps), known without importing them.
_BUILTIN_JOINT: dict[str, bool] = {"none": False, "sidesplitter": True, "prior": False}


def builtin_needs_both_halves(name: str) -> bool | None:
    """Whether the built-in ``name`` needs both halves; None for anything else (unknown)."""
    return _BUILTIN_JOINT.get(name)


#: Which built-in regularizers go through the guard unless told (``guard_by_default``).
_BUILTIN_GUARDED: dict[str, bool] = {"none": False, "sidesplitter": False, "prior": True}


def builtin_guard_by_default(name: str) -> bool | None:
    """Whether the built-in ``name`` is guarded by default; None for anything else (unknown)."""
    return _BUILTIN_GUARDED.get(name)
