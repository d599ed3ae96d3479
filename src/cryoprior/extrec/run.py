"""The whole ``cryoprior-extrec`` flow, with fallback to the plain map on any failure.

1. read the job STAR and RELION's arrays; reconstruct the plain map exactly as
   ``relion_external_reconstruct`` and write it to ``rlnExtReconsResult`` at once, so
   RELION has a valid answer whatever happens next;
2. decide from the iteration state and the schedule whether to regularize;
3. regularize (per half, or jointly through the rendezvous), check the output (shape,
   finite values) and atomically replace the plain map with it;
4. append one JSON line to ``cryoprior_extrec.log`` beside RELION's output.

A failure in step 1 (unreadable or malformed input) raises InputFileError: there is no map
to give RELION, and the caller exits non-zero. Anything that goes wrong later is logged and
leaves the plain map in place; a watchdog ends the process with status 0 if regularization
overruns its time limit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.extrec.pairing import rendezvous
from cryoprior.extrec.protocol import LOG_FILE_NAME, append_log_line, check_volume, write_result
from cryoprior.extrec.schedule import (
    IterationState,
    Schedule,
    decide,
    parse_schedule,
    read_iteration_state,
)
from cryoprior.io.mrc import read_map
from cryoprior.io.relion import read_external_reconstruct_job
from cryoprior.reconstruct.relion_map import ReconstructionOptions, reconstruct_job
from cryoprior.regularizers.base import RegularizationContext
from cryoprior.regularizers.guard import GuardSettings, apply_guard
from cryoprior.regularizers.registry import get_regularizer

__all__ = ["ExtrecConfig", "ExtrecOutcome", "run_extrec"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtrecConfig:
    """How ``cryoprior-extrec`` behaves (set by options before the STAR path).

    Attributes
    ----------
    regularizer: built-in name (``none``) or ``module:factory``.
    regularizer_options: keyword options for the regularizer's factory and context.
    schedule: when to regularize (``parse_schedule``).
    regularize_final: also regularize the final joined call (default: plain, as RELION).
    pair_timeout_seconds: how long half 1 waits for half 2 in a joint regularizer.
    regularizer_timeout_seconds: time allowed for regularization after the plain map is
        written; beyond it the process exits 0 leaving the plain map.
    mask_path: solvent mask for regularizers (default: RELION's ``rlnSolventMaskName``).
    reconstruction: variants of the plain reconstruction (default: the stock program's).
    log_path: the JSON-lines log (default: ``cryoprior_extrec.log`` beside RELION's output).
    guard: pass the regularized map through ``regularizers.guard`` (None: the regularizer's
        default, on for learned priors).
    guard_settings: the guard's parameters.
    write_fsc_star: when a half-map was regularized, write ``rlnExtReconsResultStarfile``
        with the FSC transformed as SIDESPLITTER's RELION wrapper does,
        (sqrt(2(FSC + FSC^2)) + FSC) / (2 + FSC). This raises the resolution RELION uses
        for the next iteration; off by default.
    """

    regularizer: str = "none"
    regularizer_options: dict[str, Any] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=lambda: parse_schedule("local-searches"))
    regularize_final: bool = False
    pair_timeout_seconds: float = 300.0
    regularizer_timeout_seconds: float = 1800.0
    mask_path: str | None = None
    reconstruction: ReconstructionOptions = field(default_factory=ReconstructionOptions)
    log_path: str | None = None
    guard: bool | None = None
    guard_settings: GuardSettings = field(default_factory=GuardSettings)
    write_fsc_star: bool = False


@dataclass(frozen=True)
class ExtrecOutcome:
    """What one call did (also written as the log line)."""

    result_path: Path
    applied: bool
    reason: str
    fallback: str | None
    seconds: dict[str, float]
    record: dict[str, Any]


class _Watchdog:
    """Ends the process with status 0 if regularization overruns (the plain map is in place)."""

    def __init__(self, seconds: float, on_expire):
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._on_expire = on_expire
        self.seconds = seconds

    def _expire(self) -> None:
        try:
            self._on_expire()
        finally:
            os._exit(0)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False


def _context(job, state: IterationState, config: ExtrecConfig, base: Path) -> RegularizationContext:
    voxel = job.pixel_size_angstrom or state.pixel_size_angstrom
    diameter = job.particle_diameter_angstrom or state.particle_diameter_angstrom
    mask = None
    mask_path = config.mask_path or state.solvent_mask_name
    if mask_path:
        full = Path(mask_path) if Path(mask_path).is_absolute() else base / mask_path
        mask = read_map(full, dtype=np.float64)
    return RegularizationContext(
        voxel_size_angstrom=voxel,
        particle_diameter_angstrom=diameter,
        gold_standard_fsc=job.gold_standard_fsc,
        tau2=job.tau2,
        iteration=state.iteration,
        half=state.half,
        mask=mask,
        options=dict(config.regularizer_options),
    )


def run_extrec(
    star_path: str | Path, config: ExtrecConfig, *, base_dir: str | Path = "."
) -> ExtrecOutcome:
    """Run one external-reconstruction call for RELION (see the module docstring).

    Raises InputFileError (naming the file) only when the plain map cannot be made.
    """
    process_start = time.time()
    t0 = time.monotonic()
    base = Path(base_dir)
    seconds: dict[str, float] = {}
    star_path = Path(star_path)
    full_star = star_path if star_path.is_absolute() else base / star_path

    job = read_external_reconstruct_job(full_star)
    name = job.name
    t1 = time.monotonic()
    seconds["read_job"] = t1 - t0
    try:
        plain = reconstruct_job(job, options=config.reconstruction, base_dir=base)
    except (ValueError, NotImplementedError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(full_star, f"cannot reconstruct: {exc}") from exc
    t2 = time.monotonic()
    seconds["reconstruct"] = t2 - t1
    state = read_iteration_state(name, base_dir=base) if name is not None else IterationState()
    voxel = job.pixel_size_angstrom or state.pixel_size_angstrom
    result = write_result(job, plain, voxel_size_angstrom=voxel, base_dir=base)
    seconds["write_plain"] = time.monotonic() - t2

    log_path = Path(config.log_path) if config.log_path else result.parent / LOG_FILE_NAME
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "star": str(star_path),
        "iteration": state.iteration,
        "half": state.half,
        "regularizer": config.regularizer,
        "schedule": str(config.schedule),
        "local_searches": state.local_searches,
        "current_resolution_angstrom": state.current_resolution_angstrom,
    }

    def finish(applied: bool, reason: str, fallback: str | None) -> ExtrecOutcome:
        seconds["total"] = time.monotonic() - t0
        record.update(
            applied=applied,
            reason=reason,
            fallback=fallback,
            seconds={k: round(v, 3) for k, v in seconds.items()},
        )
        try:
            append_log_line(log_path, record)
        except OSError as exc:
            logger.warning("could not append to %s: %s", log_path, exc)
        if fallback:
            logger.warning(
                "%s: regularizer %s not applied, plain map kept: %s",
                star_path,
                config.regularizer,
                fallback,
            )
        return ExtrecOutcome(result, applied, reason, fallback, dict(seconds), record)

    # decide
    if name is None or name.half is None:
        if not config.regularize_final:
            return finish(False, "final joined call (plain map unless --regularize-final)", None)
        apply, reason = True, "final joined call, --regularize-final"
    else:
        apply, reason = decide(config.schedule, state)
    if not apply:
        return finish(False, reason, None)

    def on_expire() -> None:
        seconds["regularize"] = time.monotonic() - t_reg
        finish(
            False,
            reason,
            f"timeout: regularization exceeded {config.regularizer_timeout_seconds:g} s",
        )

    t_reg = time.monotonic()
    try:
        regularizer = get_regularizer(config.regularizer, **config.regularizer_options)
        context = _context(job, state, config, base)
    except Exception as exc:  # a broken regularizer or its inputs: fallback, never a crash
        seconds["regularize"] = time.monotonic() - t_reg
        return finish(False, reason, f"setup failed: {type(exc).__name__}: {exc}")
    allowance = config.regularizer_timeout_seconds
    if regularizer.needs_both_halves:
        allowance += config.pair_timeout_seconds
    with _Watchdog(allowance, on_expire):
        box = job.original_image_size

        def validate(volume) -> str | None:
            return check_volume(volume, box_size=box)

        if regularizer.needs_both_halves:
            if name is None or name.half is None:
                seconds["regularize"] = time.monotonic() - t_reg
                return finish(
                    False, reason, "joint regularizer needs two half-maps; final call kept plain"
                )
            outcome = rendezvous(
                name,
                plain,
                lambda a, b: regularizer.regularize_pair(a, b, context=context),
                timeout_seconds=config.pair_timeout_seconds,
                regularizer_timeout_seconds=config.regularizer_timeout_seconds,
                process_start_time=process_start,
                base_dir=base,
                validate=validate,
            )
            seconds["pair_wait"] = outcome.wait_seconds
            volume, fallback = outcome.volume, outcome.reason
        else:
            try:
                volume = np.asarray(regularizer.regularize(plain, context=context))
                fallback = validate(volume)
            except Exception as exc:  # any regularizer failure means fallback, never a crash
                volume, fallback = plain, f"{type(exc).__name__}: {exc}"
        seconds["regularize"] = time.monotonic() - t_reg
        if fallback:
            return finish(False, reason, fallback)
        use_guard = (
            config.guard
            if config.guard is not None
            else getattr(regularizer, "guard_by_default", False)
        )
        if use_guard:
            t_g = time.monotonic()
            try:
                volume = _guarded(volume, plain, job, context, config, record)
                fallback = validate(volume)
            except Exception as exc:  # a guard failure means the plain map, never a crash
                fallback = f"guard failed: {type(exc).__name__}: {exc}"
            seconds["guard"] = time.monotonic() - t_g
            if fallback:
                return finish(False, reason, fallback)
        t_w = time.monotonic()
        try:
            write_result(job, volume, voxel_size_angstrom=voxel, base_dir=base)
        except (OSError, ValueError) as exc:
            write_result(job, plain, voxel_size_angstrom=voxel, base_dir=base)
            return finish(False, reason, f"writing the regularized map failed: {exc}")
        if config.write_fsc_star and name is not None and name.half is not None:
            _write_fsc_star(job, base)
            record["fsc_star_written"] = True
        seconds["write_regularized"] = time.monotonic() - t_w
    return finish(True, reason, None)


def _guarded(
    volume, plain, job, context: RegularizationContext, config: ExtrecConfig, record
) -> np.ndarray:
    """Apply the guard with the job's FSC; the particle sphere (or mask) is the fit region."""
    if job.gold_standard_fsc is None:
        raise ValueError("the job STAR has no FSC column")
    n = job.original_image_size
    region = None
    if context.mask is not None:
        region = context.mask > 0.5
    elif context.particle_diameter_angstrom and context.voxel_size_angstrom:
        radius = min(
            0.5 * context.particle_diameter_angstrom / context.voxel_size_angstrom, n / 2 - 1
        )
        c = np.arange(n) - n // 2
        region = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2 <= radius**2
    out, report = apply_guard(
        volume, plain, fsc=job.gold_standard_fsc, region=region, settings=config.guard_settings
    )
    voxel = context.voxel_size_angstrom
    record["guard"] = {
        "cutoff_shell": round(report.cutoff_shell, 3),
        "cutoff_resolution_angstrom": (
            round(n * voxel / report.cutoff_shell, 3) if voxel and report.cutoff_shell > 0 else None
        ),
        "power_removed_fraction": round(report.power_removed_fraction, 5),
        "scale": report.scale,
        "offset": report.offset,
    }
    logger.info(
        "guard: cut-off shell %.2f, removed %.1f%% of the regularized power",
        report.cutoff_shell,
        100 * report.power_removed_fraction,
    )
    return out


def _write_fsc_star(job, base: Path) -> None:
    """SIDESPLITTER-wrapper style FSC read-back (see ExtrecConfig.write_fsc_star)."""
    import pandas as pd

    from cryoprior.io.star import write_star_atomic

    if job.gold_standard_fsc is None or job.result_star_path is None:
        raise ValueError("no FSC in the job STAR or no rlnExtReconsResultStarfile to write")
    fsc = np.clip(job.gold_standard_fsc, 0.0, None)
    transformed = (np.sqrt(2.0 * (fsc + fsc * fsc)) + fsc) / (2.0 + fsc)
    table = pd.DataFrame(
        {
            "rlnSpectralIndex": np.arange(fsc.size),
            "rlnGoldStandardFsc": job.gold_standard_fsc,
            "rlnFourierShellCorrelation": transformed,
        }
    )
    target = (
        job.result_star_path if job.result_star_path.is_absolute() else base / job.result_star_path
    )
    write_star_atomic(target, {"": table})
