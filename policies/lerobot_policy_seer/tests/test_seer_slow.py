"""Slow: Seer learns on the real Meta-World demonstrations (its training loss falls) and ``lerobot-eval`` runs a
full episode with the checkpoint."""

from __future__ import annotations

import json

import pytest
from lerobot_vla_tools.cli.demo import parse_losses
from lerobot_vla_tools.testing import TEST_TASK, run_cli


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_seer_training_loss_falls_and_lerobot_eval_runs_an_episode(
    tmp_path, metaworld_dataset, tiny_seer_overrides
):
    repo_id, root = metaworld_dataset
    out = tmp_path / "train"
    proc = run_cli(
        "lerobot-train",
        "--policy.type=seer",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        *[f"--policy.{k}={v}" for k, v in tiny_seer_overrides.items()],
        "--policy.history_length=2",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=120",
        "--batch_size=8",
        "--num_workers=0",
        "--save_freq=120",
        "--log_freq=10",
        f"--output_dir={out}",
    )
    losses = [loss for _, loss in parse_losses(proc.stdout, 10)]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    eval_dir = tmp_path / "eval"
    run_cli(
        "lerobot-eval",
        f"--policy.path={out / 'checkpoints' / 'last' / 'pretrained_model'}",
        "--env.type=metaworld",
        f"--env.task={TEST_TASK}",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        "--eval.use_async_envs=false",
        "--policy.device=cpu",
        f"--output_dir={eval_dir}",
    )
    overall = json.loads((eval_dir / "eval_info.json").read_text())["overall"]
    assert overall["n_episodes"] == 1 and 0 <= overall["pc_success"] <= 100
    assert list((eval_dir / "videos").rglob("*.mp4"))
