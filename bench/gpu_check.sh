#!/usr/bin/env bash
# The GPU check: everything a CPU machine cannot show, in one run of 8 minutes or less on one H100/H200.
#   1. the real-model tests (pytest -m real, tests/test_real_model.py) on CUDA;
#   2. the single-GPU accelerate config (params/accelerate/single_gpu_qlora.yaml) launching `medrepro train` on the
#      MMed-IFT two-stage recipe (DoRA, merge, QLoRA) with smollm2-135m in bf16;
#   3. QLoRA on smollm2-135m and on a random ~1B-parameter Llama: tokens/s and peak GPU memory, medrepro's trainer
#      against a plain transformers + peft + bitsandbytes loop (bench/gpu_check.py).
# Writes bench/results/gpu.json (every step's exit status and seconds included) and exits non-zero when a step failed.
#   bench/gpu_check.sh            # on the GPU machine, from a set-up checkout (./run.sh setup)
#   DRY=1 bench/gpu_check.sh      # CPU: tiny shapes, the tests and the launch skipped; checks the script and helper
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
OUT=${OUT:-bench/results/gpu.json}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg PYTHONWARNINGS=ignore
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # deterministic cuBLAS, for the test that resume is bit-identical
LOG=$TMP/steps.jsonl
status=0

step() {  # step NAME TIMEOUT_S CMD...: run with a time limit, log {"step", "rc", "seconds"}, keep going on failure
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@"; local rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d, "limit_s": %d}\n' "$name" "$rc" $((SECONDS - t0)) "$limit" >> "$LOG"
  [ "$rc" -eq 0 ] || { echo "!! $name failed (rc $rc)"; status=1; }
}

if [ -n "${DRY:-}" ]; then
  step helper_dry 600 "$PY" bench/gpu_check.py --device cpu --dry --steps-log "$LOG" --out "${OUT%.json}_dry.json"
  exit $status
fi

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with DRY=1 on a CPU')" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$BIN/medrepro" models build --size smollm2-135m  # the one-time GGUF conversion, outside every timed step

# 1. the real-model tests on the GPU (`real` is not deselected by the pytest config; -m makes the choice explicit)
step tests_real_cuda 130 env MEDREPRO_TEST_DEVICE=cuda "$PY" -m pytest -q -m real tests/test_real_model.py -p no:cacheprovider

# 2. accelerate launch with the single-GPU QLoRA config, on the recipe it is documented for
step accelerate_single_gpu_qlora 120 "$BIN/accelerate" launch --config_file params/accelerate/single_gpu_qlora.yaml \
  "$BIN/medrepro" train --config params/train/mmed_two_stage.yaml --tier smoke \
  config.model=smollm2-135m config.dtype=bf16 config.compute_dtype=bfloat16 config.max_steps=10 \
  config.output_dir="$TMP/accelerate_run"

# 3. QLoRA throughput and memory against the plain loop (the JSON gets the steps above too)
step qlora_bench 210 "$PY" bench/gpu_check.py --device cuda --steps-log "$LOG" --out "$OUT"
if [ -f "$OUT" ]; then
  "$PY" - "$OUT" "$LOG" "$TMP" <<'EOF'
import json, sys, pathlib
out, log, tmp = map(pathlib.Path, sys.argv[1:])
res = json.loads(out.read_text())
res["steps_run"] = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
runs = sorted((tmp / "accelerate_run").glob("*/metrics.json"))  # stage1 (DoRA), stage2 (QLoRA)
res["accelerate_single_gpu_qlora"] = {p.parent.name: json.loads(p.read_text()) for p in runs} or None
out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
print(json.dumps(res["steps_run"]))
EOF
fi
exit $status
