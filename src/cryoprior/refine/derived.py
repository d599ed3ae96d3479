"""Results derived from finished runs, without a refinement of their own.

The post-processing arm (the paper's Figs. S11-S12: is the prior better inside the refinement
loop than applied once to plain RELION's final map?): the learned prior applied once to each
of plain RELION's final unfiltered half-maps, through cryoprior's guard (``prior``: guard v2
with cross-half support), guard v1 (``prior-v1``), guard v2 without cross-half support
(``prior-bounded``) and unguarded (``prior-noguard``), then validated against the truth exactly
as the runs are. A mode's own final map is unregularized (RELION makes the final half-maps
itself, and the hook leaves the final joined map plain), so its score shows what the mode did
to the poses only; that is why, in cases with repeats, every other mode's final half-maps get
the prior once too, unguarded and through the default guard (:data:`MODE_POSTPROCESS_VARIANTS`,
the paper's Fig. S11 d: deepEMhancer in the loop, then once more): "in the loop, then once"
against "RELION, then once" is the comparison that asks whether the loop's poses are worth it.
And the pose differences between modes: each mode's final poses against plain RELION's (the
same repeat), mean angular and shift difference under the case's symmetry.

Layout (beside the runs of :mod:`cryoprior.refine.run`)::

    runs/<mode key>/postprocess/<variant>/     half1.mrc, half2.mrc, validation.json,
                                               result.json (when complete)
    runs/<mode key>/pose_difference.json       against runs/<relion key of the same repeat>

Both are cached: a result is recomputed only when missing (for the post-processing arm also
when the prior's weights changed).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.io.json import read_json, write_json_atomic
from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion import find_relion_job_files
from cryoprior.refine.cases import MODES, ExperimentCase
from cryoprior.refine.run import (
    RESULT_VERSION,
    _validate_run,
    case_controls,
    ensure_dataset,
    prior_weights,
    rejudge_controls,
    run_key,
    validation_summary,
)
from cryoprior.regularizers.guard import HOOK_GUARD, GuardSettings
from cryoprior.regularizers.postprocess import postprocess_half_maps, prior_enhancer

__all__ = [
    "MODE_POSTPROCESS_VARIANTS",
    "POSTPROCESS_VARIANTS",
    "pose_difference",
    "postprocess_label",
    "postprocess_variants",
    "run_postprocess",
]

logger = logging.getLogger(__name__)

#: variant -> (what is applied, guard or None): the prior applied once to final half-maps,
#: named as the modes that run the same guard in the loop (:data:`~cryoprior.refine.cases.MODES`).
POSTPROCESS_VARIANTS: dict[str, tuple[str, GuardSettings | None]] = {
    "prior": ("prior + guard once", HOOK_GUARD),
    "prior-v1": ("prior + guard v1 once", GuardSettings(method="trailing")),
    "prior-bounded": (
        "prior + guard v2 without cross-half support once",
        GuardSettings(method="bounded"),
    ),
    "prior-noguard": ("prior once, no guard", None),
}

#: The variants applied to the final half-maps of every mode but plain RELION (which gets all
#: of :data:`POSTPROCESS_VARIANTS`), in cases with repeats: the paper's post-processing
#: (unguarded, as it ran deepEMhancer) and cryoprior's (through its default guard: what a user
#: of the hook would do with the final half-maps).
MODE_POSTPROCESS_VARIANTS: tuple[str, ...] = ("prior", "prior-noguard")


def postprocess_variants(case: ExperimentCase, mode: str) -> tuple[str, ...]:
    """Return the post-processing variants for ``mode``'s final half-maps in ``case``.

    Every variant for plain RELION; :data:`MODE_POSTPROCESS_VARIANTS` for the other modes of a
    case with repeats (where the report can judge "in the loop, then once" against "RELION,
    then once"); none for a pure-noise case or a mode the case does not run.

    >>> from cryoprior.simulate.config import SimulationConfig
    >>> case = ExperimentCase("c", "t", "isotropic", SimulationConfig(), repeats=3)
    >>> postprocess_variants(case, "relion"), postprocess_variants(case, "prior")
    (('prior', 'prior-v1', 'prior-bounded', 'prior-noguard'), ('prior', 'prior-noguard'))
    """
    if case.pure_noise or mode not in case.modes:
        return ()
    if mode == "relion":
        return tuple(POSTPROCESS_VARIANTS)
    return MODE_POSTPROCESS_VARIANTS if case.repeats > 1 else ()


def postprocess_label(mode: str, variant: str) -> str:
    """Return the row label of ``variant`` applied to ``mode``'s final half-maps.

    >>> postprocess_label("relion", "prior-noguard")
    'RELION, then prior once, no guard'
    """
    spec = MODES.get(mode)
    return f"{spec.label if spec else mode}, then {POSTPROCESS_VARIANTS[variant][0]}"


def _guard_record(variant: str) -> dict[str, Any] | None:
    """Return the guard settings of a variant as an arm's result records them (None: none)."""
    guard = POSTPROCESS_VARIANTS[variant][1]
    return None if guard is None else dataclasses.asdict(guard)


def _arm_judged(summary: dict[str, Any]) -> dict[str, Any]:
    """Return the numbers an arm's controls judge: its FSC against the truth only.

    RELION's final resolution is the source run's, not the arm's; and the gold-standard FSC of
    processed half-maps is no resolution estimate: the prior's knowledge makes the two halves
    agree beyond the data, and a guard, fed both halves' FSC, couples them.
    """
    return {k: v for k, v in summary.items() if k != "fsc_0143_angstrom"}


def _prior_enhancer(case: ExperimentCase, voxel_size_angstrom: float):
    """Return the hook's prior as a function of one half-map (the case's weights, diameter)."""
    from cryoprior.refine.cases import prior_weights_name

    return prior_enhancer(
        prior_weights_name(case, "prior") or "default",
        voxel_size_angstrom=voxel_size_angstrom,
        particle_diameter_angstrom=case.refine.particle_diameter_angstrom,
    )


def run_postprocess(
    case: ExperimentCase,
    root: str | Path,
    *,
    mode: str = "relion",
    enhance: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the post-processing arm of one repeat of ``case`` on ``mode``'s run (cached).

    Applies :func:`postprocess_variants` to the mode's final half-maps; returns variant ->
    result, {} when there is no variant or the mode's run has not finished. ``enhance``
    replaces the learned prior (tests); the weights are recorded and a change of them
    recomputes the arm. An arm to be made of a run without its maps here (imported from
    records) is left out.

    Each result (``runs/<mode key>/postprocess/<variant>/result.json``) holds ``variant``,
    ``label``, ``guard`` (the settings; a cached arm of other settings is recomputed),
    ``source_mode``, ``source_run`` (the run's key), ``prior_weights``, ``summary``
    (the runs' table numbers, from the validation of the processed half-maps), ``controls``
    (the case's controls on the arm's FSC against the truth: :func:`_arm_judged`), ``info``
    (guard) and ``seconds``.
    """
    variants = postprocess_variants(case, mode)
    if not variants:
        return {}
    root = Path(root)
    key = run_key(case, mode)
    source_dir = root / "runs" / key
    if read_json(source_dir / "result.json") is None:
        return {}
    weights = None if enhance is not None else prior_weights(case, "prior")
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for variant in variants:
        path = source_dir / "postprocess" / variant / "result.json"
        cached = read_json(path)
        if (
            cached is not None
            and cached.get("version") == RESULT_VERSION
            and cached.get("guard") == _guard_record(variant)
            and cached.get("prior_weights") == weights
            and cached.get("validation_window_voxels") == case.validation_window_voxels
        ):
            judged = _arm_judged(cached.get("summary") or {})
            results[variant] = rejudge_controls(path, cached, case, refine={}, summary=judged)
        else:
            todo.append(variant)
    if not todo:
        return results
    job_dir = source_dir / "Refine3D"
    if not job_dir.is_dir():  # a run imported from records (cryoprior.refine.records): no maps
        logger.info("%s: no maps here for the arms %s", source_dir, ", ".join(todo))
        return results
    dataset_dir = ensure_dataset(case.simulation, root)
    files = find_relion_job_files(job_dir)
    h1 = read_map(files.half_map_1, dtype=np.float64)
    h2 = read_map(files.half_map_2, dtype=np.float64)
    voxel = case.simulation.voxel_size_angstrom or 1.0
    started = time.monotonic()
    if enhance is None:
        enhance = _prior_enhancer(case, voxel)
    enhanced = (enhance(h1), enhance(h2))
    enhance_seconds = time.monotonic() - started
    for variant in todo:
        out_dir = source_dir / "postprocess" / variant
        guard = POSTPROCESS_VARIANTS[variant][1]
        p1, p2, info = postprocess_half_maps(h1, h2, enhance, guard=guard, enhanced=enhanced)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, volume in (("half1.mrc", p1), ("half2.mrc", p2)):
            write_map_atomic(out_dir / name, volume.astype(np.float32), voxel_size_angstrom=voxel)

        def processed(inputs, p1=p1, p2=p2):
            return dataclasses.replace(inputs, half_map_1=p1, half_map_2=p2, full_map=None)

        validation = _validate_run(case, dataset_dir, job_dir, out_dir, maps=processed)
        summary = validation_summary(validation)
        data = {
            "version": RESULT_VERSION,
            "case": case.name,
            "variant": variant,
            "label": postprocess_label(mode, variant),
            "guarded": guard is not None,
            "guard": _guard_record(variant),
            "source_mode": mode,
            "source_run": key,
            "prior_weights": weights,
            "validation_window_voxels": case.validation_window_voxels,
            "summary": summary,
            "controls": case_controls(case, {}, _arm_judged(summary), dataset_dir),
            "info": info,
            "seconds": enhance_seconds,
        }
        write_json_atomic(out_dir / "result.json", data)
        results[variant] = data
    return results


def pose_difference(case: ExperimentCase, mode: str, root: str | Path) -> dict[str, Any] | None:
    """Poses of ``mode``'s final iteration against plain RELION's, same repeat (cached).

    Writes and returns ``runs/<mode key>/pose_difference.json``: ``reference_run`` (the RELION
    run's key) and ``summary`` (:meth:`~cryoprior.validate.poses.PoseErrors.summary` of the
    mode's poses against RELION's under the case's symmetry: angular, viewing-direction and
    shift differences). None for ``relion`` itself, a pure-noise case, or when either run has
    not finished or has no RELION output here (imported from records).
    """
    if mode == "relion" or case.pure_noise or "relion" not in case.modes:
        return None
    root = Path(root)
    mode_dir = root / "runs" / run_key(case, mode)
    reference_key = run_key(case, "relion")
    path = mode_dir / "pose_difference.json"
    cached = read_json(path)
    if cached is not None and cached.get("reference_run") == reference_key:
        return cached
    reference_dir = root / "runs" / reference_key
    if (
        read_json(mode_dir / "result.json") is None
        or read_json(reference_dir / "result.json") is None
    ):
        return None
    if not (mode_dir / "Refine3D").is_dir() or not (reference_dir / "Refine3D").is_dir():
        return None  # a run imported from records (cryoprior.refine.records): no poses here
    from cryoprior.validate.job import load_validation_inputs
    from cryoprior.validate.poses import pose_errors

    poses = load_validation_inputs(mode_dir / "Refine3D").inputs.refined_poses
    reference = load_validation_inputs(reference_dir / "Refine3D").inputs.refined_poses
    if poses is None or reference is None:
        return None
    errors = pose_errors(poses, reference, symmetry=case.refine.symmetry)
    data = {"mode": mode, "reference_run": reference_key, "summary": errors.summary()}
    write_json_atomic(path, data)
    return data
