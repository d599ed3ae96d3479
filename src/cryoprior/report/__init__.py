"""Reports: figures of validation results (HTML/Markdown assembly comes with report/build.py)."""

from cryoprior.report.figures import (
    plot_directional_resolution,
    plot_fsc_curves,
    plot_local_resolution_histogram,
    plot_view_distribution,
    write_validation_figures,
)

__all__ = [
    "plot_directional_resolution",
    "plot_fsc_curves",
    "plot_local_resolution_histogram",
    "plot_view_distribution",
    "write_validation_figures",
]
