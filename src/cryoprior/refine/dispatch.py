"""Running the runs of an experiment: one after another here, or in parallel through submitit.

A run is one case refined in one mode (:func:`cryoprior.refine.run.run_mode`). Runs share
nothing but their dataset, so they can go to a cluster: :func:`run_with_submitit` simulates the
missing datasets here first (so that no two jobs write one dataset), skips runs that are cached,
and submits the others as independent jobs through `submitit <https://github.com/facebookincubator/submitit>`_
(Slurm when the machine has it, else local processes). Each job runs the same ``run_mode`` as
the sequential path, in the same cache, so the two paths give the same folders and a run
interrupted on the cluster resumes locally and vice versa.

submitit is an optional dependency (``pip install cryoprior[cluster]``); nothing here imports it
until a cluster run is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryoprior.refine.cases import ExperimentCase, RunResult
from cryoprior.refine.run import cached_result, ensure_dataset, run_mode

__all__ = ["ClusterSettings", "RunOutcome", "run_with_submitit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how the jobs run.

    cluster: submitit's cluster name: ``None`` (auto: Slurm when ``sbatch`` is there, else
        local processes), ``"slurm"`` or ``"local"``.
    folder: submitit's folder for job scripts and logs (default: ``ROOT/submitit``).
    timeout_minutes: wall-time limit of each job.
    slurm_partition: Slurm partition (None: the cluster's default).
    extra_parameters: further ``executor.update_parameters`` keywords
        (e.g. ``{"slurm_account": "abc"}``).
    """

    cluster: str | None = None
    folder: Path | None = None
    timeout_minutes: int = 120
    slurm_partition: str | None = None
    extra_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    """One (case, mode): its result, or the error that ended its job."""

    case: str
    mode: str
    result: RunResult | None
    error: str | None = None


def _cpus(case: ExperimentCase) -> int:
    return max(1, case.refine.mpi_ranks * max(1, case.refine.threads))


def run_with_submitit(
    tasks: Sequence[tuple[ExperimentCase, str]],
    root: str | Path,
    settings: ClusterSettings = ClusterSettings(),
    *,
    run: Callable[[ExperimentCase, str, Path], RunResult] = run_mode,
) -> Iterator[RunOutcome]:
    """Run ``tasks`` ((case, mode) pairs) as submitit jobs; yield their outcomes.

    Cached runs come first, then the jobs in the order they were submitted, each when it has
    ended. Cached runs are yielded at once without a job. ``run`` is what a job calls (default
    :func:`~cryoprior.refine.run.run_mode`; it must be picklable). A failed job yields
    its error and does not stop the others. Raises ImportError when submitit is missing.
    """
    try:
        import submitit
    except ImportError as exc:
        raise ImportError(
            "parallel runs need submitit: pip install 'cryoprior[cluster]' (or pip install "
            "submitit)"
        ) from exc
    root = Path(root)
    pending: list[tuple[ExperimentCase, str]] = []
    for case, mode in tasks:
        cached = cached_result(case, mode, root)
        if cached is not None:
            yield RunOutcome(case.name, mode, cached)
        else:
            pending.append((case, mode))
    if not pending:
        return
    for simulation in {case.simulation: None for case, _ in pending}:
        ensure_dataset(simulation, root)
    executor = submitit.AutoExecutor(
        folder=str(settings.folder or root / "submitit"), cluster=settings.cluster
    )
    params: dict[str, Any] = {"timeout_min": int(settings.timeout_minutes)}
    if settings.slurm_partition and executor.cluster == "slurm":
        params["slurm_partition"] = settings.slurm_partition
    params.update(settings.extra_parameters)
    jobs = []
    for case, mode in pending:
        executor.update_parameters(
            **params, cpus_per_task=_cpus(case), name=f"cryoprior-{case.name}-{mode}"
        )
        job = executor.submit(run, case, mode, root)
        logger.info(
            "submitted %s / %s as job %s (%s)", case.name, mode, job.job_id, executor.cluster
        )
        jobs.append((case, mode, job))
    for case, mode, job in jobs:
        try:
            result = job.result()
        except Exception as exc:  # a failed job is reported, the others go on
            yield RunOutcome(case.name, mode, None, f"{type(exc).__name__}: {exc}")
        else:
            yield RunOutcome(case.name, mode, result)
