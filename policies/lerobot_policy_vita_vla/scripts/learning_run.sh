#!/usr/bin/env bash
# "It learns": the whole VITA-VLA recipe from scratch on a one-task Meta-World dataset, on CPU, with tiny backbones
# from the testing kit: train the Seer teacher, align VITA-VLA to it (stage 1), fine-tune (stage 2), then evaluate
# the teacher and the student with lerobot-eval.
# Usage: learning_run.sh <work dir> [seer steps] [align steps] [finetune steps]   (EPISODES=<eval episodes>)
set -euo pipefail
WORK="${1:?work dir}"; SEER_STEPS="${2:-1500}"; ALIGN_STEPS="${3:-300}"; FT_STEPS="${4:-1500}"
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/learning.sh"
learning_setup "$WORK"
DATA=(--dataset.repo_id=$LEARNING_REPO_ID --dataset.root="$WORK/data" --num_workers=0 --batch_size="${BATCH:-8}"
      --log_freq=25 --policy.device=cpu --policy.push_to_hub=false)
[ -f "$WORK/backbones.json" ] || "$BIN/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from lerobot_vla_plugins.testing.seer import build_tiny_seer_encoders
from lerobot_vla_plugins.testing.vita import build_tiny_vita
work = Path(sys.argv[1])
seer = build_tiny_seer_encoders(work / "seer_encoders")
vita = build_tiny_vita(work / "vita_vlm")
(work / "backbones.json").write_text(json.dumps({"seer": seer, "vita": str(vita)}))
PY
SEER_FLAGS=$("$BIN/python" -c "import json; print(' '.join(f'--policy.{k}={v}' for k, v in json.load(open('$WORK/backbones.json'))['seer'].items()))")
VITA_VLM=$("$BIN/python" -c "import json; print(json.load(open('$WORK/backbones.json'))['vita'])")
# shellcheck disable=SC2086
[ -d "$WORK/seer/checkpoints/last" ] || "$BIN/lerobot-train" --policy.type=seer $SEER_FLAGS --policy.history_length=2 \
  "${DATA[@]}" --steps="$SEER_STEPS" --save_freq="$SEER_STEPS" --output_dir="$WORK/seer" 2>&1 | tee "$WORK/seer.log"
TEACHER="$WORK/seer/checkpoints/last/pretrained_model"
[ -d "$WORK/align/checkpoints/last" ] || "$BIN/lerobot-train" --policy.type=vita_vla --policy.stage=align \
  --policy.teacher_path="$TEACHER" --policy.vlm_path="$VITA_VLM" --policy.vlm_dtype=float32 --policy.vlm_image_size=56 \
  --policy.history_length=2 --policy.optimizer_lr=1e-3 "${DATA[@]}" --steps="$ALIGN_STEPS" --save_freq="$ALIGN_STEPS" \
  --output_dir="$WORK/align" 2>&1 | tee "$WORK/align.log"
[ -d "$WORK/finetune/checkpoints/last" ] || "$BIN/lerobot-train" \
  --policy.path="$WORK/align/checkpoints/last/pretrained_model" --policy.stage=finetune --policy.optimizer_lr=1e-3 \
  "${DATA[@]}" --steps="$FT_STEPS" --save_freq="$FT_STEPS" --output_dir="$WORK/finetune" 2>&1 | tee "$WORK/finetune.log"
for run in seer finetune; do
  [ -f "$WORK/eval_$run/eval_info.json" ] || "$BIN/lerobot-eval" --policy.path="$WORK/$run/checkpoints/last/pretrained_model" \
    --env.type=metaworld --env.task=button-press-topdown-v3 --eval.n_episodes="${EPISODES:-4}" --eval.batch_size=1 \
    --eval.use_async_envs=false --policy.device=cpu --output_dir="$WORK/eval_$run" 2>&1 | tee "$WORK/eval_$run.log"
done
