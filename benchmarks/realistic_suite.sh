#!/usr/bin/env bash
# The realistic suite, resumable on any machine: `nice benchmarks/realistic_suite.sh` from the
# repository root (after ./run.sh setup). Finished runs' records (JSON, no maps) are imported
# from and exported to benchmarks/results/realistic/records, so a fresh machine goes on where
# another stopped; runs in the cache folder ROOT (default ~/cryoprior-runs/realistic) resume.
# Passes in the order that decides the verdicts first: the first repeat of the isotropic,
# anisotropic and membrane cases; the controls' cut-offs and the x2 noise level; every repeat;
# pure noise and the x5 noise level; then the report into benchmarks/results/realistic.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-$HOME/cryoprior-runs/realistic}
RECORDS=benchmarks/results/realistic/records
B=(nice -n 15 .venv/bin/cryoprior benchmark --root "$ROOT" --records "$RECORDS")
MAIN=(--case rl-betagal-isotropic --case rl-proteasome-anisotropic --case rl-gltph-belt)
CTRL=(--case rl-betagal-cutoff-7.5A --case rl-betagal-cutoff-10A --case rl-betagal-cutoff-15A
      --case rl-betagal-noise-x2)
mkdir -p "$ROOT"
"${B[@]}" "${MAIN[@]}" --repeats 1 >> "$ROOT/suite.log" 2>&1
"${B[@]}" "${CTRL[@]}" >> "$ROOT/suite.log" 2>&1
"${B[@]}" "${MAIN[@]}" >> "$ROOT/suite.log" 2>&1
"${B[@]}" --case rl-pure-noise --case rl-betagal-noise-x5 >> "$ROOT/suite.log" 2>&1
"${B[@]}" --report benchmarks/results/realistic >> "$ROOT/suite.log" 2>&1
