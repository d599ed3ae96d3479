"""Experiments' vocabulary: cases, modes, refinement options and cache keys (pure).

An :class:`ExperimentCase` is a simulated dataset (:class:`SimulationConfig`) plus how to
refine it (:class:`RefineOptions`) and which control it is (a resolution cut-off, pure
noise); :data:`MODES` are the ways of refining it (the hook ``cryoprior-extrec
--regularizer ...``). Cases go to and from plain dicts (JSON, TOML) with
:func:`case_to_dict` and :func:`case_from_dict`.

Keys are hashes of everything that determines a result: :func:`dataset_key` of the
simulation, :func:`run_key_with_weights` of the dataset, the refinement options, the mode's
hook arguments and the prior's weights (by content), so that a rerun does only what changed
and two cases with the same configuration share their runs. :class:`RunResult` is one
validated run. Nothing here touches a file: the shell that prepares run folders, runs RELION,
validates and caches is :mod:`cryoprior.refine.run`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.io.json import json_ready
from cryoprior.refine.relion import AutoRefineSettings
from cryoprior.simulate.config import SimulationConfig, config_from_dict

__all__ = [
    "MODES",
    "UNKEYED_PRIOR_WEIGHTS",
    "ExperimentCase",
    "ModeSpec",
    "RefineOptions",
    "RunResult",
    "case_from_dict",
    "case_repeat",
    "case_to_dict",
    "dataset_key",
    "hook_command",
    "prior_weights_name",
    "random_half_sets",
    "repeat_cases",
    "run_key_with_weights",
]


@dataclass(frozen=True)
class ModeSpec:
    """A way of refining: the arguments of the hook ``cryoprior-extrec``.

    Attributes
    ----------
    name: short name (``relion``, ``sidesplitter``, ``prior``, ``prior-v1``,
        ``prior-bounded``, ``prior-noguard``).
    label: for tables and plots.
    hook_arguments: options given to ``cryoprior-extrec`` before RELION's STAR path.
    description: one sentence for the report.
    key_name: the name its runs' cache keys carry, when not ``name`` (a renamed mode keeps
        its runs).
    key_arguments: the hook arguments its keys were made from, when not ``hook_arguments``
        (arguments that meant the same when the hook's defaults were other: its runs stay).
    """

    name: str
    label: str
    hook_arguments: tuple[str, ...]
    description: str
    key_name: str | None = None
    key_arguments: tuple[str, ...] | None = None


MODES: dict[str, ModeSpec] = {
    m.name: m
    for m in (
        ModeSpec(
            "relion",
            "RELION",
            ("--regularizer", "none"),
            "plain RELION: the hook returns relion_external_reconstruct's map",
        ),
        ModeSpec(
            "sidesplitter",
            "SIDESPLITTER",
            ("--regularizer", "sidesplitter"),
            "local-SNR filter of both half-maps, in local searches",
        ),
        ModeSpec(
            "prior",
            "prior + guard",
            # the hook's defaults spelled out: a change of them does not change these runs
            (
                "--regularizer",
                "prior",
                "--guard",
                "--guard-method",
                "bounded",
                "--guard-cross-half",
            ),
            "learned prior on each half-map independently, in local searches, through guard "
            "v2 (beyond FSC 1/7 each shell's amplitude capped at what the data hold; the "
            "support ends where the FSC is insignificant or a half's prior map stops "
            "correlating with the other half's plain map; docs/guard.md): cryoprior's default",
            # the mode was called prior-cross before guard v2 became the default
            key_name="prior-cross",
        ),
        ModeSpec(
            "prior-v1",
            "prior + guard v1",
            ("--regularizer", "prior", "--guard", "--guard-method", "trailing"),
            "learned prior on each half-map independently, in local searches, through guard "
            "v1 (the plain map beyond FSC 1/7, greyscale fit): the default until guard v2",
            key_name="prior",
            key_arguments=("--regularizer", "prior", "--guard"),
        ),
        ModeSpec(
            "prior-bounded",
            "prior + guard v2 without cross-half support",
            (
                "--regularizer",
                "prior",
                "--guard",
                "--guard-method",
                "bounded",
                "--no-guard-cross-half",
            ),
            "learned prior on each half-map independently, in local searches, through guard "
            "v2 whose support ends only where the FSC is insignificant (it lets shared "
            "leakage through: docs/guard.md)",
            key_arguments=("--regularizer", "prior", "--guard", "--guard-method", "bounded"),
        ),
        ModeSpec(
            "prior-noguard",
            "prior, no guard",
            ("--regularizer", "prior", "--no-guard"),
            "learned prior on each half-map, in local searches, returned as is (as the "
            "paper ran deepEMhancer)",
        ),
    )
}


@dataclass(frozen=True)
class RefineOptions:
    """Refinement options shared by every mode of a case (RELION's names, units in names).

    ``auto_iter_max``: RELION's cap on auto-refine iterations (None: RELION's default); the
    pure-noise control needs it, since noise never converges.

    ``initial_reference``: ``dataset`` (the simulation's low-passed truth) or a path to an
    MRC map (used as is, e.g. a symmetric map for the pure-noise control).

    ``half_split_seed``: None: RELION splits the particles into half-sets itself (its
    ``--random_seed``); a number: the run folder's copy of the particles STAR carries an
    explicit random half split (``rlnRandomSubset``, :func:`random_half_sets` with this seed),
    so that repeats differ in their split as well as in RELION's seed.

    ``ctf``: RELION corrects the particles' CTFs (``--ctf``; the simulation must have them).
    ``ctf_corrected_reference``: with ``ctf``, the initial reference is CTF-free
    (``--ctf_corrected_ref``), as every simulated case's is (the low-passed truth, a symmetric
    map); see :class:`~cryoprior.refine.relion.AutoRefineSettings`.
    """

    symmetry: str = "C1"
    particle_diameter_angstrom: float = 190.0
    ini_high_angstrom: float = 30.0
    healpix_order: int = 1
    auto_local_healpix_order: int = 3
    offset_range_pixels: float = 3.0
    offset_step_pixels: float = 1.5
    padding_factor: float = 2.0
    random_seed: int = 0
    mpi_ranks: int = 3
    threads: int = 1
    timeout_seconds: float = 3600.0
    initial_reference: str = "dataset"
    extra_hook_arguments: tuple[str, ...] = ()
    auto_iter_max: int | None = None
    half_split_seed: int | None = None
    ctf: bool = False
    ctf_corrected_reference: bool = True

    def settings_fields(self) -> dict[str, Any]:
        """Return the options that are fields of the run's settings too.

        Same names, same meaning as :class:`~cryoprior.refine.relion.AutoRefineSettings`'s.
        """
        shared = {f.name for f in dataclasses.fields(AutoRefineSettings)}
        return {k: v for k, v in dataclasses.asdict(self).items() if k in shared}


@dataclass(frozen=True)
class ExperimentCase:
    """One dataset and how to refine it.

    Attributes
    ----------
    name: identifier (folder-safe).
    title: for the report.
    group: which experiment it belongs to (``isotropic``, ``anisotropic``, ``cutoff``,
        ``noise``, ``pure-noise``).
    simulation: the dataset.
    refine: the refinement.
    modes: names from :data:`MODES`.
    cutoff_angstrom: control: the particles carry nothing beyond this resolution; no mode
        may report a resolution (gold-standard or against the truth) finer than it.
    pure_noise: control: no particle carries signal; no structure may emerge.
    validation_window_voxels: local-resolution and FSC-Q window.
    paper: the paper's numbers for this case, per mode (for the report), or None.
    repeats: how many times each mode is run (:func:`repeat_cases`: the repeats differ in
        RELION's random seed and the random half split).
    """

    name: str
    title: str
    group: str
    simulation: SimulationConfig
    refine: RefineOptions = field(default_factory=RefineOptions)
    modes: tuple[str, ...] = ("relion", "sidesplitter", "prior", "prior-noguard")
    cutoff_angstrom: float | None = None
    pure_noise: bool = False
    validation_window_voxels: int = 20
    paper: dict[str, Any] | None = None
    repeats: int = 1

    def __post_init__(self):
        """Refuse unknown modes, fewer than 1 repeat, and a bad name.

        A name may not be empty or hold a slash, backslash or space.
        """
        if self.repeats < 1:
            raise ValueError(f"case {self.name}: repeats must be >= 1, not {self.repeats}")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"case {self.name}: unknown mode(s) {unknown}; known: {list(MODES)}")
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"case name {self.name!r} must be non-empty, without / or spaces")


def case_to_dict(case: ExperimentCase) -> dict[str, Any]:
    """JSON-ready dict of a case (inverse of :func:`case_from_dict`)."""
    return json_ready(dataclasses.asdict(case))


def case_from_dict(values: dict[str, Any]) -> ExperimentCase:
    """Build an ExperimentCase from a dict as written by :func:`case_to_dict` (or TOML)."""
    values = dict(values)
    sim = config_from_dict(values.pop("simulation"))
    refine = dict(values.pop("refine", {}))
    if "extra_hook_arguments" in refine:
        refine["extra_hook_arguments"] = tuple(refine["extra_hook_arguments"])
    if "modes" in values:
        values["modes"] = tuple(values["modes"])
    return ExperimentCase(simulation=sim, refine=RefineOptions(**refine), **values)


def hook_command(mode: str, executable: str, extra_arguments: Sequence[str] = ()) -> str:
    """Return the hook command line of a mode, as RELION gets it (``sh`` splits it).

    ``executable`` (``cryoprior-extrec``), the mode's :attr:`ModeSpec.hook_arguments`, then
    ``extra_arguments`` (e.g. a case's :attr:`RefineOptions.extra_hook_arguments`).
    """
    return " ".join([executable, *MODES[mode].hook_arguments, *extra_arguments])


def _hash(data: Any) -> str:
    text = json.dumps(json_ready(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_key(simulation: SimulationConfig) -> str:
    """Cache key of a simulated dataset: a hash of its configuration."""
    values = dataclasses.asdict(simulation)
    if values["envelope_b_factor_angstrom2"] == 0.0:  # added later: keys stay the same
        values.pop("envelope_b_factor_angstrom2")
    return "sim-" + _hash(values)


# Weights every prior run used before the weights became part of the run key: runs with them
# keep their keys (and their cached results).
UNKEYED_PRIOR_WEIGHTS = "cryoprior-prior-v1.pt"


def prior_weights_name(case: ExperimentCase, mode: str) -> str | None:
    """Return the name of the prior weights a mode's hook loads, as given to the hook.

    None for modes without a prior. The weights are ``--option weights=...`` of the case's
    extra hook arguments, else ``default`` (the shipped default).
    """
    hook = [*MODES[mode].hook_arguments, *case.refine.extra_hook_arguments]
    if "prior" not in hook:
        return None
    name = "default"
    for arg in hook:
        if arg.startswith("weights="):
            name = arg.split("=", 1)[1]
    return name


def run_key_with_weights(case: ExperimentCase, mode: str, weights: dict | None) -> str:
    """Cache key of one refinement, given the mode's prior weights.

    The key covers the dataset, the refinement options, the mode's hook arguments, and the
    prior's weights (by content: ``weights`` is ``{'file', 'sha256'}`` as
    :func:`cryoprior.refine.run.prior_weights` returns it, None for modes without a prior).

    The validation window is not in it: validation is redone from the maps when it changes.
    """
    spec = MODES[mode]
    refine = dataclasses.asdict(case.refine)
    refine.pop("timeout_seconds")
    for later in ("auto_iter_max", "half_split_seed", "ctf"):  # added later: keys stay the same
        if refine[later] is None or refine[later] is False:
            refine.pop(later)
    # added later too; it changes the command (so the key) only with the CTF on
    if not case.refine.ctf:
        refine.pop("ctf_corrected_reference")
    parts = {
        "dataset": dataset_key(case.simulation),
        "refine": refine,
        "hook": list(spec.key_arguments or spec.hook_arguments),
    }
    if weights is not None and weights["file"] != UNKEYED_PRIOR_WEIGHTS:
        parts["prior_weights"] = weights["sha256"]
    return f"{spec.key_name or mode}-" + _hash(parts)


def case_repeat(case: ExperimentCase, repeat: int) -> ExperimentCase:
    """Return repeat ``repeat`` (0-based) of ``case``.

    Repeat 0 is the case itself (RELION's own half split with the case's seed: the runs made
    before repeats existed are its runs). Repeat r >= 1 adds r to RELION's random seed and
    gives the run an explicit random half split seeded with that seed, so the repeats differ
    in both. The name, the dataset and everything else stay the same.

    >>> from cryoprior.simulate.config import SimulationConfig
    >>> c = ExperimentCase("c", "t", "isotropic", SimulationConfig(), repeats=3)
    >>> [(r.refine.random_seed, r.refine.half_split_seed) for r in repeat_cases(c)]
    [(0, None), (1, 1), (2, 2)]
    """
    if not 0 <= repeat < case.repeats:
        raise ValueError(f"case {case.name} has {case.repeats} repeat(s); no repeat {repeat}")
    if repeat == 0:
        return case
    seed = case.refine.random_seed + repeat
    refine = dataclasses.replace(case.refine, random_seed=seed, half_split_seed=seed)
    return dataclasses.replace(case, refine=refine)


def repeat_cases(case: ExperimentCase, limit: int | None = None) -> list[ExperimentCase]:
    """Every repeat of ``case`` (:func:`case_repeat`), at most ``limit`` of them."""
    n = case.repeats if limit is None else max(0, min(case.repeats, limit))
    return [case_repeat(case, r) for r in range(n)]


def random_half_sets(n_particles: int, *, seed: int) -> np.ndarray:
    """Random half-set of each particle (RELION's ``rlnRandomSubset``: 1 or 2), balanced.

    A seeded random permutation: the first ``ceil(n/2)`` particles of it go to half-set 1,
    the others to half-set 2; each particle is in exactly one half, so the halves share no
    particle (they stay independent).

    Returns an (n_particles,) int array.

    >>> h = random_half_sets(5, seed=0)
    >>> sorted(h.tolist())
    [1, 1, 1, 2, 2]
    """
    order = np.random.default_rng(seed).permutation(n_particles)
    halves = np.full(n_particles, 2, dtype=np.int64)
    halves[order[: (n_particles + 1) // 2]] = 1
    return halves


@dataclass(frozen=True)
class RunResult:
    """One refinement of one case in one mode, validated.

    Attributes
    ----------
    case, mode: which.
    run_dir: the run's folder.
    data: the content of ``result.json`` (see :func:`run_mode`).
    cached: True when nothing had to be computed.
    """

    case: str
    mode: str
    run_dir: Path
    data: dict[str, Any]
    cached: bool
