"""``scripts/gpu_bench.sh``: option and wheel checks, and the whole ``--dry`` run (tiny sizes on CPU).

The GPU run itself needs an H100/H200; ``--dry`` runs the same three steps at tiny size on CPU and records, per
step, the command it ran and the exact command the GPU run uses.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_bench.sh"
REQUIRED = [
    "lerobot_vla_plugins-0.1.0",
    "lerobot_vla_tools-0.1.0",
    "lerobot_policy_a1-0.1.0",
    "lerobot_policy_seer-0.1.0",
    "lerobot_policy_vita_vla-0.1.0",
    "lerobot_policy_vla_adapter-0.1.0",
    "lerobot-0.6.1",
    "draccus-0.11.6",
    "mergedeep-1.3.4",
    "toml-0.10.2",
    "transformers-5.5.4",
    "tokenizers-0.22.2",
    "gymnasium-1.4.0",
    "farama_notifications-0.0.6",
    "termcolor-3.3.0",
    "num2words-0.5.14",
    "docopt-0.6.2",
    "datasets-4.8.5",
    "dill-0.4.1",
    "multiprocess-0.70.19",
    "av-15.1.0",
    "jsonlines-4.0.0",
]


def wheel_dir(tmp_path: Path, names: list[str]) -> Path:
    """A folder of (empty) wheel files with these ``name-version`` stems: discovery reads names only."""
    d = tmp_path / "whl"
    d.mkdir()
    for n in names:
        (d / f"{n}-py3-none-any.whl").write_bytes(b"")
    return d


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_unknown_option_is_refused():
    proc = run("--gpu=h100")
    assert proc.returncode == 2 and "unknown option --gpu=h100" in proc.stderr


def test_missing_wheels_are_named_with_the_fix(tmp_path):
    wheels = wheel_dir(
        tmp_path, [n for n in REQUIRED if not n.startswith(("transformers", "lerobot_policy_a1"))]
    )
    proc = run("--dry", f"--wheels={wheels}", f"--out={tmp_path / 'out'}")
    assert proc.returncode == 2
    assert "lacks wheels of: lerobot_policy_a1 transformers" in proc.stderr and "--prepare" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_two_versions_of_one_wheel_are_refused(tmp_path):
    wheels = wheel_dir(tmp_path, [*REQUIRED, "transformers-5.17.0"])
    proc = run("--dry", f"--wheels={wheels}", f"--out={tmp_path / 'out'}")
    assert proc.returncode == 2 and "holds 2 wheels of transformers" in proc.stderr


def test_dry_run_runs_every_step_tiny_on_cpu_and_writes_json_and_markdown(tmp_path):
    wheels = wheel_dir(tmp_path, REQUIRED)
    out = tmp_path / "out"
    proc = run("--dry", f"--wheels={wheels}", f"--out={out}", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{len(list(wheels.iterdir()))} wheels, every required one once" in proc.stdout
    report = json.loads((out / "gpu_bench.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["speed", "early_exit", "cuda_graphs"] and report["machine"]["dry"] is True
    assert all(s["exit"] == 0 for s in steps.values())
    # the GPU commands: paper size, bf16, batch 1, CUDA graphs; A1's early exit at paper size; the equality test
    gpu = steps["speed"]["gpu_command"]
    for flag in ("--sizes=paper", "--device=cuda", "--dtype=bfloat16", "--batch_sizes=1", "--phases=infer"):
        assert flag in gpu
    assert "--compile_mode=reduce-overhead" in gpu
    assert "early_exit --size=paper --device=cuda" in steps["early_exit"]["gpu_command"]
    assert "-k test_cuda_graphs_give_the_eager_chunk" in steps["cuda_graphs"]["gpu_command"]
    # the tiny CPU runs produced results: a speed row, the three early-exit modes, the test (skipped on CPU)
    assert [c["case"] for c in steps["speed"]["report"]["cases"]] == ["seer@tiny"]
    assert len(steps["early_exit"]["report"]["rows"]) == 3
    assert steps["cuda_graphs"]["tests"] == {"tests": 1, "failures": 0, "errors": 0, "skipped": 1}
    md = (out / "gpu_bench.md").read_text()
    assert md.startswith("# gpu_bench (dry run, tiny sizes on CPU)") and "## early_exit (exit 0" in md
