"""Long end-to-end runs (``-m slow``): lerobot-eval with calibrated thresholds, every head x exit-training mode
through lerobot-train, and a short learning run whose loss must fall."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from lerobot_vla_tools.testing.fixtures import run_cli

# a lerobot-eval episode alone is ~2 min on a quiet 2-core CPU; a loaded machine needs far more than the default 900 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def _ckpt(out: Path) -> Path:
    return out / "checkpoints" / "last" / "pretrained_model"


def test_lerobot_eval_runs_with_early_exit_and_writes_exit_stats_next_to_eval_info(
    trained_fm, metaworld_dataset, tmp_path
):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(_ckpt(trained_fm), ckpt)
    repo_id, root = metaworld_dataset
    run_cli(
        "lerobot-a1-calibrate",
        f"--policy.path={ckpt}",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--num_samples=16",
        "--batch_size=8",
        "--policy.device=cpu",
    )
    # no --output_dir: lerobot-eval picks outputs/eval/<date>/<time>_metaworld_a1 under the cwd
    run_cli(
        "lerobot-eval",
        f"--policy.path={ckpt}",
        "--env.type=metaworld",
        "--env.task=button-press-topdown-v3",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        "--eval.use_async_envs=false",
        "--policy.device=cpu",
        cwd=tmp_path,
    )
    infos = list((tmp_path / "outputs" / "eval").glob("**/eval_info.json"))
    assert len(infos) == 1
    stats = json.loads((infos[0].parent / "a1_exit_stats.json").read_text())
    assert stats["num_episodes"] == 1 and stats["num_queries"] >= 500 // 4
    assert set(stats["exit_layer_histogram"]) <= {"1", "2", "3"} and 0 < stats["executed_layer_fraction"] <= 1


@pytest.mark.parametrize("head", ["flow_matching", "mlp"])
@pytest.mark.parametrize("mode", ["none", "random", "all"])
def test_lerobot_train_every_head_and_exit_training_mode(
    tiny_molmo, metaworld_dataset, tmp_path, tiny, head, mode
):
    repo_id, root = metaworld_dataset
    flags = [f"--policy.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in tiny.items()]
    proc = run_cli(
        "lerobot-train",
        "--policy.type=a1",
        f"--policy.vlm_name={tiny_molmo}",
        f"--policy.head={head}",
        f"--policy.exit_training={mode}",
        *flags,
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=2",
        "--batch_size=2",
        "--num_workers=0",
        "--log_freq=1",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert "loss:" in proc.stdout
    assert (_ckpt(tmp_path / "out") / "model.safetensors").is_file()


def test_tiny_a1_learns_button_press_demonstrations(tiny_molmo, metaworld_dataset, tmp_path, tiny):
    """From scratch (random tiny backbone), 300 steps: the training loss must fall well below its start."""
    repo_id, root = metaworld_dataset
    flags = [f"--policy.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in tiny.items()]
    proc = run_cli(
        "lerobot-train",
        "--policy.type=a1",
        f"--policy.vlm_name={tiny_molmo}",
        "--policy.exit_training=all",
        *flags,
        "--policy.train_vision_encoder=true",
        "--policy.optimizer_lr=1e-3",
        "--policy.optimizer_vlm_lr=1e-3",
        "--policy.optimizer_vision_lr=1e-3",
        "--policy.scheduler_warmup_steps=20",
        "--policy.scheduler_vlm_freeze_steps=0",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=300",
        "--batch_size=8",
        "--num_workers=0",
        "--log_freq=10",
        "--save_freq=300",
        f"--output_dir={tmp_path / 'out'}",
    )
    losses = [float(x) for x in re.findall(r" loss:([0-9.]+)", proc.stdout)]
    assert len(losses) >= 20
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, f"loss went from {first:.3f} to {last:.3f}"
