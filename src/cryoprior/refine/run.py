"""Experiments' shell: run folders, RELION, validation and the cache, per case and mode.

The vocabulary (cases, modes, options, keys) is :mod:`cryoprior.refine.cases`.
:func:`run_case` simulates a case's dataset (once per distinct configuration), refines it
with real ``relion_refine_mpi`` in each mode (the hook ``cryoprior-extrec --regularizer
...``), validates every result against the ground truth and writes ``result.json`` per run.

Layout under the experiment folder (``root``)::

    datasets/<key>/        simulate_dataset() output (+ dataset.json when complete)
    runs/<key>/            one refinement: links to the dataset, Refine3D/run*, run.json,
                           validation/validation.json, result.json (when complete)

Keys (:func:`~cryoprior.refine.cases.dataset_key`, :func:`run_key`) are hashes of everything
that determines the result, so a rerun does only what changed, two cases with the same
configuration share their runs, and a run that was interrupted is resumed with RELION's
``--continue`` from its last iteration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryoprior.io.hook_log import read_hook_log
from cryoprior.io.json import read_json, write_json_atomic
from cryoprior.refine.cases import (
    MODES,
    ExperimentCase,
    RunResult,
    case_to_dict,
    dataset_key,
    hook_command,
    prior_weights_name,
    random_half_sets,
    repeat_cases,
    run_key_with_weights,
)
from cryoprior.refine.relion import (
    AutoRefineSettings,
    RefineProgress,
    read_progress,
    refine_failure_message,
    run_auto_refine,
)
from cryoprior.simulate.config import SimulationConfig
from cryoprior.simulate.dataset import simulate_dataset
from cryoprior.simulate.models import resolve_model_path
from cryoprior.validate.job import load_validation_inputs
from cryoprior.validate.summary import ValidationInputs, ValidationSettings, validate_maps

__all__ = [
    "RESULT_VERSION",
    "cached_result",
    "case_controls",
    "cutoff_reference",
    "ensure_dataset",
    "extrec_executable",
    "prior_weights",
    "rejudge_controls",
    "run_case",
    "run_key",
    "run_mode",
    "stopped_at_iteration_cap",
    "validation_summary",
    "write_manifest",
]

logger = logging.getLogger(__name__)

RESULT_VERSION = 1


def prior_weights(case: ExperimentCase, mode: str) -> dict | None:
    """Return the prior weights a mode's hook loads, as {'file', 'sha256'}.

    None for modes without a prior. The weights are ``--option weights=...`` of the case's
    extra hook arguments, else the shipped default (resolved, so that a new default gives new
    keys; :func:`~cryoprior.refine.cases.prior_weights_name`). Reads the weights file.
    """
    name = prior_weights_name(case, mode)
    if name is None:
        return None
    from cryoprior.prior.infer import weights_path  # torch: only for prior modes

    path = weights_path(name)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def run_key(case: ExperimentCase, mode: str) -> str:
    """Cache key of one refinement (:func:`~cryoprior.refine.cases.run_key_with_weights`).

    The key covers the dataset, the refinement options, the mode's hook arguments, and the
    prior's weights (by content, read here) for the prior modes.

    The validation window is not in it: validation is redone from the maps when it changes.
    """
    return run_key_with_weights(case, mode, prior_weights(case, mode))


def extrec_executable() -> str:
    """Absolute path of ``cryoprior-extrec`` (beside this Python, else on PATH)."""
    beside = Path(sys.executable).parent / "cryoprior-extrec"
    if beside.exists():
        return str(beside)
    found = shutil.which("cryoprior-extrec")
    if found is None:
        raise FileNotFoundError("cryoprior-extrec is not installed (pip install the package)")
    return found


def _dataset_folder(simulation: SimulationConfig, root: str | Path) -> Path:
    """``root/datasets/<key>``: where a simulation's dataset lives."""
    return Path(root) / "datasets" / dataset_key(simulation)


def ensure_dataset(simulation: SimulationConfig, root: str | Path) -> Path:
    """Simulate the dataset into ``root/datasets/<key>`` unless it is already complete."""
    folder = _dataset_folder(simulation, root)
    marker = folder / "dataset.json"
    if read_json(marker) is not None:
        return folder
    logger.info("simulating dataset %s", folder.name)
    start = time.monotonic()
    result = simulate_dataset(simulation, folder, overwrite=True)
    write_json_atomic(
        marker,
        {
            "key": folder.name,
            "config": dataclasses.asdict(simulation),
            "noise_sd": result.noise_sd,
            "signal_sd": result.signal_sd,
            "n_particles": result.n_particles,
            "n_signal": result.n_signal,
            "box_size": result.box_size,
            "voxel_size_angstrom": result.voxel_size_angstrom,
            "symmetry": result.symmetry,
            "wall_seconds": time.monotonic() - start,
        },
    )
    return folder


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    link.symlink_to(os.path.relpath(target, link.parent))


def _write_split_particles(source: Path, target: Path, *, seed: int) -> None:
    """Copy the particles STAR with an explicit random half split (``rlnRandomSubset``)."""
    if target.is_file():
        return
    from cryoprior.io.star import read_star, write_star_atomic

    blocks = read_star(source)
    particles = blocks["particles"].copy()
    particles["rlnRandomSubset"] = random_half_sets(len(particles), seed=seed)
    write_star_atomic(target, {**blocks, "particles": particles})


def _prepare_run_dir(case: ExperimentCase, mode: str, dataset_dir: Path, run_dir: Path) -> str:
    """Links to the dataset's particles; returns the initial reference path (relative).

    With ``half_split_seed`` the particles STAR is a copy carrying that split instead.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if case.refine.half_split_seed is None:
        _link(dataset_dir / "particles.star", run_dir / "particles.star")
    else:
        _write_split_particles(
            dataset_dir / "particles.star",
            run_dir / "particles.star",
            seed=case.refine.half_split_seed,
        )
    _link(dataset_dir / "Particles", run_dir / "Particles")
    if case.refine.initial_reference == "dataset":
        _link(dataset_dir / "initial_reference.mrc", run_dir / "initial_reference.mrc")
        return "initial_reference.mrc"
    ref = Path(case.refine.initial_reference)
    if not ref.is_file():
        raise FileNotFoundError(f"{ref}: initial reference of case {case.name} does not exist")
    _link(ref.resolve(), run_dir / "initial_reference_given.mrc")
    return "initial_reference_given.mrc"


def _origin_angstrom(dataset_dir: Path) -> tuple[float, float, float]:
    """Return (x, y, z) of voxel (0,0,0) in the model's frame.

    The simulation put the model's centre of mass at voxel N//2.
    """
    derived = (read_json(dataset_dir / "simulation.json") or {}).get("derived") or {}
    com = (derived.get("source") or {}).get("centre_of_mass_angstrom")
    if com is None or "box_size" not in derived:
        return (0.0, 0.0, 0.0)
    half = (derived["box_size"] // 2) * derived["voxel_size_angstrom"]
    return tuple(float(c) - half for c in com)


def _validate_run(
    case: ExperimentCase,
    dataset_dir: Path,
    job_dir: Path,
    out_dir: Path,
    *,
    maps: Callable[[ValidationInputs], ValidationInputs] | None = None,
) -> dict[str, Any]:
    """Validate the run's final maps against the truth; writes validation.json; returns it.

    ``maps``, when given, replaces what was read before the validation (the post-processing
    arm validates processed half-maps with everything else of the run).
    """
    model_path = None
    if case.simulation.map_path is None and not case.pure_noise:
        model_path, _ = resolve_model_path(case.simulation.model)
    loaded = load_validation_inputs(
        job_dir,
        truth_map=dataset_dir / "true_map.mrc",
        truth_star=None if case.pure_noise else dataset_dir / "ground_truth.star",
    )
    inputs = loaded.inputs
    if model_path is not None:
        from cryoprior.io.atomic_model import read_atomic_model
        from cryoprior.io.model_map import model_to_map

        origin = _origin_angstrom(dataset_dir)
        inputs = dataclasses.replace(
            inputs,
            model=read_atomic_model(model_path),
            model_map=model_to_map(
                model_path,
                box_size=inputs.half_map_1.shape[-1],
                voxel_size_angstrom=inputs.voxel_size_angstrom,
                origin_angstrom=origin,
            ),
            origin_angstrom=origin,
        )
    if maps is not None:
        inputs = maps(inputs)
    settings = ValidationSettings(
        symmetry=case.refine.symmetry,
        local_window_voxels=case.validation_window_voxels,
        fscq_window_voxels=case.validation_window_voxels,
        seed=case.refine.random_seed,
    )
    report = validate_maps(inputs, settings)
    data = report.to_dict(per_atom=False)
    data["inputs"] = loaded.paths
    write_json_atomic(out_dir / "validation.json", data)
    return data


def validation_summary(validation: dict[str, Any]) -> dict[str, Any]:
    """Return the numbers of the paper-style table, from a validation.json."""
    gold = validation["gold_standard_fsc"]
    out: dict[str, Any] = {
        "fsc_0143_angstrom": gold.get("resolution_0143_angstrom"),
        "fsc_05_angstrom": gold.get("resolution_05_angstrom"),
        "local_resolution_median_angstrom": validation["local_resolution"].get("median_angstrom"),
    }
    truth = validation.get("truth")
    if truth:
        full = truth["full_map"]
        out["truth_fsc_05_angstrom"] = full.get("resolution_05_angstrom")
        out["truth_fsc_0143_angstrom"] = full.get("resolution_0143_angstrom")
        out["truth_correlation"] = truth.get("correlation_full_map")
    q = validation.get("q_score")
    if q:
        out["q_score_mean"] = q.get("mean")
    fq = validation.get("fsc_q")
    if fq:
        out["fsc_q_mean_angstrom"] = fq.get("mean_angstrom")
        out["fsc_qr_mean"] = fq.get("mean_normalised")
    pose = validation.get("pose_errors")
    if pose and pose.get("angular_error_degrees"):
        out["angular_error_mean_degrees"] = pose["angular_error_degrees"].get("mean")
        out["angular_error_median_degrees"] = pose["angular_error_degrees"].get("median")
        out["shift_error_median_angstrom"] = pose["shift_error_angstrom"].get("median")
    return out


def cutoff_reference(case: ExperimentCase, dataset_dir: str | Path) -> float | None:
    """Return the cut-off control's reference of a case's dataset (cached in its folder).

    :func:`cryoprior.validate.controls.cutoff_reference_angstrom` of the dataset's true map
    with the particles' low-pass (:func:`cryoprior.simulate.images.paper_lowpass` in 3D) and the
    validation's mask (:func:`cryoprior.validate.summary.map_mask` of the truth); written to
    ``cutoff_reference.json``. None when the case has no cut-off or its particles no low-pass,
    or when neither the true map nor the cached reference is in the folder.
    """
    sim = case.simulation
    if case.cutoff_angstrom is None or sim.lowpass_resolution_angstrom is None:
        return None
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / "cutoff_reference.json"
    parameters = {
        "lowpass_resolution_angstrom": sim.lowpass_resolution_angstrom,
        "lowpass_width_frequency": sim.lowpass_width_frequency,
        "mask": "validation mask of the truth (map_mask)",
    }
    cached = read_json(path)
    if cached is not None and cached.get("parameters") == parameters:
        return cached["reference_angstrom"]
    if not (dataset_dir / "true_map.mrc").is_file():
        return None  # the dataset is not here (records only)
    import numpy as np

    from cryoprior.io.mrc import read_map
    from cryoprior.simulate.images import paper_lowpass
    from cryoprior.validate.controls import cutoff_reference_angstrom
    from cryoprior.validate.summary import map_mask

    truth = read_map(dataset_dir / "true_map.mrc", dtype=np.float64)
    voxel = float(sim.voxel_size_angstrom or 1.0)
    lowpass = paper_lowpass(
        truth.shape[0],
        resolution_angstrom=sim.lowpass_resolution_angstrom,
        voxel_size_angstrom=voxel,
        width_frequency=sim.lowpass_width_frequency,
        ndim=3,
    )
    value = cutoff_reference_angstrom(
        truth, lowpass, mask=map_mask(truth), voxel_size_angstrom=voxel
    )
    write_json_atomic(path, {"parameters": parameters, "reference_angstrom": value})
    return value


def case_controls(
    case: ExperimentCase, refine: dict, summary: dict, dataset_dir: str | Path | None = None
) -> dict[str, Any]:
    """Decide the case's controls (:mod:`cryoprior.validate.controls`) for one run.

    Parameters
    ----------
    case
        The case; its ``cutoff_angstrom`` and ``pure_noise`` say which controls apply.
    refine
        The run's refinement record (``result.json``'s ``refine``).
    summary
        The run's table numbers (``result.json``'s ``summary``).
    dataset_dir
        The case's dataset folder: the cut-off control counts from its reference
        (:func:`cutoff_reference`); without it, from the nominal cut-off.

    Returns
    -------
    dict
        Per control (``cutoff``, ``pure_noise``; empty when none applies): pass/fail, the
        numbers it was decided on and the rule.
    """
    from cryoprior.validate.controls import cutoff_control, pure_noise_control

    controls: dict[str, Any] = {}
    if case.cutoff_angstrom is not None:
        controls["cutoff"] = cutoff_control(
            cutoff_angstrom=case.cutoff_angstrom,
            box_size=case.simulation.box_size,
            voxel_size_angstrom=case.simulation.voxel_size_angstrom,
            relion_final_angstrom=refine.get("final_resolution_angstrom"),
            gold_standard_fsc_0143_angstrom=summary.get("fsc_0143_angstrom"),
            truth_fsc_0143_angstrom=summary.get("truth_fsc_0143_angstrom"),
            reference_angstrom=(
                None if dataset_dir is None else cutoff_reference(case, dataset_dir)
            ),
        ).to_dict()
    if case.pure_noise:
        controls["pure_noise"] = pure_noise_control(
            ini_high_angstrom=case.refine.ini_high_angstrom,
            relion_final_angstrom=refine.get("final_resolution_angstrom"),
            reached_local_searches=refine.get("reached_local_searches"),
            regularized_calls=refine.get("regularized_calls"),
            truth_correlation=summary.get("truth_correlation"),
            gold_standard_fsc_0143_angstrom=summary.get("fsc_0143_angstrom"),
            box_size=case.simulation.box_size,
            voxel_size_angstrom=case.simulation.voxel_size_angstrom,
        ).to_dict()
    return controls


def cached_result(case: ExperimentCase, mode: str, root: str | Path) -> RunResult | None:
    """Return the finished, validated run of ``case`` in ``mode`` under ``root``, or None."""
    return _cached_in(Path(root) / "runs" / run_key(case, mode), case, mode)


def _cached_in(run_dir: Path, case: ExperimentCase, mode: str) -> RunResult | None:
    cached = read_json(run_dir / "result.json")
    if cached is None or cached.get("version") != RESULT_VERSION:
        return None
    if cached.get("validation_window_voxels") != case.validation_window_voxels:
        return None
    cached = rejudge_controls(run_dir / "result.json", cached, case)
    return RunResult(case.name, mode, run_dir, cached, cached=True)


def rejudge_controls(
    path: Path,
    result: dict[str, Any],
    case: ExperimentCase,
    refine: dict | None = None,
    summary: dict | None = None,
) -> dict[str, Any]:
    """Decide a cached result's controls again with today's rules; rewrite it if they changed.

    A control is a judgment of the stored numbers, not a measurement: a corrected rule applies
    to cached runs without running them again. ``path`` is the ``result.json`` inside
    ``<root>/runs/<key>/`` (or below it, as the post-processing arms); the dataset is the
    case's under ``<root>/datasets``. ``refine``, ``summary``: the refinement record and the
    numbers judged (default the result's own; the post-processing arms pass theirs).
    """
    root = next((p.parent for p in path.parents if p.name == "runs"), None)
    dataset_dir = None if root is None else _dataset_folder(case.simulation, root)
    if dataset_dir is not None and not any(
        (dataset_dir / name).is_file() for name in ("true_map.mrc", "cutoff_reference.json")
    ):
        dataset_dir = None
    if (
        root is not None
        and case.cutoff_angstrom is not None
        and case.simulation.lowpass_resolution_angstrom is not None
        and result.get("controls")
        and (dataset_dir is None or cutoff_reference(case, dataset_dir) is None)
    ):
        # a run imported from records (:mod:`cryoprior.refine.records`) without its dataset:
        # the reference is not here to judge by, so the stored judgment stands
        return result
    if refine is None:
        refine = result.get("refine") or {}
    if summary is None:
        summary = result.get("summary") or {}
    controls = case_controls(case, refine, summary, dataset_dir)
    if controls == result.get("controls"):
        return result
    logger.info("%s: controls judged again with today's rules", path)
    result = {**result, "controls": controls}
    write_json_atomic(path, result)
    return result


def stopped_at_iteration_cap(
    returncode: int | None, has_final_map: bool, iterations: int | None, cap: int | None
) -> bool:
    """Whether RELION ended a capped auto-refine at its ``--auto_iter_max`` without converging.

    RELION 3.1 then exits 0 after the cap's iteration and writes no final joined iteration (no
    ``_class001.mrc``, no ``_unfil`` half-maps): the run is complete as asked, and its last
    iteration's half-maps are its result (:func:`cryoprior.io.relion.find_relion_job_files`).

    >>> stopped_at_iteration_cap(0, False, 12, 12), stopped_at_iteration_cap(0, True, 12, 12)
    (True, False)
    >>> stopped_at_iteration_cap(0, False, 7, 12), stopped_at_iteration_cap(1, False, 12, 12)
    (False, False)
    """
    return (
        returncode == 0
        and not has_final_map
        and cap is not None
        and iterations is not None
        and iterations >= cap
    )


def run_mode(
    case: ExperimentCase,
    mode: str,
    root: str | Path,
    *,
    progress: Callable[[str, str, RefineProgress], None] | None = None,
    hook_executable: str | None = None,
) -> RunResult:
    """Refine ``case`` in ``mode`` (resuming an interrupted run), validate, write result.json.

    A run whose ``result.json`` exists is returned as is (``cached=True``). ``result.json``
    holds: ``case`` (the case dict), ``mode``, ``key``, ``refine`` (exit status, iterations,
    RELION's final resolution, wall time, hook calls, regularized calls, fallbacks, whether
    and when local searches began), ``summary`` (the table's numbers), ``controls``.
    """
    root = Path(root)
    weights = prior_weights(case, mode)
    key = run_key_with_weights(case, mode, weights)
    run_dir = root / "runs" / key
    result_path = run_dir / "result.json"
    cached = _cached_in(run_dir, case, mode)
    if cached is not None:
        return cached
    dataset_dir = ensure_dataset(case.simulation, root)
    reference = _prepare_run_dir(case, mode, dataset_dir, run_dir)
    r = case.refine
    settings = AutoRefineSettings(
        particles_star="particles.star",
        reference_map=reference,
        output_root="Refine3D/run",
        **r.settings_fields(),
    )
    hook = hook_command(mode, hook_executable or extrec_executable(), r.extra_hook_arguments)
    job_dir = run_dir / "Refine3D"
    refine_record = read_json(run_dir / "refine.json") or {}
    if not refine_record.get("finished") and stopped_at_iteration_cap(
        refine_record.get("returncode"), False, refine_record.get("iterations"), r.auto_iter_max
    ):
        # recorded before a cap counted as finished: never --continue it (RELION runs on past
        # the cap then)
        state = read_progress(run_dir / settings.output_root)
        refine_record = {
            **refine_record,
            "finished": True,
            "stopped_at_iteration_cap": True,
            "final_resolution_angstrom": state.resolution_angstrom,
        }
        write_json_atomic(run_dir / "refine.json", refine_record)
    if not refine_record.get("finished"):
        write_json_atomic(
            run_dir / "run.json",
            {"case": case_to_dict(case), "mode": mode, "key": key, "hook": hook},
        )
        previous = read_json(run_dir / "refine.json") or {}
        # a capped run is never continued: RELION's --continue does not keep --auto_iter_max
        # (a continued capped run went on past it); an interrupted one starts again
        resume = r.auto_iter_max is None
        if not resume and job_dir.exists():
            shutil.rmtree(job_dir)
            previous = {}
        callback = None
        if progress is not None:

            def callback(p: RefineProgress) -> None:
                progress(case.name, mode, p)

        started = time.monotonic()
        try:
            result = run_auto_refine(
                settings,
                workdir=run_dir,
                hook_command=hook,
                timeout_seconds=r.timeout_seconds,
                resume=resume,
                progress=callback,
            )
        except BaseException:
            # interrupted or timed out: keep the time spent, so a resumed run reports it all
            spent = previous.get("wall_seconds", 0.0) + time.monotonic() - started
            write_json_atomic(run_dir / "refine.json", {"finished": False, "wall_seconds": spent})
            raise
        records = read_hook_log(job_dir)
        local_iterations = [
            int(rec["iteration"])
            for rec in records
            if rec.get("local_searches") is True
            and rec.get("half") is not None
            and rec.get("iteration") is not None
        ]
        state = read_progress(run_dir / settings.output_root)
        capped = stopped_at_iteration_cap(
            result.returncode, result.final_map is not None, result.iterations, r.auto_iter_max
        )
        refine_record = {
            "returncode": result.returncode,
            "finished": result.returncode == 0 and (result.final_map is not None or capped),
            "stopped_at_iteration_cap": capped,
            "output_root": os.path.relpath(result.output_root, run_dir),
            "iterations": result.iterations,
            # at the cap RELION writes no final iteration: its last estimate stands for it
            "final_resolution_angstrom": (
                state.resolution_angstrom if capped else result.final_resolution_angstrom
            ),
            "wall_seconds": previous.get("wall_seconds", 0.0) + result.wall_seconds,
            "hook_calls": len(records),
            "regularized_calls": sum(bool(rec.get("applied")) for rec in records),
            "fallbacks": sum(bool(rec.get("fallback")) for rec in records),
            "reached_local_searches": bool(state.local_searches) or bool(local_iterations),
            "first_local_iteration": min(local_iterations) if local_iterations else None,
            "hook_seconds": float(
                sum((rec.get("seconds") or {}).get("total", 0.0) for rec in records)
            ),
            "prior_weights": weights,
        }
        write_json_atomic(run_dir / "refine.json", refine_record)
        if not refine_record["finished"]:
            raise RuntimeError(
                f"{case.name}/{mode}: relion_refine_mpi exit {result.returncode}: "
                f"{refine_failure_message(result.output_root)}"
            )
    validation = _validate_run(case, dataset_dir, job_dir, run_dir / "validation")
    summary = validation_summary(validation)
    data = {
        "version": RESULT_VERSION,
        "case": case_to_dict(case),
        "mode": mode,
        "key": key,
        "dataset": dataset_dir.name,
        "validation_window_voxels": case.validation_window_voxels,
        "refine": refine_record,
        "summary": summary,
        "controls": case_controls(case, refine_record, summary, dataset_dir),
    }
    write_json_atomic(result_path, data)
    return RunResult(case.name, mode, run_dir, data, cached=False)


def run_case(
    case: ExperimentCase,
    root: str | Path,
    *,
    modes: Sequence[str] | None = None,
    progress: Callable[[str, str, RefineProgress], None] | None = None,
) -> list[RunResult]:
    """Every repeat of every mode of ``case``, one after the other.

    Cached runs are returned at once.
    """
    return [
        run_mode(repeat, mode, root, progress=progress)
        for repeat in repeat_cases(case)
        for mode in (modes if modes is not None else case.modes)
    ]


def write_manifest(
    root: str | Path,
    cases: Sequence[ExperimentCase],
    *,
    suite: str,
    scale: str = "",
    machine: str = "",
) -> Path:
    """Write ``root/benchmark.json``: the cases, the run folder of each mode, the modes.

    ``runs`` names the run folder of each mode's first repeat; ``repeats`` those of every
    repeat (:func:`~cryoprior.refine.cases.repeat_cases`), first included; ``prior_weights``
    the weights the case's prior runs and post-processing arms use now (:func:`prior_weights`;
    the report names an arm made with other weights). The report (``cryoprior report``) reads
    only this file and the run folders it names.
    """
    root = Path(root)
    data = {
        "suite": suite,
        "scale": scale,
        "machine": machine,
        "modes": {
            name: {
                "label": m.label,
                "hook_arguments": list(m.hook_arguments),
                "description": m.description,
            }
            for name, m in MODES.items()
        },
        "cases": [
            {
                "case": case_to_dict(case),
                "runs": {mode: f"runs/{run_key(case, mode)}" for mode in case.modes},
                "repeats": {
                    mode: [f"runs/{run_key(r, mode)}" for r in repeat_cases(case)]
                    for mode in case.modes
                },
                "prior_weights": prior_weights(case, "prior"),
            }
            for case in cases
        ],
    }
    path = root / "benchmark.json"
    write_json_atomic(path, data)
    return path
