#!/usr/bin/env bash
# The GPU half of an IDPO run (docs/teacher.md, "IDPO v6"): on the GPU machine, with a bundle from
# scripts/teacher_gpu_bundle.py and the diffusers wheel carried, train each config and pack its float16 checkpoints.
#
#   bash scripts/teacher_gpu_train.sh BUNDLE WHEELS OUT CONFIG...
#
# Every config must share the bundle's preference cache (the folds of one cross-fitted run). Into OUT: one
# <run>_<checkpoint>.tar per checkpoint named in $CHECKPOINTS (default "final"; e.g. "step_0000300 final"), float16,
# ~8 MB (under the tool's 16 MB-per-file limit), and logs.tar (every run's log.jsonl and dpo_eval.json).
# $CHECKPOINTS_<i> overrides it for the i-th config (from 1), so a call stays within the tool's 8 files.
# The machine's image has torch, accelerate, transformers; diffusers is not there. $PYTHON (default python3) and
# $IDPO_ARGS (extra `ivfusion train idpo` arguments, e.g. "--steps 2" for a dry run on the CPU) are optional.
set -euo pipefail
py=${PYTHON:-python3}
bundle=$(realpath "$1") wheels=$2 out=$3
shift 3
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$wheels"/*.whl
export PYTHONPATH=$PWD/src:/tmp/site IVFUSION_SHARED=$bundle/shared YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
i=0
for config in "$@"; do
  i=$((i + 1))
  read -r run init cache < <("$py" - "$config" <<'EOF'
import sys
from ivfusion.teacher.train import IDPO_SECTIONS, load_config
cfg = load_config(sys.argv[1], IDPO_SECTIONS)
print(cfg["output_dir"], cfg["init_from"], cfg["data"].get("cache_dir", "outputs/cache"))
EOF
)
  mkdir -p "$(dirname "$init")" "$cache" "$run"
  [ -e "$init" ] || cp -r "$bundle/init" "$init"
  cp "$bundle"/cache/* "$cache/" 2>/dev/null || true  # pseudo-labels, where the run has them
  rm -rf "$run/preferences" && cp -r "$bundle/preferences" "$run/preferences"
  start=$(date +%s)
  "$py" -m ivfusion.cli train idpo --config "$config" --no-progress --no-resume ${IDPO_ARGS:-}
  echo "$run: trained in $(( $(date +%s) - start )) s"
  cp "$run/preferences/candidates.safetensors" "$bundle/preferences/"  # the next fold samples none again (same key)
  name=$(basename "$run")
  "$py" scripts/teacher_fp16.py "$run" "/tmp/fp16/$name"
  var=CHECKPOINTS_$i
  for ck in ${!var:-${CHECKPOINTS:-final}}; do
    tar -cf "$out/${name}_$ck.tar" -C "/tmp/fp16/$name" "$ck"
  done
  mkdir -p "/tmp/logs/$name" && cp "$run/log.jsonl" "$run/dpo_eval.json" "/tmp/logs/$name/"
done
tar -cf "$out/logs.tar" -C /tmp/logs .
ls -la "$out"
