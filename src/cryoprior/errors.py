"""Exceptions shared by the whole package."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputFileError"]


class InputFileError(ValueError):
    """A file that cryoprior was asked to read is missing, unreadable or malformed.

    The message always names the file and the problem on one line.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
