#!/usr/bin/env bash
# "It learns": train A1 (flow-matching head, multi-exit training "all") from scratch with a tiny Molmo-style backbone
# from the testing kit on a one-task Meta-World dataset, on CPU, then evaluate it with lerobot-eval at full depth.
# Usage: learning_run.sh <work dir> [steps]   (EPISODES=<eval episodes>, BATCH=<batch size>)
set -euo pipefail
WORK="${1:?work dir}"; STEPS="${2:-2000}"
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/learning.sh"
learning_setup "$WORK"
[ -f "$WORK/vlm/molmo_backbone.json" ] || "$BIN/python" -c "
from lerobot_vla_tools.testing.molmo import build_tiny_molmo
build_tiny_molmo('$WORK/vlm')"
# From scratch the random backbone must train too: vision encoder on, no VLM freeze, one learning rate.
[ -d "$WORK/train/checkpoints/last" ] || "$BIN/lerobot-train" --policy.type=a1 --policy.backbone_family=molmo \
  --policy.vlm_name="$WORK/vlm" --policy.expert_hidden_size=32 --policy.expert_num_heads=2 \
  --policy.expert_intermediate_size=64 --policy.chunk_size=8 --policy.n_action_steps=8 --policy.exit_interval=1 \
  --policy.exit_training=all --policy.train_vision_encoder=true --policy.optimizer_lr=3e-4 \
  --policy.optimizer_vlm_lr=3e-4 --policy.optimizer_vision_lr=3e-4 --policy.scheduler_warmup_steps=100 \
  --policy.scheduler_vlm_freeze_steps=0 --policy.device=cpu --policy.push_to_hub=false \
  --dataset.repo_id=$LEARNING_REPO_ID --dataset.root="$WORK/data" --steps="$STEPS" \
  --batch_size="${BATCH:-8}" --num_workers=0 --log_freq=25 --save_freq="$STEPS" --output_dir="$WORK/train" \
  2>&1 | tee "$WORK/train.log"
[ -f "$WORK/eval/eval_info.json" ] || "$BIN/lerobot-eval" --policy.path="$WORK/train/checkpoints/last/pretrained_model" \
  --policy.use_early_exit=false --env.type=metaworld --env.task=button-press-topdown-v3 \
  --eval.n_episodes="${EPISODES:-4}" --eval.batch_size=1 --eval.use_async_envs=false --policy.device=cpu \
  --output_dir="$WORK/eval" 2>&1 | tee "$WORK/eval.log"
