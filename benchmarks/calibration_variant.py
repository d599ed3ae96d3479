"""One calibration variant of a benchmark case: change a few fields, refine, print the result.

Used for the variants in benchmarks/results/calibration_realistic.md, e.g.

    python benchmarks/calibration_variant.py --suite realistic --case rl-betagal-isotropic \
        --name rl-betagal-isotropic-noctf --set simulation.ctf=false --set refine.ctf=false \
        --root /work/runs/rl_diag

The variant is cached like the suite's runs (by its configuration), under ``--root``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from cryoprior.refine.config import suite
from cryoprior.refine.run import run_mode


def _value(text: str):
    """Parse a --set value: JSON (numbers, true/false, null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="realistic")
    parser.add_argument("--case", required=True)
    parser.add_argument("--name", required=True, help="the variant's case name")
    parser.add_argument("--set", action="append", default=[], help="simulation.F=V or refine.F=V")
    parser.add_argument("--mode", default="relion")
    parser.add_argument("--root", required=True)
    args = parser.parse_args()
    case = next(c for c in suite(args.suite) if c.name == args.case)
    changes: dict[str, dict] = {"simulation": {}, "refine": {}}
    for item in args.set:
        key, _, text = item.partition("=")
        part, _, field = key.partition(".")
        if part not in changes or not field:
            parser.error(f"--set {item!r}: expected simulation.FIELD=VALUE or refine.FIELD=VALUE")
        changes[part][field] = _value(text)
    case = dataclasses.replace(
        case,
        name=args.name,
        simulation=dataclasses.replace(case.simulation, **changes["simulation"]),
        refine=dataclasses.replace(case.refine, **changes["refine"]),
        modes=(args.mode,),
    )
    run = run_mode(case, args.mode, args.root)
    refine = {k: v for k, v in run.data["refine"].items() if k != "progress"}
    print(json.dumps({"refine": refine, "summary": run.data["summary"]}, default=str, indent=1))


if __name__ == "__main__":
    main()
