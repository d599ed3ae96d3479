"""Warnings of the field libraries (mrcfile, starfile) turned into log records naming the file."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger("cryoprior.io")


def log_caught_warnings(path: str | Path, caught: Iterable[warnings.WarningMessage]) -> int:
    """Log each distinct warning caught while reading ``path`` at WARNING level; return how many.

    mrcfile's permissive mode turns format errors (a damaged header, a wrong map ID) into
    warnings so that a reader can go on; they are kept visible here, one line each, instead of
    being silenced or, with pytest's warnings-as-errors, raised.
    """
    seen: set[str] = set()
    for item in caught:
        message = " ".join(str(item.message).split())
        if message in seen:
            continue
        seen.add(message)
        logger.warning("%s: %s (%s)", path, message, item.category.__name__)
    return len(seen)
