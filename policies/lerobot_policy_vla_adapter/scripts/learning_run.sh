#!/usr/bin/env bash
# "It learns": train VLA-Adapter from scratch (tiny Prismatic backbone from the testing kit, full fine-tune) on a
# one-task Meta-World dataset, then evaluate it with lerobot-eval. Usage: learning_run.sh <work dir> [steps]
set -euo pipefail
WORK="${1:?work dir}"; STEPS="${2:-500}"
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/learning.sh"
learning_setup "$WORK"
[ -f "$WORK/vlm/prismatic_config.json" ] || "$BIN/python" -c "
from lerobot_vla_tools.testing.prismatic import build_tiny_prismatic
build_tiny_prismatic('$WORK/vlm', image_size=64, patch_size=8)"
[ -d "$WORK/train/checkpoints/last" ] || "$BIN/lerobot-train" --policy.type=vla_adapter --policy.vlm_path="$WORK/vlm" \
  --policy.training_mode=full --policy.num_action_queries=16 --policy.optimizer_lr=3e-4 \
  --policy.scheduler_warmup_steps=100 --policy.scheduler_decay_steps="$STEPS" --policy.device=cpu \
  --policy.push_to_hub=false --dataset.repo_id=$LEARNING_REPO_ID --dataset.root="$WORK/data" \
  --steps="$STEPS" --batch_size="${BATCH:-8}" --num_workers=0 --log_freq=25 --save_freq="$STEPS" \
  --output_dir="$WORK/train" 2>&1 | tee "$WORK/train.log"
"$BIN/lerobot-eval" --policy.path="$WORK/train/checkpoints/last/pretrained_model" --env.type=metaworld \
  --env.task=button-press-topdown-v3 --eval.n_episodes="${EPISODES:-10}" --eval.batch_size=1 --eval.use_async_envs=false \
  --policy.device=cpu --output_dir="$WORK/eval" 2>&1 | tee "$WORK/eval.log"
