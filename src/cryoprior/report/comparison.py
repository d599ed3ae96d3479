"""PNG figures that compare refinement modes of one case, from validation dicts and maps.

Inputs are what the experiment runner leaves on disk (``validation.json`` contents, map
arrays), so the figures can be redrawn from cached runs. matplotlib through its object API
only (see :mod:`cryoprior.report.figures`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cryoprior.report.figures import _figure, _resolution_axis, _save

__all__ = [
    "central_sections",
    "plot_map_gallery",
    "plot_mode_fsc_curves",
    "plot_mode_local_resolution",
    "plot_mode_view_distributions",
    "plot_series",
]

logger = logging.getLogger(__name__)

_COLOURS = {
    "relion": "tab:blue",
    "sidesplitter": "tab:orange",
    "prior": "tab:green",
    "prior-bounded": "tab:purple",
    "prior-v1": "tab:brown",
    "prior-noguard": "tab:red",
}


def _colour(mode: str, index: int) -> str:
    return _COLOURS.get(mode, f"C{index % 10}")


def plot_mode_fsc_curves(
    validations: Mapping[str, dict], labels: Mapping[str, str], path: str | Path, *, title: str
) -> Path:
    """Gold-standard FSC (corrected, solid) and FSC against the truth (dashed) of each mode.

    Parameters
    ----------
    validations: mode -> validation dict (``validation.json``).
    labels: mode -> legend label.
    """
    fig = _figure(7.0, 4.4)
    ax = fig.add_subplot()
    freq = None
    for i, (mode, v) in enumerate(validations.items()):
        colour = _colour(mode, i)
        gold = v["gold_standard_fsc"]["curves"]["corrected"]
        freq = np.asarray(gold["spatial_frequency_per_angstrom"], dtype=float)
        ax.plot(freq, _floats(gold["fsc"]), color=colour, lw=2, label=f"{labels[mode]}: half-maps")
        truth = v.get("truth")
        if truth:
            curve = truth["full_map"]
            ax.plot(
                np.asarray(curve["spatial_frequency_per_angstrom"], dtype=float),
                _floats(curve["fsc"]),
                color=colour,
                lw=1.4,
                ls="--",
                label=f"{labels[mode]}: map vs truth",
            )
    for threshold in (0.143, 0.5):
        ax.axhline(threshold, color="0.3", lw=0.8, ls=":")
    if freq is not None:
        ax.set_xlim(0.0, float(freq.max()))
        _resolution_axis(ax, freq)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FSC")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    return _save(fig, path)


def _floats(values: Sequence) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def central_sections(volume: np.ndarray) -> list[np.ndarray]:
    """Central z, y and x sections and the maximum-intensity projection along z.

    volume: (n, n, n) real array (z, y, x). Returns four (n, n) arrays.
    """
    v = np.asarray(volume)
    c = v.shape[0] // 2
    return [v[c], v[:, c], v[:, :, c], v.max(axis=0)]


def plot_map_gallery(
    maps: Mapping[str, np.ndarray], path: str | Path, *, title: str, mask: np.ndarray | None = None
) -> Path:
    """Plot a gallery of maps side by side and write it to ``path``.

    Rows: maps (truth first, then modes); columns: central z/y/x sections and the
    maximum-intensity projection along z. Each map is scaled by its own mean and SD inside
    ``mask`` (whole box without), so greyscales are comparable.
    """
    names = list(maps)
    fig = _figure(8.0, 2.0 * len(names) + 0.4)
    axes = fig.subplots(len(names), 4, squeeze=False)
    columns = ("z section", "y section", "x section", "max along z")
    for row, name in enumerate(names):
        volume = np.asarray(maps[name], dtype=float)
        region = volume[mask > 0.5] if mask is not None else volume
        mean, sd = float(region.mean()), float(region.std()) or 1.0
        for col, image in enumerate(central_sections((volume - mean) / sd)):
            ax = axes[row][col]
            low, high = np.percentile(image, [1, 99.5])
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_mode_local_resolution(
    validations: Mapping[str, dict], labels: Mapping[str, str], path: str | Path, *, title: str
) -> Path:
    """Local-resolution histograms of the modes (step outlines on shared bins)."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    for i, (mode, v) in enumerate(validations.items()):
        local = v["local_resolution"]
        edges = _floats(local["histogram_edges_angstrom"])
        counts = _floats(local["histogram_counts"])
        if counts.size == 0 or not np.isfinite(edges).all():
            continue
        total = counts.sum() or 1.0
        median = local.get("median_angstrom")
        label = labels[mode] + (f" (median {median:.1f} A)" if median else "")
        ax.stairs(counts / total, edges, color=_colour(mode, i), lw=1.6, label=label)
    ax.set_xlabel("local resolution (A)")
    ax.set_ylabel("fraction of voxels in the mask")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_mode_view_distributions(
    views: Mapping[str, dict], path: str | Path, *, title: str
) -> Path:
    """Equal-area view histograms (rot vs tilt) side by side: name -> ``views_*`` dict."""
    names = [n for n, v in views.items() if v]
    fig = _figure(3.2 * max(len(names), 1), 3.0)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    vmax = max((float(np.max(views[n]["counts"])) for n in names), default=1.0) or 1.0
    image = None
    for ax, name in zip(axes, names, strict=False):
        v = views[name]
        image = ax.pcolormesh(
            v["rot_edges_degrees"], v["tilt_edges_degrees"], v["counts"], vmin=0, vmax=vmax
        )
        ax.set_ylim(180, 0)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("rot (deg)", fontsize=7)
        ax.set_ylabel("tilt (deg)", fontsize=7)
        ax.tick_params(labelsize=6)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="particles per bin")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_series(
    x_values: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    labels: Mapping[str, str],
    path: str | Path,
    *,
    x_label: str,
    y_label: str,
    title: str,
    reference_lines: Sequence[float] = (),
) -> Path:
    """One line per mode (e.g. resolution against the noise level); None values are gaps."""
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    for i, (mode, ys) in enumerate(series.items()):
        ax.plot(list(x_values), _floats(ys), marker="o", color=_colour(mode, i), label=labels[mode])
    for y in reference_lines:
        ax.axhline(y, color="0.4", lw=0.8, ls=":")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)
