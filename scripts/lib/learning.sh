# Shared by the policies' "it learns" scripts (policies/*/scripts/learning_run.sh); source it, then call
# learning_setup <work dir>: sets BIN (the workspace's .venv/bin), the offline/headless environment, and records the
# one-task Meta-World dataset (20 scripted-expert episodes of button-press-topdown-v3) into <work dir>/data once.
LEARNING_REPO_ID=local/mw-button-press-topdown-20

learning_setup() {
  local work="$1"
  BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin"
  export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}" WANDB_MODE=disabled
  mkdir -p "$work"
  [ -f "$work/data/meta/info.json" ] || "$BIN/lerobot-vla-data" metaworld --tasks=button-press-topdown \
    --episodes_per_task=20 --root="$work/data" --repo_id="$LEARNING_REPO_ID"
}
