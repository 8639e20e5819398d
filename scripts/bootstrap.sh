#!/usr/bin/env bash
# Create or update the project environment in .venv (idempotent; a second run takes seconds).
#
# Source it from the other scripts or run it directly. It
#   1. finds a Python 3.12 interpreter, even where `python3` is older and 3.12 is only reachable
#      through a version manager (pyenv, asdf, uv-managed or system installs);
#   2. creates .venv with it and installs uv (from the package index) into it;
#   3. runs `uv sync --all-packages --locked`: the light library, every plugin, the tools distribution and the dev tools,
#      exactly as pinned in uv.lock.
# Nothing but packages from the package index is downloaded. Override the interpreter with PYTHON=/path.
set -euo pipefail

VLA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$VLA_ROOT/.venv"
UV_VERSION="0.13.8"

_is_py312() {  # $1: candidate interpreter; succeeds if it runs and is CPython 3.12
  [ -n "${1:-}" ] || return 1
  "$1" -c 'import sys; raise SystemExit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1
}

find_python312() {
  local c
  local candidates=()
  if [ -n "${PYTHON:-}" ]; then  # an explicit choice is used or refused, never silently replaced
    if _is_py312 "$PYTHON"; then
      command -v "$PYTHON" 2>/dev/null || echo "$PYTHON"
      return 0
    fi
    echo "error: PYTHON=$PYTHON is not a working Python 3.12 interpreter; unset it or point it to python3.12." >&2
    return 1
  fi
  candidates+=("python3.12" "python3" "python")
  if command -v pyenv >/dev/null 2>&1; then
    c="$(pyenv root 2>/dev/null || true)"
    [ -n "$c" ] && candidates+=("$c"/versions/3.12*/bin/python3.12)
  fi
  candidates+=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12)
  candidates+=("$HOME"/.asdf/installs/python/3.12*/bin/python3.12)
  candidates+=("$HOME"/.local/share/uv/python/cpython-3.12*/bin/python3.12)
  candidates+=(/usr/local/bin/python3.12 /usr/bin/python3.12 /opt/homebrew/bin/python3.12)
  candidates+=(/opt/conda/bin/python3.12 "$HOME"/miniconda3/bin/python3.12 "$HOME"/anaconda3/bin/python3.12)
  for c in "${candidates[@]}"; do
    if _is_py312 "$c"; then
      command -v "$c" 2>/dev/null || echo "$c"
      return 0
    fi
  done
  cat >&2 <<'MSG'
error: no Python 3.12 found. LeRobot 0.6 needs Python 3.12.
  Looked for: $PYTHON, python3.12/python3/python on PATH, pyenv versions 3.12.*, asdf, uv-managed
  and system installs (/usr/bin, /usr/local/bin, Homebrew, conda).
  Fix: install Python 3.12 (e.g. `pyenv install 3.12`) or point to one with PYTHON=/path/to/python3.12.
MSG
  return 1
}

vla_bootstrap() {
  local py
  if [ -x "$VENV/bin/python" ] && _is_py312 "$VENV/bin/python"; then
    py="$VENV/bin/python"
  else
    py="$(find_python312)" || return 1
    echo "[setup] creating .venv with $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -m uv --version 2>/dev/null | grep -q "uv $UV_VERSION"; then
    echo "[setup] installing uv $UV_VERSION into .venv"
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip --upgrade >/dev/null
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  # --locked: install exactly uv.lock (fails if pyproject files changed without `uv lock`).
  # UV_PYTHON_DOWNLOADS=never: never fetch an interpreter; only packages come from the index.
  # --compile-bytecode: write .pyc files at install time; where PYTHONDONTWRITEBYTECODE is set, every
  # process would otherwise recompile torch, transformers and lerobot from source (about 10 s each).
  (cd "$VLA_ROOT" && UV_PYTHON_DOWNLOADS=never VIRTUAL_ENV="$VENV" \
    "$VENV/bin/python" -m uv sync --all-packages --locked --compile-bytecode --python "$VENV/bin/python" --quiet)
  export PATH="$VENV/bin:$PATH"
  export VIRTUAL_ENV="$VENV"
  # Headless MuJoCo rendering for Meta-World (EGL works on CPU through Mesa).
  export MUJOCO_GL="${MUJOCO_GL:-egl}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  vla_bootstrap
  echo "[setup] .venv is ready: $("$VENV/bin/python" -c 'import lerobot, sys; print("python", sys.version.split()[0], "| lerobot", lerobot.__version__)')"
fi
