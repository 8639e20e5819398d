"""Seer through LeRobot's own commands on the real cached Meta-World dataset: lerobot-train, resume, the
lerobot-eval loading path, and a (mocked) push to the Hub."""

from __future__ import annotations

import json

import pytest
import torch
from lerobot_vla_tools.testing import run_cli


def seer_cli_args(overrides: dict) -> list[str]:
    return [f"--policy.{k}={v}" for k, v in overrides.items()]


@pytest.fixture(scope="module")
def trained_seer(tmp_path_factory, metaworld_dataset, tiny_seer_overrides):
    repo_id, root = metaworld_dataset
    out = tmp_path_factory.mktemp("seer_train") / "run"
    run_cli(
        "lerobot-train",
        "--policy.type=seer",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        *seer_cli_args(tiny_seer_overrides),
        "--policy.history_length=2",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=2",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        "--log_freq=1",
        f"--output_dir={out}",
    )
    return out


def test_lerobot_train_writes_a_loadable_checkpoint_with_the_seer_losses(trained_seer):
    ckpt = trained_seer / "checkpoints" / "last" / "pretrained_model"
    config = json.loads((ckpt / "config.json").read_text())
    assert (
        config["type"] == "seer"
        and config["gripper_state_mode"] == "width"
        and config["gripper_state_dim"] == 1
    )
    assert {"model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"} <= {
        p.name for p in ckpt.iterdir()
    }


def test_lerobot_train_resumes_from_its_checkpoint(trained_seer):
    cfg = trained_seer / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    proc = run_cli("lerobot-train", f"--config_path={cfg}", "--resume=true", "--steps=3")
    assert "step:3" in proc.stdout
    assert (trained_seer / "checkpoints" / "000003" / "pretrained_model" / "model.safetensors").is_file()


def test_checkpoint_acts_through_the_lerobot_eval_loading_path(trained_seer):
    from lerobot_vla_tools.testing.eval_path import metaworld_eval_actions

    actions = metaworld_eval_actions(trained_seer / "checkpoints" / "000002" / "pretrained_model")
    assert [a.shape for a in actions] == [(1, 4), (1, 4)]
    assert all(torch.isfinite(a).all() for a in actions)


def test_push_to_hub_uploads_weights_config_and_model_card(trained_seer):
    from lerobot_policy_seer.modeling_seer import SeerPolicy
    from lerobot_vla_tools.testing.hub_push import push_policy_offline

    policy = SeerPolicy.from_pretrained(trained_seer / "checkpoints" / "000002" / "pretrained_model")
    pushed = push_policy_offline(policy, dataset_repo_id="local/metaworld", repo_id="someone/seer-metaworld")
    assert pushed.repo_id == "someone/seer-metaworld"
    assert {"config.json", "model.safetensors", "train_config.json", "README.md"} <= set(pushed.files)
    assert json.loads(pushed.files["config.json"])["type"] == "seer"
    assert "seer" in pushed.readme and "local/metaworld" in pushed.readme
