"""The whole ``cryoprior-extrec`` flow, with fallback to the plain map on any failure.

1. read the job STAR and RELION's arrays; reconstruct the plain map exactly as
   ``relion_external_reconstruct`` and write it to ``rlnExtReconsResult`` at once, so
   RELION has a valid answer whatever happens next;
2. decide from the iteration state and the schedule whether to regularize;
3. regularize in a separate process (``extrec.isolate``: per half, or jointly through the
   rendezvous of ``extrec.pairing``), check the output (shape, finite values) here and
   atomically replace the plain map with it (not at all when nothing changed);
4. append one JSON line to ``cryoprior_extrec.log`` beside RELION's output.

A failure in step 1 raises InputFileError (unreadable or malformed input) or
ResultWriteError (the map cannot be written): there is no map to give RELION, and the
caller exits non-zero. Anything that goes wrong later, including a crash, ``sys.exit`` or a
hang of the regularizer (its process is killed at the time limit), is logged and leaves the
plain map in place.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.errors import InputFileError
from cryoprior.extrec.isolate import StageError, run_isolated
from cryoprior.extrec.pairing import call_identity, rendezvous
from cryoprior.extrec.protocol import (
    ResultWriteError,
    check_volume,
    one_line,
    write_result,
)
from cryoprior.extrec.schedule import (
    IterationState,
    Schedule,
    decide,
    parse_schedule,
    read_iteration_state,
)
from cryoprior.io.hook_log import LOG_FILE_NAME, append_log_line
from cryoprior.io.mrc import read_map
from cryoprior.io.relion_extrec import (
    ExternalReconstructJob,
    read_external_reconstruct_arrays,
    read_external_reconstruct_job,
)
from cryoprior.reconstruct.relion_map import ReconstructionOptions, reconstruct_from_arrays
from cryoprior.regularizers.base import RegularizationContext
from cryoprior.regularizers.guard import HOOK_GUARD, GuardSettings, apply_guard
from cryoprior.regularizers.registry import (
    builtin_guard_by_default,
    builtin_needs_both_halves,
    get_regularizer,
)

__all__ = ["ExtrecConfig", "ExtrecOutcome", "plain_reconstruction", "run_extrec"]

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
        written; beyond it the regularizer's process is killed and the plain map stays.
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
    guard_settings: GuardSettings = HOOK_GUARD
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


def _staged(label: str, fn, *args, **kwargs):
    """Run ``fn``; an Exception becomes a StageError '<label>Type: message' (one line)."""
    try:
        return fn(*args, **kwargs)
    except StageError:
        raise
    except Exception as exc:
        raise StageError(one_line(f"{label}{type(exc).__name__}: {exc}")) from exc


def _use_guard(config: ExtrecConfig, regularizer) -> bool:
    if config.guard is not None:
        return config.guard
    return bool(getattr(regularizer, "guard_by_default", False))


def _guard_needs_both_halves(config: ExtrecConfig) -> bool:
    """Whether the guard asked for needs the other half's plain map (cross-half support).

    Only when the guard is sure to run: asked for, or the default of a built-in regularizer
    guarded by default (a plug-in's default is known only once it is loaded: guarded, it runs
    without cross-half support).
    """
    settings = config.guard_settings
    guarded = (
        config.guard
        if config.guard is not None
        else bool(builtin_guard_by_default(config.regularizer))
    )
    return (
        guarded
        and config.regularizer != "none"
        and settings.method == "bounded"
        and settings.cross_half_support
    )


def _regularize_both(regularizer, map_1, map_2, context) -> tuple[np.ndarray, np.ndarray]:
    """Both halves through a regularizer: jointly, or a per-half one on each, concurrently.

    A per-half regularizer runs here only when the guard needs both halves: the two halves
    run at once in two threads (as the two hook processes would), each independently.
    """
    if regularizer.needs_both_halves:
        out_1, out_2 = regularizer.regularize_pair(map_1, map_2, context=context)
        return np.asarray(out_1), np.asarray(out_2)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(regularizer.regularize, m, context=context) for m in (map_1, map_2)]
        return tuple(np.asarray(f.result()) for f in futures)  # type: ignore[return-value]


def plain_reconstruction(
    job: ExternalReconstructJob, *, options: ReconstructionOptions, base_dir: Path
) -> np.ndarray:
    """Read one job's Fourier arrays and reconstruct its map as ``relion_external_reconstruct``.

    Without a tau2 block the MAP term is left out (the hook allows that only with
    ``--no-map``). Returns (N, N, N) float64; raises InputFileError for unreadable arrays and
    ValueError for a job that is not a 3D reference.
    """
    if job.reference_dimensionality != 3:
        raise ValueError("only 3D references (rlnReferenceDimensionality 3) are supported")
    data, weight = read_external_reconstruct_arrays(job, base_dir=base_dir)
    if job.tau2 is None:
        options = replace(options, do_map=False)
    return reconstruct_from_arrays(
        data,
        weight,
        tau2=job.tau2,
        original_image_size=job.original_image_size,
        current_image_size=job.current_image_size,
        padding_factor=job.padding_factor,
        tau2_fudge=job.tau2_fudge,
        options=options,
    )


def run_extrec(
    star_path: str | Path, config: ExtrecConfig, *, base_dir: str | Path = "."
) -> ExtrecOutcome:
    """Run one external-reconstruction call for RELION (see the module docstring).

    Raises InputFileError (naming the file) when the plain map cannot be made, and
    ResultWriteError (naming the file and the OS error) when it cannot be written. Once the
    plain map is written nothing raises: every later failure is logged and leaves it.
    """
    t0 = time.monotonic()
    base = Path(base_dir)
    seconds: dict[str, float] = {}
    star_path = Path(star_path)
    full_star = star_path if star_path.is_absolute() else base / star_path

    job = read_external_reconstruct_job(full_star)
    if job.tau2 is None and config.reconstruction.do_map:
        raise InputFileError(
            full_star,
            "no data_external_reconstruct_tau2 block, which the MAP term needs "
            "(relion_external_reconstruct crashes on such a file); give --no-map to "
            "reconstruct without it",
        )
    name = job.name
    t1 = time.monotonic()
    seconds["read_job"] = t1 - t0
    try:
        plain = plain_reconstruction(job, options=config.reconstruction, base_dir=base)
    except (ValueError, NotImplementedError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(full_star, f"cannot reconstruct: {exc}") from exc
    t2 = time.monotonic()
    seconds["reconstruct"] = t2 - t1
    try:
        state = read_iteration_state(name, base_dir=base) if name is not None else IterationState()
    except Exception as exc:  # the state only steers the schedule: never fatal
        logger.warning("%s: cannot read the iteration state: %s", star_path, one_line(exc))
        state = IterationState(
            iteration=name.iteration if name else None, half=name.half if name else None
        )
    voxel = job.pixel_size_angstrom or state.pixel_size_angstrom
    if voxel is not None and not (np.isfinite(voxel) and voxel > 0):
        voxel = None
    result = write_result(job, plain, voxel_size_angstrom=voxel, base_dir=base)
    seconds["write_plain"] = time.monotonic() - t2

    # From here on the plain map is in place: nothing may end the call with an error.
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
        fallback = one_line(fallback) if fallback else None
        record.update(
            applied=applied,
            reason=reason,
            fallback=fallback,
            seconds={k: round(v, 3) for k, v in seconds.items()},
        )
        try:
            append_log_line(log_path, record)
        except OSError as exc:
            logger.warning("could not append to %s: %s", log_path, one_line(exc))
        if fallback:
            logger.warning(
                "%s: regularizer %s not applied, plain map kept: %s",
                star_path,
                config.regularizer,
                fallback,
            )
        return ExtrecOutcome(result, applied, reason, fallback, dict(seconds), record)

    try:
        return _after_plain(job, plain, state, config, base, voxel, record, seconds, finish)
    except Exception as exc:  # a bug of ours must not cost RELION its map either
        logger.debug("after the plain map", exc_info=True)
        return finish(False, "internal error", one_line(f"{type(exc).__name__}: {exc}"))


def _after_plain(job, plain, state, config: ExtrecConfig, base, voxel, record, seconds, finish):
    """Run steps 2-4: decide, regularize in isolation, write the regularized map."""
    name = job.name
    if name is None or name.half is None:
        if not config.regularize_final:
            return finish(False, "final joined call (plain map unless --regularize-final)", None)
        apply, reason = True, "final joined call, --regularize-final"
    else:
        apply, reason = decide(config.schedule, state)
    if not apply:
        return finish(False, reason, None)
    if config.regularizer == "none":  # the identity: the plain map is the answer, no rewrite
        record["unchanged"] = True
        return finish(True, reason, None)

    box = job.original_image_size
    t_reg = time.monotonic()
    joint = builtin_needs_both_halves(config.regularizer) or _guard_needs_both_halves(config)
    volume = None

    def single(outbox) -> dict:
        regularizer = _staged(
            "setup failed: ", get_regularizer, config.regularizer, **config.regularizer_options
        )
        if regularizer.needs_both_halves:
            return {"needs_both_halves": True}
        context = _staged("setup failed: ", _context, job, state, config, base)
        out = np.asarray(regularizer.regularize(plain, context=context))
        problem = check_volume(out, box_size=box)
        if problem:
            raise StageError(problem)
        info: dict[str, Any] = {}
        if _use_guard(config, regularizer):
            guard_record: dict[str, Any] = {}
            out = _staged(
                "guard failed: ", _guarded, out, plain, job, context, config, guard_record
            )
            info["guard"] = guard_record.get("guard")
        outbox.save("volume", np.asarray(out, dtype=np.float64))
        return info

    def run_single():
        """``single`` in its own process; records its guard."""
        child = run_isolated(single, timeout_seconds=config.regularizer_timeout_seconds)
        seconds["regularize"] = time.monotonic() - t_reg
        if not child.failure and child.info.get("guard") is not None:
            record["guard"] = child.info["guard"]
        return child

    if not joint:
        child = run_single()
        if child.failure:
            return finish(False, reason, child.failure)
        if child.info.get("needs_both_halves"):
            joint = True
        else:
            volume = child.arrays.get("volume")
    if joint:
        if name is None or name.half is None:
            seconds["regularize"] = time.monotonic() - t_reg
            return finish(
                False, reason, "joint regularizer needs two half-maps; final call kept plain"
            )

        def compute_pair(map_1, map_2):
            def pair(outbox) -> dict:
                regularizer = _staged(
                    "setup failed: ",
                    get_regularizer,
                    config.regularizer,
                    **config.regularizer_options,
                )
                context = _staged("setup failed: ", _context, job, state, config, base)
                outs = list(_regularize_both(regularizer, map_1, map_2, context))
                for out in outs:
                    problem = check_volume(out, box_size=box)
                    if problem:
                        raise StageError(problem)
                info: dict[str, Any] = {}
                if _use_guard(config, regularizer):
                    plains = (map_1, map_2)
                    for h, (out, plain_h) in enumerate(zip(outs, plains, strict=True)):
                        guard_record: dict[str, Any] = {}
                        outs[h] = _staged(
                            "guard failed: ",
                            _guarded,
                            out,
                            plain_h,
                            job,
                            context,
                            config,
                            guard_record,
                            plains[1 - h],
                        )
                        info[f"half{h + 1}"] = {"guard": guard_record.get("guard")}
                outbox.save("map_1", np.asarray(outs[0], dtype=np.float64))
                outbox.save("map_2", np.asarray(outs[1], dtype=np.float64))
                return info

            got = run_isolated(pair, timeout_seconds=config.regularizer_timeout_seconds)
            if got.failure:
                logger.warning("joint regularizer failed: %s", got.failure)
                return None, None, got.failure, {}
            return got.arrays.get("map_1"), got.arrays.get("map_2"), None, got.info

        outcome = rendezvous(
            name,
            plain,
            compute_pair,
            identity=call_identity(
                config.regularizer,
                config.regularizer_options,
                config.mask_path or state.solvent_mask_name,
            ),
            inputs=[job.star_path, *_array_paths(job, base)],
            timeout_seconds=config.pair_timeout_seconds,
            regularizer_timeout_seconds=config.regularizer_timeout_seconds,
            base_dir=base,
            validate=lambda v: check_volume(v, box_size=box),
        )
        seconds["pair_wait"] = outcome.wait_seconds
        seconds["regularize"] = time.monotonic() - t_reg
        if outcome.regularized:
            volume = outcome.volume
            if outcome.info.get("guard") is not None:
                record["guard"] = outcome.info["guard"]
        elif (
            outcome.met
            or builtin_needs_both_halves(config.regularizer)
            or not _guard_needs_both_halves(config)
        ):
            return finish(False, reason, outcome.reason)
        else:
            # the halves were to meet only for the guard's cross-half support, and the other
            # half never came (e.g. RELION's --sequential_halves_recons): guarded on its own
            record["cross_half_support_missing"] = outcome.reason
            logger.warning(
                "%s: guard without cross-half support: %s", job.star_path, outcome.reason
            )
            child = run_single()
            if child.failure:
                return finish(False, reason, child.failure)
            volume = child.arrays.get("volume")

    problem = check_volume(volume, box_size=box) if volume is not None else "no map returned"
    if problem:
        return finish(False, reason, problem)
    assert volume is not None
    t_w = time.monotonic()
    as_written = np.asarray(volume, dtype=np.float32)
    if np.array_equal(as_written, np.asarray(plain, dtype=np.float32)):
        record["unchanged"] = True  # nothing to rewrite: the plain map on disk is the answer
    else:
        try:
            write_result(job, volume, voxel_size_angstrom=voxel, base_dir=base)
        except (ResultWriteError, ValueError) as exc:
            return finish(False, reason, f"writing the regularized map failed: {exc}")
        seconds["write_regularized"] = time.monotonic() - t_w
    if config.write_fsc_star and name is not None and name.half is not None:
        try:
            record["fsc_star_written"] = str(_write_fsc_star(job, base))
        except (OSError, ValueError) as exc:  # the map is RELION's answer; the STAR is extra
            record["fsc_star_error"] = one_line(exc)
            logger.warning("%s: --write-fsc-star: %s", job.star_path, one_line(exc))
    return finish(True, reason, None)


def _array_paths(job, base: Path) -> list[Path]:
    return [
        p if p.is_absolute() else base / p
        for p in (job.data_real_path, job.data_imag_path, job.weight_path)
    ]


def _guarded(
    volume,
    plain,
    job,
    context: RegularizationContext,
    config: ExtrecConfig,
    record,
    other_plain=None,
) -> np.ndarray:
    """Apply the guard with the job's FSC; the particle sphere (or mask) is the fit region.

    ``other_plain``: the other half's plain map (for the guard's cross-half support; without
    it the guard runs without cross-half support).
    """
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
    settings = config.guard_settings
    if settings.cross_half_support and other_plain is None:
        settings = replace(settings, cross_half_support=False)  # this half alone
    out, report = apply_guard(
        volume,
        plain,
        fsc=job.gold_standard_fsc,
        mask=region,
        settings=settings,
        other_plain=other_plain if settings.cross_half_support else None,
    )
    voxel = context.voxel_size_angstrom
    record["guard"] = {
        "method": config.guard_settings.method,
        "cutoff_shell": round(report.cutoff_shell, 3),
        "cutoff_resolution_angstrom": (
            round(n * voxel / report.cutoff_shell, 3) if voxel and report.cutoff_shell > 0 else None
        ),
        "power_removed_fraction": round(report.power_removed_fraction, 5),
        "scale": report.scale,
        "offset": report.offset,
    }
    if report.support_end_shell is not None:
        record["guard"]["support_end_shell"] = report.support_end_shell
    logger.info(
        "guard: cut-off shell %.2f, removed %.1f%% of the regularized power",
        report.cutoff_shell,
        100 * report.power_removed_fraction,
    )
    return out


def _write_fsc_star(job, base: Path) -> Path:
    """SIDESPLITTER-wrapper style FSC read-back (see ExtrecConfig.write_fsc_star)."""
    import pandas as pd

    from cryoprior.io.star import write_star_atomic

    if job.result_star_path is None:
        raise ValueError(f"{job.star_path}: no rlnExtReconsResultStarfile to write")
    if job.gold_standard_fsc is None:
        raise ValueError(f"{job.star_path}: no rlnGoldStandardFsc column to transform")
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
    try:
        write_star_atomic(target, {"": table})
    except OSError as exc:
        raise OSError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    return target
