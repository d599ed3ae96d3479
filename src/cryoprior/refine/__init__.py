"""Launching RELION: auto-refine with the cryoprior hook, and small end-to-end runs."""

from cryoprior.refine.relion import (
    AutoRefineSettings,
    RefineResult,
    RelionNotFoundError,
    build_refine_command,
    run_auto_refine,
)

__all__ = [
    "AutoRefineSettings",
    "RefineResult",
    "RelionNotFoundError",
    "build_refine_command",
    "run_auto_refine",
]
