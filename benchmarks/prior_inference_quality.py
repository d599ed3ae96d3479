"""Side by side: the prior's quality on held-out maps under several inference settings (issue 17).

Reads ``benchmarks/prior_eval.py`` results (JSON, one per setting: ``LABEL=PATH``), and writes
one table per score: FSC 0.5 against the truth (A) and correlation inside the molecule, for
the prior alone and the prior through guard v1 and v2 (raw half-map as the plain map), each
row one protein and level, plus the network's box and the prior's seconds per map; the change
against the first setting in % (FSC 0.5; positive = coarser, worse) and in cc.

Usage: python benchmarks/prior_inference_quality.py LABEL=PATH.json [LABEL=PATH.json ...]
       [--out benchmarks/results/prior_inference_quality]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
METHODS = [("prior", "prior"), ("prior+guard", "guard v1"), ("prior+guard_v2", "guard v2")]


def load(specs: list[str]) -> list[tuple[str, dict]]:
    out = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"expected LABEL=PATH, got {spec!r}")
        out.append((label, json.loads(Path(path).read_text())))
    return out


def table(runs: list[tuple[str, dict]]) -> tuple[str, list[dict]]:
    ref_label, ref = runs[0]
    ref_rows = {(r["protein"], r["level"]): r for r in ref["rows"]}
    head = "| protein | level | " + " | ".join(
        f"{label}: {name}" for label, _ in runs for _, name in METHODS
    )
    lines = [head + " |", "|---|---|" + "---|" * (len(runs) * len(METHODS))]
    records = []
    for key, base in ref_rows.items():
        cells = []
        for label, run in runs:
            row = next((r for r in run["rows"] if (r["protein"], r["level"]) == key), None)
            for method, _ in METHODS:
                if row is None:
                    cells.append("-")
                    continue
                m, b = row["methods"][method], base["methods"][method]
                res, cc = m["res_fsc0.5_angstrom"], m["cc_in_molecule"]
                change = 100.0 * (res / b["res_fsc0.5_angstrom"] - 1.0)
                dcc = cc - b["cc_in_molecule"]
                text = f"{res:.2f} A, cc {cc:.3f}"
                if label != ref_label:
                    text += f" ({change:+.1f} %, {dcc:+.3f})"
                cells.append(text)
                records.append(
                    {
                        "protein": key[0],
                        "level": key[1],
                        "setting": label,
                        "method": method,
                        "res_fsc0.5_angstrom": res,
                        "cc_in_molecule": cc,
                        "res_change_percent": change,
                        "cc_change": dcc,
                        "model_box": row.get("model_box"),
                        "prior_seconds": row.get("prior_seconds"),
                        "current_resolution_angstrom": row.get("current_resolution_angstrom"),
                    }
                )
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    lines += ["", "Network box and the prior's seconds per map (as run, under the load noted):", ""]
    lines.append("| protein | level | " + " | ".join(label for label, _ in runs) + " |")
    lines.append("|---|---|" + "---|" * len(runs))
    for key in ref_rows:
        cells = []
        for _, run in runs:
            row = next((r for r in run["rows"] if (r["protein"], r["level"]) == key), None)
            cells.append(
                "-" if row is None else f"{row['model_box']}^3, {row['prior_seconds']:.1f} s"
            )
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines), records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=PATH of prior_eval JSON results")
    parser.add_argument("--out", default=str(RESULTS / "prior_inference_quality"))
    args = parser.parse_args()
    runs = load(args.runs)
    text, records = table(runs)
    settings = "\n".join(
        f"- {label}: `{run.get('command', '?')}` (settings {run.get('settings')}, "
        f"load average at the end {run.get('load_average', float('nan')):.1f})"
        for label, run in runs
    )
    md = (
        "# The prior's quality under the inference settings of issue 17\n\n"
        "Made by `python benchmarks/prior_inference_quality.py "
        + " ".join(args.runs)
        + "` from these `benchmarks/prior_eval.py` runs:\n\n"
        + settings
        + "\n\nFSC 0.5 against the truth and correlation inside the molecule (raw half-map as "
        "the guard's plain map); in brackets the change against the first setting (FSC 0.5 "
        "in %, positive = coarser = worse; cc difference):\n\n" + text + "\n"
    )
    out = Path(args.out)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"runs": args.runs, "rows": records}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
