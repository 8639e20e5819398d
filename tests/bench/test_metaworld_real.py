"""The Meta-World protocol for real: a tiny evo1 trained with lerobot-train on the cached Meta-World dataset, then
``lerobot-vla-bench --protocol=metaworld`` running real lerobot-eval episodes in MuJoCo, then a resume.

Slow: one failing Meta-World episode is 500 steps with two 480x480 renders per step (several minutes on 2 CPU
cores). Run with ``pytest -m slow tests/bench/test_metaworld_real.py``.
"""

import csv
import json

import pytest
from lerobot_vla_tools.bench.cli import main
from lerobot_vla_tools.testing import run_cli
from lerobot_vla_tools.testing.evo1 import TINY_EVO1_FLAGS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_tiny_evo1(tmp_path_factory, metaworld_dataset, tiny_internvl):
    repo_id, root = metaworld_dataset
    out = tmp_path_factory.mktemp("train") / "run"
    run_cli(
        "lerobot-train", *TINY_EVO1_FLAGS, f"--policy.vlm_model_name={tiny_internvl}", f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}", "--steps=4", "--batch_size=2", "--num_workers=0", "--save_freq=4", f"--output_dir={out}",
    )  # fmt: skip
    return out / "checkpoints" / "last" / "pretrained_model"


def test_metaworld_protocol_runs_real_episodes_and_resumes(tmp_path, trained_tiny_evo1, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MUJOCO_GL", "egl")
    out = tmp_path / "bench"
    args = [
        "--protocol=metaworld", "--tasks=button-press-topdown-v3", "--trials=1", "--seeds=[1000]", f"--output_dir={out}",
        f"--policy.path={trained_tiny_evo1}", "--policy.device=cpu", "--policy.n_action_steps=8",
        "--policy.num_inference_timesteps=4",
    ]  # fmt: skip
    assert main(args) == 0
    info = json.loads(
        (out / "units" / "seed1000" / "easy" / "button-press-topdown-v3" / "eval_info.json").read_text()
    )
    assert info["overall"]["n_episodes"] == 1  # written by the real lerobot-eval
    with open(out / "per_unit.csv", newline="") as f:
        (unit,) = list(csv.DictReader(f))
    rate = 100.0 * int(unit["successes"])
    assert (
        f"| **evo1 (run@last) + evo1 preset** | {rate:.1f} | - | - | - | {rate:.1f} | this run (1 episodes) |"
        in (out / "table.md").read_text()
    )
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"

    capsys.readouterr()
    assert main(args) == 0  # the same command again: nothing is re-evaluated
    assert "done earlier" in capsys.readouterr().out
    assert (
        json.loads(
            (out / "units" / "seed1000" / "easy" / "button-press-topdown-v3" / "eval_info.json").read_text()
        )
        == info
    )
