"""When to regularize: the iteration state RELION is in, and the user's rule.

RELION's job STAR carries no iteration state. During the call of iteration N only files of
iteration N-1 exist, so the state is read from that iteration's sampling, optimiser and half-1
model STAR files (:func:`cryoprior.io.relion.find_iteration_files`). Local searches are on in
iteration N when ``rlnHealpixOrder(N-1) >= rlnAutoLocalSearchesHealpixOrder`` or the model says
``rlnOrientationalPriorMode == 1`` (RELION's own rule, ``MlOptimiser::updateAngularSampling``);
this lags by one iteration at the switch, which RELION's standard output
(:func:`cryoprior.io.relion.read_run_out`) can close: its line ``Auto-refine: Angular step= X
degrees; local searches= true`` is printed before iteration N's expectation, so a "true" there
settles it (sampling only ever gets finer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryoprior.errors import InputFileError
from cryoprior.io.relion import (
    find_iteration_files,
    read_model_star,
    read_optimiser_star,
    read_run_out,
    read_sampling_star,
    run_out_path,
)
from cryoprior.io.relion_extrec import ExternalReconstructName

__all__ = ["IterationState", "Schedule", "decide", "parse_schedule", "read_iteration_state"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """A rule for when to regularize.

    kind: ``always``, ``never``, ``local-searches``, ``resolution`` (apply when the current
    resolution is at or below ``max_resolution_angstrom``) or ``iteration`` (apply from
    iteration ``first_iteration`` on).
    """

    kind: str
    max_resolution_angstrom: float | None = None
    first_iteration: int | None = None

    def __str__(self) -> str:
        """Return the rule as the command line spells it (``resolution<=8``)."""
        if self.kind == "resolution":
            return f"resolution<={self.max_resolution_angstrom:g}"
        if self.kind == "iteration":
            return f"iteration>={self.first_iteration}"
        return self.kind


def parse_schedule(text: str) -> Schedule:
    """Parse ``always``, ``never``, ``local-searches``, ``resolution<=X`` or ``iteration>=N``."""
    t = text.strip().lower().replace(" ", "")
    if t in ("always", "never", "local-searches"):
        return Schedule(t)
    try:
        if t.startswith("resolution<="):
            angstrom = float(t[len("resolution<=") :])
            if angstrom > 0 and angstrom < float("inf"):
                return Schedule("resolution", max_resolution_angstrom=angstrom)
        elif t.startswith("iteration>="):
            iteration = int(t[len("iteration>=") :])
            if iteration > 0:
                return Schedule("iteration", first_iteration=iteration)
    except ValueError:
        pass
    raise ValueError(
        f"unknown schedule {text!r}: use always, never, local-searches, resolution<=X (Angstrom) "
        "or iteration>=N"
    )


@dataclass(frozen=True)
class IterationState:
    """What is known about the refinement at this call.

    Attributes
    ----------
    iteration: N (from the file name), or None.
    half: 1, 2, or None (final joined call / classification).
    previous_healpix_order: ``rlnHealpixOrder`` of iteration N-1, or None.
    auto_local_searches_healpix_order: ``rlnAutoLocalSearchesHealpixOrder``, or None.
    orientational_prior_mode: of iteration N-1's model (1 = local searches), or None.
    current_resolution_angstrom: of iteration N-1's half-1 model, or None.
    pixel_size_angstrom: from the model of N-1, or None.
    particle_diameter_angstrom: from the optimiser of N-1, or None.
    solvent_mask_name: from the optimiser of N-1, or None.
    run_out_local_searches: what RELION's standard output last said (True/False), or None.
    """

    iteration: int | None = None
    half: int | None = None
    previous_healpix_order: int | None = None
    auto_local_searches_healpix_order: int | None = None
    orientational_prior_mode: int | None = None
    current_resolution_angstrom: float | None = None
    pixel_size_angstrom: float | None = None
    particle_diameter_angstrom: float | None = None
    solvent_mask_name: str | None = None
    run_out_local_searches: bool | None = None

    @property
    def local_searches(self) -> bool | None:
        """Whether iteration N runs local angular searches (None: cannot tell)."""
        votes = []
        if (
            self.previous_healpix_order is not None
            and self.auto_local_searches_healpix_order is not None
        ):
            votes.append(self.previous_healpix_order >= self.auto_local_searches_healpix_order)
        if self.orientational_prior_mode is not None:
            votes.append(self.orientational_prior_mode == 1)
        if self.run_out_local_searches is not None:
            votes.append(self.run_out_local_searches)
        if not votes:
            return None
        return any(votes)


def read_iteration_state(
    name: ExternalReconstructName, *, base_dir: str | Path = "."
) -> IterationState:
    """Collect the state of the call named ``name`` from RELION's files of iteration N-1.

    Missing or unreadable files leave the corresponding fields None (logged at debug level):
    the decision then errs on the side of not regularizing.
    """
    base = Path(base_dir)
    iteration = name.iteration
    fields: dict = {"iteration": iteration, "half": name.half}
    if iteration is not None and iteration >= 1:
        previous = find_iteration_files(base / name.output_root, iteration - 1)
        try:
            sampling = read_sampling_star(previous.sampling_star)
            fields["previous_healpix_order"] = sampling.healpix_order
        except InputFileError as exc:
            logger.debug("iteration state: %s", exc)
        try:
            optimiser = read_optimiser_star(previous.optimiser_star)
            fields["auto_local_searches_healpix_order"] = (
                optimiser.auto_local_searches_healpix_order
            )
            fields["particle_diameter_angstrom"] = optimiser.particle_diameter_angstrom
            fields["solvent_mask_name"] = optimiser.solvent_mask_name
        except InputFileError as exc:
            logger.debug("iteration state: %s", exc)
        model_star = previous.existing_model_star
        if model_star is None:
            logger.debug("iteration state: no model STAR of iteration %d", iteration - 1)
        else:
            try:
                model = read_model_star(model_star)
                fields["orientational_prior_mode"] = model.orientational_prior_mode
                fields["current_resolution_angstrom"] = model.current_resolution_angstrom
                fields["pixel_size_angstrom"] = model.pixel_size_angstrom
            except InputFileError as exc:
                logger.debug("iteration state: %s", exc)
    fields["run_out_local_searches"] = read_run_out(
        run_out_path(base / name.output_root)
    ).local_searches
    return IterationState(**fields)


def decide(schedule: Schedule, state: IterationState) -> tuple[bool, str]:
    """Whether to regularize in this state, and why (one short phrase for the log)."""
    if schedule.kind == "always":
        return True, "schedule always"
    if schedule.kind == "never":
        return False, "schedule never"
    if schedule.kind == "local-searches":
        local = state.local_searches
        if local is None:
            return False, "local searches unknown (no iteration files of N-1)"
        return local, "local searches" if local else "global searches"
    if schedule.kind == "resolution" and schedule.max_resolution_angstrom is not None:
        res = state.current_resolution_angstrom
        limit = schedule.max_resolution_angstrom
        if res is None:
            return False, "current resolution unknown"
        ok = res <= limit
        return ok, f"resolution {res:.2f} A {'<=' if ok else '>'} {limit:g} A"
    if schedule.kind == "iteration" and schedule.first_iteration is not None:
        if state.iteration is None:
            return False, "iteration unknown"
        ok = state.iteration >= schedule.first_iteration
        return ok, f"iteration {state.iteration} {'>=' if ok else '<'} {schedule.first_iteration}"
    raise ValueError(f"unknown schedule kind {schedule.kind!r}")
