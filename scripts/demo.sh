#!/usr/bin/env bash
# Set up (or update) .venv, then run the demo: record Meta-World expert demonstrations, train a policy on CPU,
# evaluate it in Meta-World and print the success rate, the video and the loss curve. Arguments are passed
# to `lerobot-vla-demo` (see `./scripts/demo.sh --help`).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
vla_bootstrap
cd "$VLA_ROOT"
exec lerobot-vla-demo "$@"
