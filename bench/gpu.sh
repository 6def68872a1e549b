#!/usr/bin/env bash
# GPU readiness in at most 8 minutes on one CUDA GPU: transformers scoring in bf16 with the
# accumulator's share of a step, a tiny workflow run with `gpu: 1`, and calibration-tuning
# steps/s (see bench/gpu.py). Writes bench/results/gpu.{md,json}.
#
#   bench/gpu.sh [WORKDIR]
#
# Run it from a checkout installed with the README's command (on a GPU machine, `pip install
# torch==2.13.0` takes the CUDA build). It fails, and measures nothing, when torch sees no CUDA
# device: a GPU was expected. `python bench/gpu.py --device cpu --quick` runs the same steps on
# the CPU, small.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d -t calibbench-gpu-XXXXXX)}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  || echo "bench/gpu.sh: nvidia-smi is missing or failed; checking torch" >&2
start=$(date +%s)
python "$here/bench/gpu.py" --work "$work"
echo "bench/gpu.sh: done in $(( $(date +%s) - start )) s; results in bench/results/gpu.md"
