"""Regularizers that misbehave on purpose, for fault-injection tests of cryoprior-extrec.

They are loaded by ``--regularizer regularizers_for_tests:NAME`` in a subprocess whose
PYTHONPATH contains the tests folder: the same path any third-party regularizer takes.
"""

from __future__ import annotations

import time

import numpy as np


class _Base:
    needs_both_halves = False
    name = "test"

    def __init__(self, **options):
        self.options = options

    def regularize_pair(self, half_map_1, half_map_2, *, context):
        return self.regularize(half_map_1, context=context), self.regularize(
            half_map_2, context=context
        )


class Scale(_Base):
    """Multiplies the map by ``factor`` (a visible, valid change)."""

    def regularize(self, half_map, *, context):
        return half_map * float(self.options.get("factor", 2.0))


class Raise(_Base):
    def regularize(self, half_map, *, context):
        raise RuntimeError("injected failure")


class NaNs(_Base):
    def regularize(self, half_map, *, context):
        out = np.array(half_map, copy=True)
        out[0, 0, 0] = np.nan
        out[1, 1, 1] = np.inf
        return out


class WrongShape(_Base):
    def regularize(self, half_map, *, context):
        return half_map[:-2, :-2, :-2]


class Sleep(_Base):
    """Sleeps ``seconds`` (simulates a hung network or GPU) and would return 2x the map."""

    def regularize(self, half_map, *, context):
        time.sleep(float(self.options.get("seconds", 60)))
        return half_map * 2


class BadFactory:
    """Not a regularizer at all (no needs_both_halves / regularize)."""

    def __init__(self, **options):
        pass


class JointAverage(_Base):
    """A joint regularizer: both halves get (h1 + h2) / 2 + which-half marker offsets.

    Half 1 gets mean + 0, half 2 gets mean + 1e-3 * max, so tests can tell which output
    went where.
    """

    needs_both_halves = True

    def regularize(self, half_map, *, context):  # pragma: no cover - not used
        raise AssertionError("joint regularizer called per half")

    def regularize_pair(self, half_map_1, half_map_2, *, context):
        delay = float(self.options.get("seconds", 0))
        if delay:
            time.sleep(delay)
        mean = (half_map_1 + half_map_2) / 2
        return mean, mean + 1e-3 * np.abs(mean).max()


class JointRaise(JointAverage):
    def regularize_pair(self, half_map_1, half_map_2, *, context):
        raise RuntimeError("injected joint failure")


class SysExit(_Base):
    """Calls sys.exit(3) inside the regularizer."""

    needs_both_halves = False

    def regularize(self, half_map, *, context):
        import sys

        sys.exit(3)


class KbdInt(_Base):
    def regularize(self, half_map, *, context):
        raise KeyboardInterrupt


class OsExit(_Base):
    def regularize(self, half_map, *, context):
        import os

        os._exit(7)


class Segfault(_Base):
    """Dereferences NULL in native code (as a crash inside torch would)."""

    def regularize(self, half_map, *, context):
        import ctypes

        ctypes.string_at(0)


class Killed(_Base):
    """SIGKILLs itself, as the kernel's out-of-memory killer would."""

    def regularize(self, half_map, *, context):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class NativeHang(_Base):
    """Sleeps inside C (libc sleep: no Python signal handling, no GIL release checks)."""

    def regularize(self, half_map, *, context):
        import ctypes

        ctypes.CDLL(None).sleep(3600)


class MultiLineError(_Base):
    def regularize(self, half_map, *, context):
        raise RuntimeError("first line\nsecond line\n  third line")


class JointSysExit(JointAverage):
    def regularize_pair(self, half_map_1, half_map_2, *, context):
        import sys

        sys.exit(4)


class JointScale(JointAverage):
    """Half 1 x factor1, half 2 x factor2: which attempt made a map shows in its scale."""

    def regularize_pair(self, half_map_1, half_map_2, *, context):
        delay = float(self.options.get("seconds", 0))
        if delay:
            time.sleep(delay)
        return (
            half_map_1 * float(self.options.get("factor1", 2.0)),
            half_map_2 * float(self.options.get("factor2", 3.0)),
        )
