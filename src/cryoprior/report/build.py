"""The experiment report: Markdown and HTML with tables and figures, from cached runs.

Reads an experiment folder written by the runner (``benchmark.json`` listing the cases and,
per mode, the run folder holding ``result.json``, ``validation/validation.json`` and the RELION
maps) and writes a self-contained folder: ``report.md``, ``report.html``, ``results.json``
(every number of the tables) and ``figures/*.png``. Nothing is recomputed but the figures, so
the report can be rebuilt from cached runs at any time.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryoprior.io._atomic import write_text_atomic
from cryoprior.io.json import read_json
from cryoprior.io.mrc import read_map
from cryoprior.io.relion import final_map_path
from cryoprior.report.comparison import (
    plot_map_gallery,
    plot_mode_fsc_curves,
    plot_mode_local_resolution,
    plot_mode_view_distributions,
    plot_series,
)
from cryoprior.report.document import Document
from cryoprior.report.repeats import (
    CaseRepeats,
    calibration_section,
    load_case_repeats,
    repeats_section,
    scale_section,
)
from cryoprior.validate.controls import CUTOFF_RULE, PURE_NOISE_RULE

__all__ = ["TABLE_COLUMNS", "ReportRun", "build_report", "comparison_rows", "load_experiment"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "benchmark.json"


@dataclass(frozen=True)
class ReportRun:
    """A finished run as the report sees it."""

    case: dict[str, Any]
    mode: str
    run_dir: Path
    result: dict[str, Any]
    validation: dict[str, Any]


def load_experiment(root: str | Path) -> tuple[dict, list[tuple[dict, dict[str, ReportRun]]]]:
    """Load the manifest and, per case, its finished runs (mode -> ReportRun).

    Raises FileNotFoundError when ``root`` has no manifest.
    """
    root = Path(root)
    manifest = read_json(root / MANIFEST_NAME)
    if manifest is None:
        raise FileNotFoundError(f"{root / MANIFEST_NAME}: no experiment manifest (run a benchmark)")
    cases = []
    for entry in manifest["cases"]:
        runs: dict[str, ReportRun] = {}
        for mode, rel in entry["runs"].items():
            run_dir = root / rel
            result = read_json(run_dir / "result.json")
            validation = read_json(run_dir / "validation" / "validation.json")
            if result is None or validation is None:
                continue
            runs[mode] = ReportRun(entry["case"], mode, run_dir, result, validation)
        cases.append((entry["case"], runs))
    return manifest, cases


# Runs made before refine.json recorded the weights all used the first shipped weights (the run
# keys of other weights differ: cryoprior.refine.cases.run_key_with_weights).
_FIRST_WEIGHTS = "cryoprior-prior-v1.pt"


def _prior_weights_used(cases, modes_info: dict) -> dict[str, int]:
    """Weights file name -> number of finished runs of the prior modes that used it."""
    prior_modes = {m for m, info in modes_info.items() if "prior" in info.get("hook_arguments", [])}
    used: dict[str, int] = {}
    for _case, runs in cases:
        for mode, run in runs.items():
            if mode not in prior_modes:
                continue
            record = (run.result.get("refine") or {}).get("prior_weights")
            name = record["file"] if record else _FIRST_WEIGHTS
            used[name] = used.get(name, 0) + 1
    return used


def _fmt(value, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value}{unit}"
    return f"{value:.{digits}f}{unit}"


TABLE_COLUMNS = (
    "mode",
    "RELION final (A)",
    "gold-standard FSC 0.143 (A)",
    "vs truth FSC 0.143 (A)",
    "vs truth FSC 0.5 (A)",
    "CC with truth",
    "Q-score",
    "FSC-Q (A)",
    "median local res. (A)",
    "mean angular error (deg)",
    "regularized calls",
    "wall time (min)",
)


def comparison_rows(runs: dict[str, ReportRun], labels: dict[str, str]) -> list[list[str]]:
    """One row per mode in TABLE_COLUMNS order."""
    rows = []
    for mode, run in runs.items():
        s, r = run.result["summary"], run.result["refine"]
        rows.append(
            [
                labels.get(mode, mode),
                _fmt(r.get("final_resolution_angstrom")),
                _fmt(s.get("fsc_0143_angstrom")),
                _fmt(s.get("truth_fsc_0143_angstrom")),
                _fmt(s.get("truth_fsc_05_angstrom")),
                _fmt(s.get("truth_correlation"), 3),
                _fmt(s.get("q_score_mean"), 3),
                _fmt(s.get("fsc_q_mean_angstrom")),
                _fmt(s.get("local_resolution_median_angstrom")),
                _fmt(s.get("angular_error_mean_degrees")),
                (
                    f"plain ({r.get('hook_calls', 0)} calls)"
                    if mode == "relion"
                    else f"{r.get('regularized_calls', 0)} / {r.get('hook_calls', 0)}"
                )
                + (f" ({r['fallbacks']} fallbacks)" if r.get("fallbacks") else ""),
                _fmt((r.get("wall_seconds") or 0.0) / 60.0, 1),
            ]
        )
    return rows


def _maps_for_gallery(root: Path, runs: dict[str, ReportRun], labels: dict[str, str]):
    maps: dict[str, np.ndarray] = {}
    mask = None
    first = next(iter(runs.values()))
    truth_path = root / "datasets" / first.result["dataset"] / "true_map.mrc"
    if truth_path.is_file():
        maps["truth"] = read_map(truth_path, dtype=np.float64)
        t = maps["truth"]
        mask = (t > t.mean() + 0.5 * t.std()).astype(float)
    for mode, run in runs.items():
        output_root = run.run_dir / run.result["refine"].get("output_root", "Refine3D/run")
        path = final_map_path(output_root)
        if path.is_file():
            maps[labels.get(mode, mode)] = read_map(path, dtype=np.float64)
    if mask is not None and mask.sum() < 10:
        mask = None
    return maps, mask


def _map_gallery(
    root: Path, runs: dict[str, ReportRun], labels: dict[str, str], path: Path, name: str
) -> Path | None:
    """Draw the case's map sections to ``path``; return it, or None when there is nothing.

    Beside the figure, ``<figure>.json`` names the runs it shows (label -> run key). Runs
    imported from records (:mod:`cryoprior.refine.records`) have no maps: when a map is
    missing, a figure drawn earlier of exactly these runs is kept; otherwise the figure shows
    the maps that are here (none: no figure).
    """
    shown = {labels.get(m, m): r.result.get("key", r.run_dir.name) for m, r in runs.items()}
    sidecar = path.with_suffix(".json")
    maps, mask = _maps_for_gallery(root, runs, labels)
    if set(shown) - set(maps):
        if path.is_file() and read_json(sidecar) == shown:
            return path  # drawn when the maps were here, of the same runs
        shown = {label: key for label, key in shown.items() if label in maps}
        if not shown:
            return None
    plot_map_gallery(maps, path, title=f"{name}: final maps", mask=mask)
    write_text_atomic(sidecar, json.dumps(shown, indent=1))
    return path


def _noise_factor(case: dict, base_snr: float) -> float:
    snr = case["simulation"].get("snr") or base_snr
    return math.sqrt(base_snr / snr)


def build_report(
    root: str | Path,
    out_dir: str | Path,
    *,
    title: str = "cryoprior benchmark",
    calibration: Sequence[str | Path] = (),
) -> Path:
    """Write the report of the experiment in ``root`` to ``out_dir``; returns report.md.

    Cases without finished runs are listed as missing. Figures are written under
    ``out_dir/figures`` with paths relative to the report. The report is a sequence of
    sections, each a function of the runs: introduction, one section per case (with its
    repeats, verdict, post-processing arm and pose differences when the runs have them), the
    scale of the cases, the noise sweep, the cut-off and pure-noise controls (on every repeat)
    and the calibration notes (``calibration``: Markdown files) - each only when it has
    something to show.
    """
    root, out = Path(root), Path(out_dir)
    manifest, cases = load_experiment(root)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    modes_info = manifest.get("modes", {})
    labels = {m: info.get("label", m) for m, info in modes_info.items()}
    doc = Document()
    doc.heading(1, title)
    _introduction(doc, manifest, cases, root, modes_info)
    results_json: dict[str, Any] = {"suite": manifest.get("suite"), "cases": []}
    noise_cases, cutoff_rows, pure_rows, scale_cases = [], [], [], []
    for manifest_entry, (case, runs) in zip(manifest["cases"], cases, strict=True):
        repeats = load_case_repeats(root, manifest_entry)
        entry = _case_section(doc, case, runs, root=root, out=out, labels=labels)
        if entry is None:
            continue
        if _has_repeats(repeats):
            entry["repeats"] = repeats_section(doc, repeats, labels)
        results_json["cases"].append(entry)
        scale_cases.append((case, repeats))
        if case["group"] == "noise":
            noise_cases.append((case, runs))
        cut, pure = _control_rows(
            case["name"],
            _repeat_runs(runs, repeats),
            {**labels, **repeats.postprocess_labels},
        )
        cutoff_rows += cut
        pure_rows += pure
    results_json["scale"] = scale_section(doc, scale_cases)
    if noise_cases:
        _noise_sweep_section(doc, noise_cases, labels=labels, out=out)
    if cutoff_rows:
        doc.heading(2, "Control: resolution cut-off")
        doc.para("The particles carry nothing beyond the cut-off. " + CUTOFF_RULE)
        doc.table(
            ["case", "mode", "cut-off (A)", "perfect map vs truth 0.143 (A)",
             "finest accepted (A)", "RELION final (A)", "gold-standard 0.143 (A)",
             "vs truth 0.143 (A)", "result"],
            cutoff_rows,
        )  # fmt: skip
    if pure_rows:
        doc.heading(2, "Control: pure noise")
        doc.para(
            "Every particle is noise; the initial map is the symmetric protein low-passed to "
            "the resolution in the table. "
            + PURE_NOISE_RULE
            + " The correlation with the truth measures how much of the initial map survived."
        )
        doc.table(
            ["case", "mode", "initial map (A)", "finest accepted (A)", "RELION final (A)",
             "gold-standard 0.143 (A)", "reached local searches", "regularized calls",
             "CC with truth", "result"],
            pure_rows,
        )  # fmt: skip
    results_json["calibration"] = calibration_section(doc, calibration)
    md_path = out / "report.md"
    write_text_atomic(md_path, doc.markdown())
    write_text_atomic(out / "report.html", doc.html(title))
    write_text_atomic(out / "results.json", json.dumps(results_json, indent=1, allow_nan=True))
    return md_path


def _has_repeats(repeats: CaseRepeats) -> bool:
    """Whether a case's runs have more than the first report table shows."""
    return (
        any(n > 1 for n in repeats.expected.values())
        or bool(repeats.postprocess)
        or bool(repeats.pose_differences)
    )


def _repeat_runs(runs: dict[str, ReportRun], repeats: CaseRepeats) -> list[tuple[str, str, dict]]:
    """(mode, repeat label, result) of every finished repeat and post-processing arm.

    The first repeat's runs as loaded; the arms by their rows (``post:<variant>`` on plain
    RELION's run, ``post:<mode>:<variant>`` on another mode's).
    """
    out = [(m, "", r.result) for m, r in runs.items()]
    for mode, results in repeats.runs.items():
        numbers = repeats.repeat_numbers[mode]
        out += [
            (mode, f" (repeat {n + 1})", result)
            for n, result in zip(numbers, results, strict=True)
            if n > 0
        ]
    for row, results in repeats.postprocess.items():
        numbers = repeats.postprocess_numbers[row]
        out += [
            (row, f" (repeat {n + 1})", result) for n, result in zip(numbers, results, strict=True)
        ]
    return out


def _introduction(doc: Document, manifest: dict, cases, root: Path, modes_info: dict) -> None:
    doc.para(
        f"Suite `{manifest.get('suite')}`, runs in `{root}`; report written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. " + (manifest.get("machine") or "")
    )
    if manifest.get("scale"):
        doc.heading(2, "Scale, and how it differs from the paper")
        doc.para(manifest["scale"])
    ran = {m for _case, runs in cases for m in runs}
    shown = {m: info for m, info in modes_info.items() if m in ran} if ran else modes_info
    if shown:
        doc.heading(2, "Modes")
        doc.bullets(
            [
                f"**{info.get('label', m)}** (`{m}`, hook `cryoprior-extrec "
                f"{' '.join(info.get('hook_arguments', []))}`): {info.get('description', '')}"
                for m, info in shown.items()
            ]
        )
        weights = _prior_weights_used(cases, modes_info)
        if weights:
            doc.para(
                "Prior weights used by the runs: "
                + "; ".join(
                    f"`{name}` ({count} run{'s' if count != 1 else ''})"
                    for name, count in sorted(weights.items())
                )
                + "."
            )
    doc.heading(2, "Columns")
    doc.para(
        "RELION final: the resolution relion_refine printed at the end (unmasked, its own "
        "FSC). Gold-standard FSC 0.143: our masked, phase-randomisation-corrected FSC of the "
        "final unfiltered half-maps (as relion_postprocess). vs truth: FSC of the final map "
        "against the true map (0.143 and 0.5) and their real-space correlation, inside a mask "
        "from the truth. Q-score and FSC-Q: of the atomic model the particles were simulated "
        "from, in the final map. Angular error: mean rotation between refined and true poses, "
        "modulo the symmetry. Regularized calls: hook calls in which the regularizer was "
        "applied / all hook calls (the plain mode returns RELION's map at every call). Wall "
        "time: the refinement (both halves, all iterations); when other work shares the cores "
        "it compares modes only roughly. Local resolution and FSC-Q use windows of 20 voxels: "
        "in small boxes read those columns as rankings."
    )


def _case_description(case: dict) -> str:
    sim = case["simulation"]
    cone = ""
    if (sim.get("cone_overrepresentation") or 1) > 1:
        cone = (
            f" with the tilt cone {sim.get('cone_tilt_min_degrees'):g}-"
            f"{sim.get('cone_tilt_max_degrees'):g} deg over-represented "
            f"{sim.get('cone_overrepresentation'):g}x"
        )
    lowpass = (
        f", low-passed at {sim['lowpass_resolution_angstrom']:g} A"
        if sim.get("lowpass_resolution_angstrom")
        else ""
    )
    return (
        f"Case `{case['name']}`: model `{Path(str(sim.get('model'))).name}`, box "
        f"{sim.get('box_size')} at {sim.get('voxel_size_angstrom')} A/voxel, "
        f"{sim.get('n_particles')} {sim.get('orientations')} views{cone}{lowpass}"
        + (", pure noise" if sim.get("pure_noise_only") else "")
        + f", SNR {sim.get('snr')}, symmetry {case['refine']['symmetry']}, seed {sim.get('seed')}."
    )


def _case_section(
    doc: Document,
    case: dict,
    runs: dict[str, ReportRun],
    *,
    root: Path,
    out: Path,
    labels: dict[str, str],
) -> dict | None:
    """Write the case's table, paper comparison and figures; return its results.json entry.

    None when the case has no runs.
    """
    name = case["name"]
    figures = out / "figures"
    doc.heading(2, case["title"])
    doc.para(_case_description(case))
    missing = [m for m in case["modes"] if m not in runs]
    if missing:
        doc.para(
            "Not run yet with this configuration and the current prior weights (a run's key "
            "holds both): " + ", ".join(f"`{m}`" for m in missing) + "."
        )
    if not runs:
        return None
    doc.table(list(TABLE_COLUMNS), comparison_rows(runs, labels))
    _paper_comparison(doc, case.get("paper"), runs, labels)
    validations = {m: r.validation for m, r in runs.items()}
    fsc_png = plot_mode_fsc_curves(
        validations, labels, figures / f"{name}_fsc.png", title=case["title"]
    )
    doc.image(os.path.relpath(fsc_png, out), f"FSC curves, {name}")
    gallery = _map_gallery(root, runs, labels, figures / f"{name}_maps.png", name)
    if gallery is not None:
        doc.image(os.path.relpath(gallery, out), f"map sections, {name}")
    local = plot_mode_local_resolution(
        validations, labels, figures / f"{name}_local_resolution.png", title=name
    )
    doc.image(os.path.relpath(local, out), f"local resolution, {name}")
    views = {}
    first = next(iter(runs.values())).validation
    if first.get("views_true"):
        views["ground truth"] = first["views_true"]
    for m, v in validations.items():
        if v.get("views_refined"):
            views[labels.get(m, m)] = v["views_refined"]
    if views:
        vpng = plot_mode_view_distributions(
            views, figures / f"{name}_views.png", title=f"{name}: viewing directions"
        )
        doc.image(os.path.relpath(vpng, out), f"view distributions, {name}")
    return {
        "case": name,
        "title": case["title"],
        "group": case["group"],
        "runs": {
            m: {
                "summary": r.result["summary"],
                "refine": r.result["refine"],
                "controls": r.result["controls"],
            }
            for m, r in runs.items()
        },
    }


def _paper_comparison(
    doc: Document, paper: dict | None, runs: dict[str, ReportRun], labels: dict[str, str]
) -> None:
    """Add the paper's numbers beside ours, for the modes this case ran.

    The modes are plain RELION, SIDESPLITTER and the learned prior (unguarded when that run
    exists, as the paper's deepEMhancer; else through the guard, and the table says so).
    """
    if not paper or not any(k in paper for k in ("fsc_0143_angstrom", "q_score_mean")):
        if paper and paper.get("case"):
            doc.para(f"The paper: {paper['case']}.")
        return
    prior_mode = next((m for m in ("prior-noguard", "prior") if m in runs), None)
    columns = [
        (paper_key, ours)
        for paper_key, ours in (
            ("relion", "relion"),
            ("sidesplitter", "sidesplitter"),
            ("prior-noguard", prior_mode),
        )
        if ours in runs
    ]
    if not columns:
        return
    doc.para(f"The paper ({paper.get('case')}) beside ours:")
    header = ["metric"] + [
        ("deepEMhancer (paper) / " + labels.get(ours, ours))
        if paper_key == "prior-noguard"
        else f"{labels.get(ours, ours)} paper / ours"
        for paper_key, ours in columns
    ]
    rows = []
    for key, label in (
        ("fsc_0143_angstrom", "FSC 0.143 (A)"),
        ("q_score_mean", "Q-score"),
        ("fsc_q_mean_angstrom", "FSC-Q (A)"),
    ):
        digits = 3 if "q_score" in key else 2
        row = [label]
        for paper_key, ours in columns:
            value = runs[ours].result["summary"].get(key)
            row.append(f"{_fmt(paper.get(key, {}).get(paper_key), digits)} / {_fmt(value, digits)}")
        rows.append(row)
    doc.table(header, rows)
    prior_note = (
        "the learned prior without the guard (`prior-noguard`)"
        if prior_mode == "prior-noguard"
        else "the learned prior through the guard (`prior`; no unguarded run in this case)"
        if prior_mode == "prior"
        else "not run here"
    )
    doc.para(
        "The paper's third column is deepEMhancer run without a guard; ours is "
        + prior_note
        + ". Scales differ (see above): compare the ordering of the modes, not the values."
    )


def _control_rows(
    name: str, runs: list[tuple[str, str, dict]], labels: dict[str, str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Control rows of every run: (mode, repeat label appended to the case name, result)."""
    cutoff_rows, pure_rows = [], []
    for m, repeat, result in runs:
        controls = result.get("controls", {})
        if "cutoff" in controls:
            c = controls["cutoff"]
            v = c["values"]
            cutoff_rows.append(
                [
                    name + repeat,
                    labels.get(m, m),
                    _fmt(c["cutoff_angstrom"], 1),
                    _fmt(c.get("reference_angstrom")),
                    _fmt(c.get("one_shell_finer_angstrom")),
                    _fmt(v.get("relion_final_angstrom")),
                    _fmt(v.get("gold_standard_fsc_0143_angstrom")),
                    _fmt(v.get("truth_fsc_0143_angstrom")),
                    "PASS" if c["passed"] else "**FAIL**",
                ]
            )
        if "pure_noise" in controls:
            c = controls["pure_noise"]
            pure_rows.append(
                [
                    name + repeat,
                    labels.get(m, m),
                    _fmt(c.get("ini_high_angstrom"), 1),
                    _fmt(c.get("one_shell_finer_angstrom")),
                    _fmt(c.get("relion_final_angstrom")),
                    _fmt(c.get("gold_standard_fsc_0143_angstrom")),
                    _fmt(c.get("reached_local_searches")),
                    str(c.get("regularized_calls")),
                    _fmt(c.get("truth_correlation"), 3),
                    "PASS" if c["passed"] else "**FAIL**",
                ]
            )
    return cutoff_rows, pure_rows


def _noise_sweep_section(doc: Document, noise_cases, *, labels: dict[str, str], out: Path) -> None:
    doc.heading(2, "Noise sweep")
    figures = out / "figures"
    base = max(c["simulation"].get("snr") or 1.0 for c, _ in noise_cases)
    noise_cases = sorted(noise_cases, key=lambda cr: _noise_factor(cr[0], base))
    xs = [_noise_factor(c, base) for c, _ in noise_cases]
    all_modes = list(dict.fromkeys(m for _, runs in noise_cases for m in runs))
    for key, label, fname in (
        ("truth_fsc_0143_angstrom", "map vs truth, FSC 0.143 (A)", "noise_truth"),
        ("fsc_0143_angstrom", "gold-standard FSC 0.143 (A)", "noise_gold"),
    ):
        series = {
            m: [
                runs[m].result["summary"].get(key) if m in runs else None for _, runs in noise_cases
            ]
            for m in all_modes
        }
        png = plot_series(
            xs, series, labels, figures / f"{fname}.png",
            x_label="noise SD (x the first level)", y_label=label, title=f"noise sweep: {label}",
        )  # fmt: skip
        doc.image(os.path.relpath(png, out), f"noise sweep, {label}")
    rows = []
    for (_case, runs), x in zip(noise_cases, xs, strict=True):
        for m in all_modes:
            if m in runs:
                result = runs[m].result
                rows.append(
                    [
                        f"x{x:g}",
                        labels.get(m, m),
                        _fmt(result["refine"].get("final_resolution_angstrom")),
                        _fmt(result["summary"].get("truth_fsc_0143_angstrom")),
                        _fmt(result["refine"].get("reached_local_searches")),
                        str(result["refine"].get("regularized_calls")),
                    ]
                )
    doc.table(
        ["noise SD", "mode", "RELION final (A)", "vs truth FSC 0.143 (A)",
         "reached local searches", "regularized calls"],
        rows,
    )  # fmt: skip
