"""PNG figures of validation results.

FSC curves, local-resolution histogram, view distribution, directional resolution.

matplotlib is imported inside the functions and used through its object-oriented API
(``matplotlib.figure.Figure``, rendered by the Agg canvas): no pyplot state, no backend
switching, nothing at import.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cryoprior.validate.directional import DirectionalResolution
    from cryoprior.validate.local_resolution import LocalResolution
    from cryoprior.validate.poses import ViewDistribution
    from cryoprior.validate.summary import ValidationReport

__all__ = [
    "plot_directional_resolution",
    "plot_fsc_curves",
    "plot_local_resolution_histogram",
    "plot_training_losses",
    "plot_view_distribution",
    "write_validation_figures",
]

logger = logging.getLogger(__name__)


def _figure(width_inches: float = 6.4, height_inches: float = 4.2):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_inches, height_inches), dpi=100, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _resolution_axis(ax, curve_frequencies: np.ndarray) -> None:
    """Top axis labelled in Angstrom for a bottom axis in 1/Angstrom."""
    top = ax.secondary_xaxis(
        "top",
        functions=(
            lambda f: 1.0 / np.where(np.abs(f) < 1e-9, 1e-9, f),
            lambda r: 1.0 / np.where(np.abs(r) < 1e-9, 1e-9, r),
        ),
    )
    top.set_xlabel("resolution (A)")
    fmax = float(curve_frequencies.max())
    ticks = [r for r in (50, 20, 10, 8, 6, 5, 4, 3, 2.5, 2, 1.5) if 1.0 / r <= fmax]
    top.set_xticks(ticks)
    top.set_xticklabels([f"{t:g}" for t in ticks])


def plot_fsc_curves(report: ValidationReport, path: str | Path) -> Path:
    """Plot the gold-standard FSC curves (unmasked, masked, phase-randomised, corrected).

    For a simulation, also the FSC of the final map and of each half-map against the truth.

    Returns the path written.
    """
    fig = _figure()
    ax = fig.add_subplot()
    g = report.gold_standard
    freq = g.corrected.spatial_frequency_per_angstrom
    ax.plot(freq, g.unmasked.fsc, color="0.6", label="half-maps, unmasked")
    if g.masked is not None:
        ax.plot(freq, g.masked.fsc, color="tab:blue", alpha=0.6, label="half-maps, masked")
    if g.phase_randomised_masked is not None:
        ax.plot(
            freq,
            g.phase_randomised_masked.fsc,
            color="tab:red",
            alpha=0.6,
            label="phase-randomised, masked",
        )
    ax.plot(freq, g.corrected.fsc, color="black", lw=2, label="corrected (gold standard)")
    if report.truth is not None:
        t = report.truth
        ax.plot(freq, t.full_map.fsc, color="tab:green", lw=2, label="map vs truth")
        if t.half_map_1 is not None and t.half_map_2 is not None:
            ax.plot(freq, t.half_map_1.fsc, color="tab:green", ls="--", label="half 1 vs truth")
            ax.plot(freq, t.half_map_2.fsc, color="tab:green", ls=":", label="half 2 vs truth")
    for threshold in (0.143, 0.5):
        ax.axhline(threshold, color="0.3", lw=0.8, ls="--")
    ax.set_xlim(0.0, float(freq.max()))
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FSC")
    ax.set_title(
        f"FSC 0.143: {g.resolution_0143_angstrom:.2f} A, 0.5: {g.resolution_05_angstrom:.2f} A",
        fontsize=10,
    )
    _resolution_axis(ax, freq)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def plot_local_resolution_histogram(local: LocalResolution, path: str | Path) -> Path:
    """Histogram of the local resolution inside the mask, with its median."""
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    edges = local.histogram_edges_angstrom
    ax.stairs(local.histogram_counts, edges, fill=True, color="tab:blue", alpha=0.7)
    ax.axvline(local.median_angstrom, color="black", ls="--", label="median")
    ax.set_xlabel("local resolution (A)")
    ax.set_ylabel("voxels in mask")
    ax.set_title(
        f"median {local.median_angstrom:.2f} A (window {local.window_size_voxels} voxels, "
        f"FSC {local.fsc_threshold:g})",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_view_distribution(
    refined: ViewDistribution, path: str | Path, *, truth: ViewDistribution | None = None
) -> Path:
    """Equal-area histograms of viewing directions (rot vs tilt), refined and true."""
    panels = [("refined", refined)] + ([("ground truth", truth)] if truth is not None else [])
    fig = _figure(5.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    vmax = max(p.counts.max() for _, p in panels) or 1
    image = None
    for ax, (title, dist) in zip(axes, panels, strict=True):
        image = ax.pcolormesh(
            dist.rot_edges_degrees,
            dist.tilt_edges_degrees,
            dist.counts,
            vmin=0,
            vmax=vmax,
            cmap="viridis",
        )
        ax.set_xlabel("rot (deg)")
        ax.set_ylabel("tilt (deg)")
        ax.set_ylim(180, 0)
        ax.set_title(f"{title}: {dist.n_particles} particles", fontsize=10)
    fig.colorbar(image, ax=list(axes), label="particles per equal-area bin")
    return _save(fig, path)


def plot_directional_resolution(directional: DirectionalResolution, path: str | Path) -> Path:
    """Resolution per direction (conical FSC), on the hemisphere's rot/tilt plane."""
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    points = ax.scatter(
        directional.rot_degrees,
        directional.tilt_degrees,
        c=directional.resolution_angstrom,
        cmap="viridis_r",
        s=60,
    )
    ax.set_xlim(-180, 180)
    ax.set_ylim(90, 0)
    ax.set_xlabel("rot (deg)")
    ax.set_ylabel("tilt (deg)")
    ax.set_title(
        f"conical FSC {directional.threshold:g}: {directional.best_angstrom:.2f}-"
        f"{directional.worst_angstrom:.2f} A (cones of {directional.cone_half_angle_degrees:g} deg)",
        fontsize=10,
    )
    fig.colorbar(points, ax=ax, label="resolution (A)")
    return _save(fig, path)


def write_validation_figures(report: ValidationReport, out_dir: str | Path) -> list[Path]:
    """Write all figures of a report into ``out_dir``.

    The figures are ``fsc.png``, ``local_resolution.png``, ``directional_resolution.png`` and,
    with refined poses, ``view_distribution.png``.

    Returns the paths written.
    """
    out = Path(out_dir)
    paths = [
        plot_fsc_curves(report, out / "fsc.png"),
        plot_local_resolution_histogram(report.local_resolution, out / "local_resolution.png"),
        plot_directional_resolution(report.directional, out / "directional_resolution.png"),
    ]
    if report.views_refined is not None:
        paths.append(
            plot_view_distribution(
                report.views_refined, out / "view_distribution.png", truth=report.views_true
            )
        )
    logger.info("wrote %d figures to %s", len(paths), out)
    return paths


def plot_training_losses(
    losses: list[float], validation: list[tuple[int, float]], path: str | Path
) -> Path:
    """Loss curves of a prior's training (per step, 20-step mean, validation) as a PNG."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="0.8", lw=0.6, label="training (per step)")
    if len(losses) >= 20:
        w = 20
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, color="C0", label="training (20-step mean)")
    if validation:
        v = np.asarray(validation)
        ax.plot(v[:, 0], v[:, 1], "o-", color="C3", label="validation (held-out models)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE + mask BCE)")
    ax.legend()
    return _save(fig, path)
