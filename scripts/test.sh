#!/usr/bin/env bash
# Set up (or update) .venv, then run the test suite: the default run excludes tests marked slow
# (pass `-m slow` to run those, or any other pytest arguments).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
vla_bootstrap
cd "$VLA_ROOT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
exec python -m pytest --durations=25 "$@"
