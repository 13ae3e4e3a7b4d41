#!/usr/bin/env bash
# The GPU half of an IDPO or reward run (docs/teacher.md, "IDPO v6", "Reward fine-tuning"): on the GPU machine, with
# a bundle from scripts/teacher_gpu_bundle.py and the wheels carried, train each config and pack its float16
# checkpoints.
#
#   bash scripts/teacher_gpu_train.sh BUNDLE WHEELS OUT CONFIG[@SEED]...
#
# $STAGE is idpo (default) or reward. CONFIG@SEED trains CONFIG with --seed SEED into <output_dir>_s<SEED> (the
# replicates of a recipe). $PARALLEL (default 1) trains that many at a time on the one GPU, after the first IDPO run
# (alone: it samples the candidates and proposals the others reuse).
# Every config must share the bundle's preference cache (the folds of one cross-fitted run). Into OUT: one
# <run>_<checkpoint>.tar per checkpoint named in $CHECKPOINTS (default "final"; e.g. "step_0000300 final"), float16,
# ~8 MB (under the tool's 16 MB-per-file limit), and logs.tar (every run's log.jsonl and dpo_eval.json).
# $CHECKPOINTS_<i> overrides it for the i-th config (from 1), so a call stays within the tool's 8 files.
# logs.tar also holds each run's output. The machine's image has torch, accelerate, transformers; diffusers (and
# ultralytics, for the reward's detector copy) are not there. $PYTHON (default python3) and $TRAIN_ARGS (extra
# `ivfusion train` arguments, e.g. "--steps 2" for a dry run on the CPU) are optional.
set -euo pipefail
py=${PYTHON:-python3}
bundle=$(realpath "$1") wheels=$2 out=$3
shift 3
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$wheels"/*.whl
export PYTHONPATH=$PWD/src:/tmp/site IVFUSION_SHARED=$bundle/shared YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
stage=${STAGE:-idpo}
train_one() {  # i, config[@seed]
  local i=$1 config=${2%@*} seed= run init cache extra=()
  [[ $2 == *@* ]] && seed=${2##*@}
  read -r run init cache < <("$py" - "$config" <<'EOF'
import sys
from ivfusion.teacher.reward import REWARD_SECTIONS
from ivfusion.teacher.train import IDPO_SECTIONS, load_config
cfg = load_config(sys.argv[1], IDPO_SECTIONS + REWARD_SECTIONS)
print(cfg["output_dir"], cfg["init_from"], cfg["data"].get("cache_dir", "outputs/cache"))
EOF
)
  if [ -n "$seed" ]; then run=${run}_s$seed; extra=(--seed "$seed" --output-dir "$run"); fi
  mkdir -p "$(dirname "$init")" "$cache" "$run"
  [ -e "$init" ] || cp -r "$bundle/init" "$init"
  cp "$bundle"/cache/* "$cache/" 2>/dev/null || true  # pseudo-labels, where the run has them
  if [ "$stage" = idpo ]; then
    rm -rf "$run/preferences" && cp -r "$bundle/preferences" "$run/preferences"
    if [ -f "$bundle/proposals/paths.json" ]; then  # the proposal models, where the config names them
      "$py" - "$bundle/proposals" <<'EOF'
import json, shutil, sys
from pathlib import Path
root = Path(sys.argv[1])
for k, path in enumerate(json.loads((root / "paths.json").read_text())):
    if not Path(path).exists():
        shutil.copytree(root / str(k), path)
EOF
    fi
  else
    cp "$bundle"/preference_*.safetensors "$run/"  # the presets' embeddings; the run reads its own
  fi
  local name start
  name=$(basename "$run") start=$(date +%s)
  mkdir -p "/tmp/logs/$name"
  "$py" -m ivfusion.cli train "$stage" --config "$config" --no-progress --no-resume "${extra[@]}" ${TRAIN_ARGS:-} \
    > "/tmp/logs/$name/stdout.txt" 2>&1 || { tail -20 "/tmp/logs/$name/stdout.txt"; return 1; }
  echo "$run: trained in $(( $(date +%s) - start )) s"
  # the next run of the same cache samples no candidates or proposals again (same keys)
  if [ "$stage" = idpo ]; then
    for cache in candidates proposals; do  # a run without proposals has no proposals cache
      if [ -e "$run/preferences/$cache.safetensors" ]; then cp "$run/preferences/$cache.safetensors" "$bundle/preferences/"; fi
    done
  fi
  "$py" scripts/teacher_fp16.py "$run" "/tmp/fp16/$name" > /dev/null
  local var=CHECKPOINTS_$i ck
  for ck in ${!var:-${CHECKPOINTS:-final}}; do
    tar -cf "$out/${name}_$ck.tar" -C "/tmp/fp16/$name" "$ck"
  done
  cp "$run/log.jsonl" "/tmp/logs/$name/"
  cp "$run"/dpo_eval.json "$run"/reward_summary.json "/tmp/logs/$name/" 2>/dev/null || true
}
i=0 failed=0
for config in "$@"; do
  i=$((i + 1))
  train_one "$i" "$config" &
  # the first run samples the candidates alone, so the others reuse them instead of each sampling its own
  if [ "$i" = 1 ] && [ "$stage" = idpo ] && [ $# -gt 1 ]; then wait -n || failed=1; fi
  while [ "$(jobs -rp | wc -l)" -ge "${PARALLEL:-1}" ]; do wait -n || failed=1; done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
tar -cf "$out/logs.tar" -C /tmp/logs .
ls -la "$out"
exit $failed
