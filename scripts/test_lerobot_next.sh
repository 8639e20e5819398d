#!/usr/bin/env bash
# Run the LeRobot-compatibility tests against LeRobot's development branch (0.6.2), in a scratch venv.
#
#   ./scripts/test_lerobot_next.sh                      # LeRobot from git+https://github.com/huggingface/lerobot@main
#   LEROBOT_SRC=/path/to/lerobot ./scripts/test_lerobot_next.sh   # a local checkout (or a bare git dir: its HEAD)
#   SCRATCH=/tmp/next ./scripts/test_lerobot_next.sh    # where the venv goes (default: a temp dir, kept)
#
# Installs that LeRobot with the core and the two policies whose checkpoint glue changes (a1, vla_adapter), then
# runs tests/test_lerobot_compat.py and the --help / bad-flag tests of tests/test_cli.py there. Needs the package
# index (torch and friends come from the uv cache when it has them). Not part of CI: run it before widening the
# lerobot pin in pyproject.toml.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SCRATCH="${SCRATCH:-$(mktemp -d -t lerobot-next-XXXXXX)}"
UV="${UV:-$REPO/.venv/bin/uv}"
command -v "$UV" >/dev/null 2>&1 || UV=uv
mkdir -p "$SCRATCH"
# the interpreter of the project's own venv (bootstrap.sh found a Python 3.12), else whatever uv finds
PYTHON="${PYTHON:-$("$REPO/.venv/bin/python" -c 'import sys; print(sys._base_executable)' 2>/dev/null || echo 3.12)}"

if [[ -n "${LEROBOT_SRC:-}" && -d "$LEROBOT_SRC" && ! -e "$LEROBOT_SRC/pyproject.toml" ]]; then
    # a bare git directory: unpack its HEAD
    rm -rf "$SCRATCH/lerobot-src" && mkdir -p "$SCRATCH/lerobot-src"
    git --git-dir="$LEROBOT_SRC" archive HEAD | tar -x -C "$SCRATCH/lerobot-src"
    echo "[next] LeRobot $(git --git-dir="$LEROBOT_SRC" rev-parse HEAD) from $LEROBOT_SRC"
    LEROBOT="$SCRATCH/lerobot-src"
elif [[ -n "${LEROBOT_SRC:-}" ]]; then
    LEROBOT="$LEROBOT_SRC"
else
    LEROBOT="git+https://github.com/huggingface/lerobot@main"
fi
if [[ -d "$LEROBOT" ]]; then
    SPEC="lerobot[evo1,metaworld,training,peft,smolvla] @ file://$(cd "$LEROBOT" && pwd)"
else
    SPEC="lerobot[evo1,metaworld,training,peft,smolvla] @ $LEROBOT"
fi

echo "[next] venv in $SCRATCH/venv"
"$UV" venv --quiet --allow-existing --python "$PYTHON" "$SCRATCH/venv"
# --no-sources: LeRobot's pyproject routes torch to the PyTorch CUDA index; take the package index's torch instead
# (the one uv.lock has). Our own packages are passed as paths, so nothing of ours comes from the index.
"$UV" pip install --quiet --no-sources -p "$SCRATCH/venv/bin/python" \
    "$SPEC" \
    "$REPO" "$REPO/policies/lerobot_policy_a1" "$REPO/policies/lerobot_policy_vla_adapter" \
    "pytest>=8.1,<10" "pytest-timeout>=2.4,<3"
"$SCRATCH/venv/bin/python" -c "import lerobot, importlib.metadata as m; print('[next] lerobot', m.version('lerobot'))"

cd "$REPO"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled MUJOCO_GL="${MUJOCO_GL:-egl}"
# rootdir = the repo (its pytest settings); the two policies' packages are the only plugins installed
exec "$SCRATCH/venv/bin/python" -m pytest -p no:cacheprovider tests/test_lerobot_compat.py \
    "tests/test_cli.py::test_a_bad_policy_flag_names_the_field_on_the_command_line" \
    "tests/test_cli.py::test_help_of_every_policy_type" -q "$@"
