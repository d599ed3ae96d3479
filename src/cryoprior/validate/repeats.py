"""Repeats of a refinement: mean +- SD per metric and mode, and when a difference is called.

RELION 3.1.3 with several MPI ranks is not bit-reproducible, and a different random seed or
half split moves every number a little; so the benchmark runs each (case, mode) several times
and calls a difference between a mode and plain RELION only when it exceeds the noise:

    a difference between modes is called only when ``|mean(mode) - mean(plain)|`` exceeds
    twice the sample SD of the plain mode's repeats (with one plain repeat: no repeats, no
    call).

Pure functions of the numbers (``result.json``'s ``summary``-like dicts); no files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CALL_RULE",
    "METRICS",
    "Metric",
    "MetricStats",
    "ModeCall",
    "call_difference",
    "case_verdict",
    "metric_stats",
    "repeat_statistics",
]

CALL_RULE = (
    "A difference between a mode and plain RELION is called only when the difference of their "
    "means exceeds twice the SD of plain RELION's repeats; with a single plain repeat no "
    "difference is called (no repeats, no call)."
)


@dataclass(frozen=True)
class Metric:
    """A number of a run's table.

    key: its key in the run's flat metric dict; label: for tables; lower_is_better: direction
    (None: not a quality measure, e.g. wall time, never called); digits: decimals shown.
    """

    key: str
    label: str
    lower_is_better: bool | None
    digits: int = 2


#: The metrics of the repeats table, in column order.
METRICS: tuple[Metric, ...] = (
    Metric("relion_final_angstrom", "RELION final (A)", True),
    Metric("fsc_0143_angstrom", "gold-standard FSC 0.143 (A)", True),
    Metric("truth_fsc_0143_angstrom", "vs truth FSC 0.143 (A)", True),
    Metric("truth_fsc_05_angstrom", "vs truth FSC 0.5 (A)", True),
    Metric("truth_correlation", "CC with truth", False, 3),
    Metric("q_score_mean", "Q-score", False, 3),
    Metric("fsc_q_mean_angstrom", "FSC-Q (A)", True),
    Metric("local_resolution_median_angstrom", "median local res. (A)", True),
    Metric("angular_error_mean_degrees", "mean angular error (deg)", True),
    Metric("wall_minutes", "wall time (min)", None, 1),
)


@dataclass(frozen=True)
class MetricStats:
    """One metric of one mode over its repeats.

    values: the finite values (missing and non-finite ones dropped); n: their number;
    mean: None when n == 0; sd: sample SD (n - 1 in the denominator), None when n < 2.
    """

    values: tuple[float, ...]
    n: int
    mean: float | None
    sd: float | None

    def text(self, digits: int = 2) -> str:
        """``mean +- sd (n)``, ``mean (n=1)`` or ``n/a``.

        >>> metric_stats([1.0, 2.0, 3.0]).text(1)
        '2.0 +- 1.0 (n=3)'
        >>> metric_stats([4.25]).text()
        '4.25 (n=1)'
        """
        if self.mean is None:
            return "n/a"
        if self.sd is None:
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} +- {self.sd:.{digits}f} (n={self.n})"


def metric_stats(values: Sequence[float | None]) -> MetricStats:
    """Mean and sample SD of the finite values among ``values``.

    >>> s = metric_stats([6.0, None, 8.0, float("nan")])
    >>> s.n, s.mean, round(s.sd, 6)
    (2, 7.0, 1.414214)
    """
    finite = tuple(
        float(v)
        for v in values
        if v is not None and not isinstance(v, bool) and math.isfinite(float(v))
    )
    n = len(finite)
    if n == 0:
        return MetricStats((), 0, None, None)
    mean = math.fsum(finite) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else None
    return MetricStats(finite, n, mean, sd)


def repeat_statistics(
    runs: Mapping[str, Sequence[Mapping[str, float | None]]],
    metrics: Sequence[Metric] = METRICS,
) -> dict[str, dict[str, MetricStats]]:
    """Per mode and metric, the statistics over the mode's repeats.

    Parameters
    ----------
    runs: mode -> one flat metric dict per repeat (keys as :data:`METRICS`).
    metrics: which metrics.

    Returns
    -------
    mode -> metric key -> :class:`MetricStats`.
    """
    return {
        mode: {m.key: metric_stats([r.get(m.key) for r in repeats]) for m in metrics}
        for mode, repeats in runs.items()
    }


@dataclass(frozen=True)
class ModeCall:
    """A mode against plain RELION on one metric (see :data:`CALL_RULE`).

    difference: mean(mode) - mean(plain) (None when either has no value).
    threshold: 2 x SD of plain's repeats (None with fewer than 2 plain repeats).
    verdict: ``better``, ``worse``, ``no difference`` (within the threshold), ``no repeats, no
        call`` (fewer than 2 plain repeats) or ``n/a`` (a value is missing, or the metric has
        no direction).
    """

    metric: str
    difference: float | None
    threshold: float | None
    verdict: str


def call_difference(
    plain: MetricStats,
    other: MetricStats,
    *,
    lower_is_better: bool | None,
    metric: str = "",
    sd_factor: float = 2.0,
) -> ModeCall:
    """Decide whether ``other`` differs from ``plain`` beyond the noise (:data:`CALL_RULE`).

    Examples
    --------
    >>> plain = metric_stats([6.0, 6.2, 6.4])  # SD 0.2: threshold 0.4
    >>> call_difference(plain, metric_stats([5.7, 5.7]), lower_is_better=True).verdict
    'better'
    >>> call_difference(plain, metric_stats([5.9]), lower_is_better=True).verdict
    'no difference'
    >>> call_difference(metric_stats([6.0]), metric_stats([4.0]), lower_is_better=True).verdict
    'no repeats, no call'
    """
    if plain.mean is None or other.mean is None or lower_is_better is None:
        return ModeCall(metric, None, None, "n/a")
    difference = other.mean - plain.mean
    if plain.sd is None:
        return ModeCall(metric, difference, None, "no repeats, no call")
    threshold = sd_factor * plain.sd
    if abs(difference) <= threshold:
        verdict = "no difference"
    elif (difference < 0) == lower_is_better:
        verdict = "better"
    else:
        verdict = "worse"
    return ModeCall(metric, difference, threshold, verdict)


def case_verdict(
    stats: Mapping[str, Mapping[str, MetricStats]],
    *,
    plain_mode: str = "relion",
    labels: Mapping[str, str] | None = None,
    metrics: Sequence[Metric] = METRICS,
) -> tuple[str, dict[str, list[ModeCall]]]:
    """One paragraph saying which mode wins on which metric beyond the noise, and the calls.

    Parameters
    ----------
    stats: :func:`repeat_statistics`'s output.
    plain_mode: the mode the others are compared with.
    labels: mode -> name in the text (default: the mode).
    metrics: the metrics judged (those without a direction are skipped).

    Returns
    -------
    (paragraph, mode -> its :class:`ModeCall` per judged metric).
    """
    labels = labels or {}
    name = {m: labels.get(m, m) for m in stats}
    if plain_mode not in stats:
        return (f"No {plain_mode} run: no mode can be compared with plain RELION.", {})
    judged = [m for m in metrics if m.lower_is_better is not None]
    plain = stats[plain_mode]
    calls: dict[str, list[ModeCall]] = {}
    for mode, per_metric in stats.items():
        if mode == plain_mode:
            continue
        calls[mode] = [
            call_difference(
                plain[m.key], per_metric[m.key], lower_is_better=m.lower_is_better, metric=m.key
            )
            for m in judged
        ]
    n_plain = max((s.n for s in plain.values()), default=0)
    if not calls:
        return (f"Only {name[plain_mode]} ran: nothing to compare.", calls)
    if n_plain < 2:
        return (
            f"{name[plain_mode]} has {n_plain} run{'s' if n_plain != 1 else ''} of this case: "
            "no repeats, no call (differences between modes are not judged without the spread "
            "of repeats).",
            calls,
        )
    label_of = {m.key: m.label for m in judged}
    sentences = []
    for mode, mode_calls in calls.items():
        better = [label_of[c.metric] for c in mode_calls if c.verdict == "better"]
        worse = [label_of[c.metric] for c in mode_calls if c.verdict == "worse"]
        if not better and not worse:
            sentences.append(f"{name[mode]}: no difference beyond the noise.")
            continue
        parts = []
        if better:
            parts.append("better on " + ", ".join(better))
        if worse:
            parts.append("worse on " + ", ".join(worse))
        sentences.append(f"{name[mode]}: " + "; ".join(parts) + ".")
    return (
        f"Against {name[plain_mode]} ({n_plain} repeats; a difference counts beyond 2 SD of "
        "its repeats): " + " ".join(sentences),
        calls,
    )
