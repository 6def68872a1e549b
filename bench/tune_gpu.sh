#!/usr/bin/env bash
# Calibration-tuning on one GPU: a ~0.5-1.5B instruction model, a few thousand graded examples,
# ECE and AUROC before and after (raw, zero-shot P(True), probe, tuned, tuned + temperature).
#
#   bench/tune_gpu.sh [MODEL] [WORKDIR]
#
# LIMIT=n (environment) takes the first n items of each task instead: a quick check on a CPU.
# MODEL is a hub id (needs network, and a licence accepted on the hub for gated models) or a
# local transformers directory; default Qwen/Qwen2.5-0.5B-Instruct. Sized for under 10 minutes on
# one H200: ARC-Easy (2,376 items, half of them the training set) and ARC-Challenge (1,172), each
# collected once, then one LoRA run per task. It runs the workflow's own rules (collect, grade,
# split, calibration_tuning) in WORKDIR and appends the table to bench/results/tune_gpu.md.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-Qwen/Qwen2.5-0.5B-Instruct}"
work="${2:-$here/bench/results/tune_gpu_work}"
mkdir -p "$work"
if [[ -d "$model" ]]; then spec="{runtime: hf, path: \"$(cd "$model" && pwd)\", batch_size: 64}"
else spec="{runtime: hf, hub: \"$model\", batch_size: 64}"; fi
cat > "$work/config.yaml" <<YAML
name: tune-gpu
seed: 0
n_bins: 15
bootstrap_resamples: 1000
ci_level: 0.95
calibration_fraction: 0.5
temperatures: [0.7, 0.85, 1.0, 1.2, 1.3]
methods: [raw, temperature, platt, isotonic]
collect_chunk_size: 64
calibration_tuning: {models: [gpu-model], tasks: [arc_easy, arc_challenge], epochs: 2}
models:
  gpu-model: {spec: $spec, gpu: 1}
tasks:
  arc_easy: {spec: {task: arc_easy}${LIMIT:+, limit: $LIMIT}}
  arc_challenge: {spec: {task: arc_challenge}${LIMIT:+, limit: $LIMIT}}
YAML
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi: no GPU?"
start=$(date +%s)
# targets first: --configfile and --resources take every word after them
snakemake runs/tune-gpu/results/tuning/gpu-model/arc_easy.json runs/tune-gpu/results/tuning/gpu-model/arc_challenge.json \
  --snakefile "$here/Snakefile" --directory "$work" --configfile "$work/config.yaml" \
  --cores "$(nproc)" --resources gpu=1
seconds=$(( $(date +%s) - start ))
python - "$work" "$model" "$seconds" <<'PY' | tee -a "$here/bench/results/tune_gpu.md"
import json, sys
from pathlib import Path

work, model, seconds = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"\n## {model}: calibration-tuning on the GPU ({seconds} s wall, collect included)\n")
print("| task | method | ECE [95% CI] | AUROC [95% CI] |\n|---|---|---|---|")
for task in ("arc_easy", "arc_challenge"):
    out = json.loads((work / "runs/tune-gpu/results/tuning/gpu-model" / f"{task}.json").read_text())
    if "error" in out:
        print(f"| {task} | - | {out['error']} | |")
        continue
    for name, entry in out["methods"].items():
        m = entry["summary"]["metrics"]
        cells = [f"{m[k]['estimate']:.3f} [{m[k]['low']:.3f}, {m[k]['high']:.3f}]"
                 if m[k]["estimate"] is not None else m[k].get("reason", "-")
                 for k in ("ece", "auroc")]
        print(f"| {task} | {name} | {cells[0]} | {cells[1]} |")
    print(f"| {task} | best | {out['best']} | |")
PY
