"""MRC image stacks (``.mrcs``) written from a stream of image blocks, safely and reproducibly.

Each stack is written through a memory map into a temporary file beside it, with the whole
file reserved first (so a full disk is an OSError naming the stack, not a SIGBUS), and renamed
into place when complete; on any error or interruption the temporary file is removed. The
header's label is fixed (:func:`set_label`), so the same images give the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from cryoprior.io._atomic import atomic_path

__all__ = ["naming_os_errors", "reserve_file_space", "set_label", "write_stacks"]

logger = logging.getLogger(__name__)


def reserve_file_space(fd: int, length: int) -> None:
    """Reserve ``length`` bytes of a file, so that writing them through a memory map cannot SIGBUS.

    ENOSPC and EDQUOT propagate as OSError; a file system without fallocate support is skipped.
    """
    try:
        os.posix_fallocate(fd, 0, length)
    except OSError as exc:
        if exc.errno in (getattr(os, "EOPNOTSUPP", 95), 22):  # not supported / EINVAL
            logger.debug("posix_fallocate not supported here: %s", exc)
            return
        raise


@contextlib.contextmanager
def naming_os_errors(path: Path) -> Iterator[None]:
    """Give an OSError that names no file (ENOSPC from a write, say) the path at hand."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def set_label(header: Any, label: str) -> None:
    """Set one fixed label instead of mrcfile's time-stamped one (same data, same bytes)."""
    header.label[0] = label
    header.nlabl = 1


def write_stacks(
    paths: Sequence[Path],
    sizes: Sequence[int],
    blocks: Iterable[np.ndarray],
    *,
    box_size: int,
    voxel_size_angstrom: float,
    label: str,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write float32 image stacks of the given sizes from a stream of image blocks (any sizes).

    Parameters
    ----------
    paths: the stacks, in order; ``sizes``: the number of images of each.
    blocks: (k, box_size, box_size) arrays, in order, ``sum(sizes)`` images in all.
    voxel_size_angstrom, label: written in each header.
    progress: called as ``progress(done, total)`` after each block written.

    One stack at a time through a memory map; each stack is renamed into place when complete.
    The whole file is reserved (``posix_fallocate``) before the map is written, so a full disk
    is an OSError (ENOSPC, naming the stack) here rather than a SIGBUS while writing the map;
    on any error or interruption the temporary file is removed (:func:`atomic_path`, which
    also syncs each stack to disk before the rename).
    """
    total = int(sum(sizes))
    done = 0
    n = box_size
    pending = np.zeros((0, n, n), dtype=np.float32)
    block_iter = iter(blocks)
    for path, size in zip(paths, sizes, strict=True):
        with (
            naming_os_errors(path),
            atomic_path(path, suffix=".mrcs") as tmp,
            mrcfile.new_mmap(tmp, shape=(size, n, n), mrc_mode=2, overwrite=True) as mrc,
        ):
            reserve = os.open(tmp, os.O_RDWR)
            try:
                reserve_file_space(reserve, os.fstat(reserve).st_size)
            finally:
                os.close(reserve)
            mrc.set_image_stack()
            mrc.voxel_size = voxel_size_angstrom
            set_label(mrc.header, label)
            stats = _Stats()
            position = 0
            while position < size:
                if not len(pending):
                    pending = next(block_iter)
                k = min(size - position, len(pending))
                chunk, pending = pending[:k], pending[k:]
                mrc.data[position : position + k] = chunk
                stats.add(chunk)
                position += k
                done += k
                if progress is not None:
                    progress(done, total)
            stats.write(mrc.header)


class _Stats:
    """Running min, max, mean and RMS deviation of float32 images (MRC header fields)."""

    def __init__(self) -> None:
        self.low, self.high, self.total, self.total2, self.count = np.inf, -np.inf, 0.0, 0.0, 0

    def add(self, images: np.ndarray) -> None:
        flat = images.reshape(len(images), -1)
        self.low = min(self.low, float(images.min()))
        self.high = max(self.high, float(images.max()))
        self.total += float(flat.sum(dtype=np.float64))
        self.total2 += float(np.einsum("ij,ij->", flat, flat, dtype=np.float64))
        self.count += images.size

    def write(self, header: Any) -> None:
        mean = self.total / self.count
        header.dmin = self.low
        header.dmax = self.high
        header.dmean = mean
        header.rms = float(np.sqrt(max(self.total2 / self.count - mean * mean, 0.0)))
