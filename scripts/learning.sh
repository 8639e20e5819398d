#!/usr/bin/env bash
# Set up (or update) .venv, then run the learning protocol (docs/learning.md): record Meta-World demonstrations of
# three tasks, train every policy on them with the same budget, evaluate each task with 20 lerobot-eval episodes,
# and regenerate the results block of docs/learning.md and README.md. Resumable: rerun the same command; each
# evaluated policy's records are kept in docs/learning_records (commit them) and restored by a later run.
# Arguments go to `lerobot-vla-bench --protocol=learning`, e.g. --policies=a1,evo1 or --report_only=true.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
vla_bootstrap
cd "$VLA_ROOT"
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}" WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
exec lerobot-vla-bench --protocol=learning --output_dir=outputs/learning --archive=docs/learning_records \
  --update_docs=docs/learning.md,README.md --docs_image=docs/learning_loss_curves.png "$@"
