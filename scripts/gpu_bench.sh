#!/usr/bin/env bash
# The GPU run of issue 17, in one command, for an H100/H200 machine that has this repository and a folder of wheels
# (PyTorch, CUDA and the common scientific packages come with the machine's image; nothing is downloaded there).
#
#   scripts/gpu_bench.sh --prepare            # HERE (network): build our wheels + download LeRobot's into .whl/
#   scripts/gpu_bench.sh                      # THERE: install .whl/ into /tmp/site, run the three steps
#   scripts/gpu_bench.sh --dry                # anywhere: the same steps, tiny and on CPU, with .venv's python
#
# Steps (each bounded by its own timeout, 330 + 90 + 45 s: under 8 minutes with the install):
#   1. speed:      every paper-size row of lerobot-vla-speed, bf16, batch 1, inference, each policy of ours also
#                  with --compile_mode=reduce-overhead (CUDA graphs, the mode tests/test_compile.py checks); one
#                  case at a time (45 s each at most), the tables rewritten after each, so a timeout keeps them
#   2. early_exit: the A1 early-exit benchmark at paper size (python -m lerobot_vla_tools.speed.early_exit)
#   3. cuda_graphs: tests/test_compile.py::test_cuda_graphs_give_the_eager_chunk (skipped without a GPU)
# Output: <out>/gpu_bench.json (machine, every step's command, exit status, wall time and results) and
# <out>/gpu_bench.md (the tables), plus each step's own files, stdout (<step>.out) and stderr (<step>.log).
#
# Options: --dry, --prepare, --wheels=DIR (default .whl), --out=DIR (default outputs/gpu_bench),
#          --dataset_root=DIR (a Meta-World LeRobot dataset for the early-exit frames; default: carried
#          .whl/metaworld_2ep if present, else the testing kit's cached one), --python=EXE (default python3;
#          .venv/bin/python with --dry).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRY=0
PREPARE=0
WHEELS=.whl
OUT=outputs/gpu_bench
DATASET=""
PY=""
for arg in "$@"; do
  case "$arg" in
    --dry) DRY=1 ;;
    --prepare) PREPARE=1 ;;
    --wheels=*) WHEELS="${arg#*=}" ;;
    --out=*) OUT="${arg#*=}" ;;
    --dataset_root=*) DATASET="${arg#*=}" ;;
    --python=*) PY="${arg#*=}" ;;
    -h | --help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "gpu_bench.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

# Our distributions (built from this repo) and the packages LeRobot needs that the machine's image lacks or has in a
# version LeRobot 0.6.1 refuses (transformers < 5.6; tokenizers to match). Versions: uv.lock.
OURS=(lerobot_vla_plugins lerobot_vla_tools lerobot_policy_a1 lerobot_policy_seer lerobot_policy_vita_vla lerobot_policy_vla_adapter)
THEIRS=(lerobot draccus mergedeep toml transformers tokenizers gymnasium farama-notifications termcolor num2words
  docopt datasets dill multiprocess av jsonlines)

norm() { echo "$1" | tr 'A-Z-.' 'a-z__'; }

if [ "$PREPARE" = 1 ]; then
  UV="${UV:-.venv/bin/uv}"
  mkdir -p "$WHEELS"
  "$UV" build --wheel --package lerobot_vla_plugins -o "$WHEELS"
  "$UV" build --wheel --package lerobot_vla_tools -o "$WHEELS"  # the speed benchmarks and the testing kit
  for d in policies/lerobot_policy_*; do "$UV" build --wheel "$d" -o "$WHEELS"; done
  reqs="$("$UV" export --frozen --no-hashes --no-dev --all-packages --no-emit-workspace)"
  for name in "${THEIRS[@]}"; do
    pin="$(echo "$reqs" | grep -iE "^${name}==" | cut -d' ' -f1 | head -1)"
    [ -n "$pin" ] || { echo "gpu_bench.sh: $name is not in uv.lock" >&2; exit 2; }
    # a binary wheel for the GPU machine's platform, else (a pure-Python sdist such as docopt) one built here
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d "$WHEELS" "$pin" 2>/dev/null ||
      .venv/bin/python -m pip wheel -q --no-deps -w "$WHEELS" "$pin"
  done
  # the early-exit benchmark's frames: the testing kit's 2-episode Meta-World dataset (MP4), carried along
  ds="$(.venv/bin/python -c 'from lerobot_vla_tools.testing.fixtures import cached_metaworld_dataset as c; print(c(episodes=2)[1])')"
  rm -rf "$WHEELS/metaworld_2ep" && cp -r "$ds" "$WHEELS/metaworld_2ep"
  du -sh "$WHEELS"
  exit 0
fi

# ---- wheel discovery: every required distribution exactly once
if [ "$DRY" = 1 ] && [ ! -d "$WHEELS" ]; then
  echo "gpu_bench.sh: --dry: no $WHEELS/ (run --prepare first to check it); skipping the wheel check" >&2
else
  [ -d "$WHEELS" ] || { echo "gpu_bench.sh: no wheel folder $WHEELS (make it with --prepare, carry it)" >&2; exit 2; }
  shopt -s nullglob
  found=()
  for w in "$WHEELS"/*.whl; do found+=("$(norm "$(basename "$w" | cut -d- -f1)")"); done
  missing=()
  for name in "${OURS[@]}" "${THEIRS[@]}"; do
    n="$(norm "$name")"
    count="$(printf '%s\n' "${found[@]:-}" | grep -cxF "$n" || true)"
    if [ "$count" = 0 ]; then missing+=("$name"); fi
    if [ "$count" -gt 1 ]; then
      echo "gpu_bench.sh: $WHEELS holds $count wheels of $name; keep one (pip --no-deps stops on two)" >&2
      exit 2
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "gpu_bench.sh: $WHEELS lacks wheels of: ${missing[*]} (scripts/gpu_bench.sh --prepare writes them)" >&2
    exit 2
  fi
  echo "[gpu_bench] $WHEELS: ${#found[@]} wheels, every required one once"
fi

if [ "$DRY" = 1 ]; then
  PY="${PY:-.venv/bin/python}"
  INSTALL="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHEELS/*.whl"
  echo "[gpu_bench] --dry: not installing; on the GPU machine: $INSTALL && export PYTHONPATH=/tmp/site"
else
  PY="${PY:-python3}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use --dry on a CPU machine'"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MUJOCO_GL=egl PYTHONUNBUFFERED=1
if [ -z "$DATASET" ] && [ -d "$WHEELS/metaworld_2ep" ]; then DATASET="$WHEELS/metaworld_2ep"; fi
mkdir -p "$OUT"

# ---- the exact commands (GPU) and their tiny CPU counterparts (--dry runs the latter, records both)
GPU_SPEED_ARGS=(--sizes=paper --device=cuda --dtype=bfloat16 --batch_sizes=1 --phases=infer
  --compile_mode=reduce-overhead --repeats=3 --warmup=1 --timeout_s=45)
GPU_EXIT_ARGS=(--size=paper --device=cuda)
if [ "$DRY" = 1 ]; then
  SPEED_ARGS=(--sizes=tiny --policies=seer --device=cpu --dtype=float32 --batch_sizes=1 --phases=infer
    --repeats=1 --warmup=0)
  EXIT_ARGS=(--size=tiny --device=cpu --calib_frames=4 --eval_frames=2)
  T_SPEED=300 T_EXIT=300 T_TEST=300
else
  SPEED_ARGS=("${GPU_SPEED_ARGS[@]}")
  EXIT_ARGS=("${GPU_EXIT_ARGS[@]}")
  T_SPEED=330 T_EXIT=90 T_TEST=45
fi
if [ -n "$DATASET" ]; then
  EXIT_ARGS+=("--dataset_root=$DATASET")
  GPU_EXIT_ARGS+=("--dataset_root=$DATASET")
fi

STEPS_TSV="$OUT/steps.tsv"
: >"$STEPS_TSV"
step() { # name timeout_s gpu_command command...
  local name="$1" limit="$2" gpu="$3"
  shift 3
  echo "[gpu_bench] $name: $*"
  local t0 rc
  t0="$EPOCHREALTIME"
  set +e
  timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.log"
  rc=$?
  set -e
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$t0" "$EPOCHREALTIME" "$*" "$gpu" >>"$STEPS_TSV"
  echo "[gpu_bench] $name: exit $rc"
}

SPEED_OUT=(--output_json="$OUT/speed.json" --output_md="$OUT/speed.md")
EXIT_OUT=(--scratch="$OUT/early_exit_scratch" --json="$OUT/early_exit.json")
TEST=(-m pytest tests/test_compile.py -q -p no:cacheprovider -k test_cuda_graphs_give_the_eager_chunk
  --junitxml="$OUT/cuda_graphs.xml")
# lerobot-vla-speed's options, one case at a time, the JSON and markdown rewritten after each case: a step stopped
# by its timeout keeps the rows it measured
cat >"$OUT/speed_by_case.py" <<'PY'
import json, sys
from pathlib import Path

import draccus

from lerobot_vla_tools.speed.cli import SpeedConfig, settings_from
from lerobot_vla_tools.speed.harness import format_markdown, run_benchmark, select_cases

cfg = draccus.parse(SpeedConfig, args=sys.argv[1:])
settings = settings_from(cfg)
report = None
for case in select_cases(settings):
    part = run_benchmark(settings, [case], log=lambda m: print(m, file=sys.stderr, flush=True))
    report = part if report is None else {**report, "cases": report["cases"] + part["cases"]}
    for path, text in ((cfg.output_json, json.dumps(report, indent=1)), (cfg.output_md, format_markdown(report) + "\n")):
        Path(path + ".tmp").write_text(text)
        Path(path + ".tmp").replace(path)
print(format_markdown(report))
PY
step speed "$T_SPEED" "python3 $OUT/speed_by_case.py ${GPU_SPEED_ARGS[*]} ${SPEED_OUT[*]}" \
  "$PY" "$OUT/speed_by_case.py" "${SPEED_ARGS[@]}" "${SPEED_OUT[@]}"
step early_exit "$T_EXIT" "python3 -m lerobot_vla_tools.speed.early_exit ${GPU_EXIT_ARGS[*]} ${EXIT_OUT[*]}" \
  "$PY" -m lerobot_vla_tools.speed.early_exit "${EXIT_ARGS[@]}" "${EXIT_OUT[@]}"
step cuda_graphs "$T_TEST" "python3 ${TEST[*]}" "$PY" "${TEST[@]}"

# ---- one JSON + one markdown file
"$PY" - "$OUT" "$DRY" <<'EOF'
import json, platform, sys, xml.etree.ElementTree as ET
from pathlib import Path

out, dry = Path(sys.argv[1]), sys.argv[2] == "1"
import torch

machine = {"python": platform.python_version(), "torch": torch.__version__, "dry": dry}
if torch.cuda.is_available():
    machine["gpu"] = torch.cuda.get_device_name()
steps, md = [], [f"# gpu_bench ({'dry run, tiny sizes on CPU' if dry else machine.get('gpu', 'no GPU')})", ""]
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, t0, t1, cmd, gpu_cmd = line.split("\t")
    wall = float(t1) - float(t0)
    entry = {"name": name, "exit": int(rc), "wall_s": round(wall, 1), "command": cmd, "gpu_command": gpu_cmd}
    if name == "speed" and (out / "speed.json").is_file():
        entry["report"] = json.loads((out / "speed.json").read_text())
        table = (out / "speed.md").read_text()
    elif name == "early_exit" and (out / "early_exit.json").is_file():
        entry["report"] = json.loads((out / "early_exit.json").read_text())
        table = "```text\n" + (out / f"{name}.out").read_text().strip() + "\n```"  # its table (stderr: .log)
    elif name == "cuda_graphs" and (out / "cuda_graphs.xml").is_file():
        root = ET.parse(out / "cuda_graphs.xml").getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        entry["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        table = f"tests/test_compile.py::test_cuda_graphs_give_the_eager_chunk: {entry['tests']}"
    else:
        table = "(no result: see " + f"{name}.log)"
    steps.append(entry)
    md += [f"## {name} (exit {rc}, {wall:.0f} s)", "", f"`{cmd}`", "", table, ""]
(out / "gpu_bench.json").write_text(json.dumps({"machine": machine, "steps": steps}, indent=1))
(out / "gpu_bench.md").write_text("\n".join(md) + "\n")
print(f"[gpu_bench] wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'}")
sys.exit(1 if any(s["exit"] != 0 for s in steps) else 0)
EOF
