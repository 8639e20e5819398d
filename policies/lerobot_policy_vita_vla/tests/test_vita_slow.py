"""Slow: after Seer is trained, VITA-VLA's stage-1 loss falls (it aligns to the teacher), its stage-2 loss falls
(it learns actions), and ``lerobot-eval`` runs a full episode with the result."""

from __future__ import annotations

import json

import pytest
from lerobot_vla_tools.cli.demo import parse_losses
from lerobot_vla_tools.testing import TEST_TASK, run_cli


def falls(stdout: str, by: float) -> bool:
    losses = [loss for _, loss in parse_losses(stdout, 10)]
    return len(losses) >= 6 and sum(losses[-3:]) / 3 < by * sum(losses[:3]) / 3


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_two_stage_recipe_learns_and_lerobot_eval_runs_an_episode(
    tmp_path, metaworld_dataset, tiny_seer_overrides, tiny_vita_path
):
    repo_id, root = metaworld_dataset
    data = [
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--num_workers=0",
        "--log_freq=10",
        "--batch_size=8",
        "--policy.history_length=2",
    ]
    run_cli(
        "lerobot-train",
        "--policy.type=seer",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        *[f"--policy.{k}={v}" for k, v in tiny_seer_overrides.items()],
        *data,
        "--steps=100",
        "--save_freq=100",
        f"--output_dir={tmp_path / 'seer'}",
    )
    teacher = tmp_path / "seer" / "checkpoints" / "last" / "pretrained_model"
    align = run_cli(
        "lerobot-train",
        "--policy.type=vita_vla",
        "--policy.stage=align",
        f"--policy.teacher_path={teacher}",
        f"--policy.vlm_path={tiny_vita_path}",
        "--policy.vlm_dtype=float32",
        "--policy.vlm_image_size=56",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        "--policy.optimizer_lr=1e-3",
        *data,
        "--steps=80",
        "--save_freq=80",
        f"--output_dir={tmp_path / 'align'}",
    )
    assert falls(align.stdout, 0.8)
    finetune = run_cli(
        "lerobot-train",
        f"--policy.path={tmp_path / 'align' / 'checkpoints' / 'last' / 'pretrained_model'}",
        "--policy.stage=finetune",
        "--policy.optimizer_lr=1e-3",
        *data,
        "--steps=100",
        "--save_freq=100",
        f"--output_dir={tmp_path / 'finetune'}",
    )
    assert falls(finetune.stdout, 0.8)
    eval_dir = tmp_path / "eval"
    run_cli(
        "lerobot-eval",
        f"--policy.path={tmp_path / 'finetune' / 'checkpoints' / 'last' / 'pretrained_model'}",
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
