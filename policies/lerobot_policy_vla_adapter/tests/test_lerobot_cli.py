"""VLA-Adapter through LeRobot's own commands on the local Meta-World dataset with the tiny Prismatic backbone:
``lerobot-train``, ``--resume=true``, fine-tuning from ``--policy.path``, LeRobot's evaluation path, and
``push_model_to_hub`` with the Hub client mocked. ``lerobot-eval`` as a subprocess is ``slow``."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import lerobot_policy_vla_adapter  # noqa: F401  (registers vla_adapter, as register_third_party_plugins does)
import pytest
import torch
from lerobot_vla_tools.testing import TEST_TASK, run_cli
from safetensors.torch import load_file

TINY = [
    "--policy.type=vla_adapter",
    "--policy.num_action_queries=8",
    "--policy.training_mode=lora",
    "--policy.lora_rank=4",
    "--policy.lora_alpha=8",
    "--policy.device=cpu",
    "--policy.push_to_hub=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, metaworld_dataset, tiny_prismatic) -> Path:
    repo_id, root = metaworld_dataset
    out = tmp_path_factory.mktemp("vla_adapter") / "train"
    run_cli(
        "lerobot-train",
        *TINY,
        f"--policy.vlm_path={tiny_prismatic}",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=4",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        "--log_freq=1",
        f"--output_dir={out}",
    )
    return out


def test_training_writes_a_self_contained_lerobot_checkpoint(trained):
    ckpts = trained / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["000002", "000004", "last"]
    model_dir = ckpts / "last" / "pretrained_model"
    for name in (
        "config.json",
        "model.safetensors",
        "train_config.json",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
        "vlm/prismatic_config.json",
        "vlm/llm/tokenizer.json",
    ):
        assert (model_dir / name).is_file(), name
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["type"] == "vla_adapter" and cfg["attention_variant"] == "pro" and cfg["head"] == "l1"
    weights = load_file(model_dir / "model.safetensors")
    assert any(".lora_A." in k for k in weights) and "model.action_queries" in weights


def test_resume_continues_from_the_last_checkpoint(trained):
    before = load_file(trained / "checkpoints" / "000004" / "pretrained_model" / "model.safetensors")
    run_cli(
        "lerobot-train",
        f"--config_path={trained / 'checkpoints' / 'last' / 'pretrained_model' / 'train_config.json'}",
        "--resume=true",
        "--steps=6",
    )
    after_dir = trained / "checkpoints" / "000006"
    assert json.loads((after_dir / "training_state" / "training_step.json").read_text())["step"] == 6
    after = load_file(after_dir / "pretrained_model" / "model.safetensors")
    changed = [k for k in before if not before[k].equal(after[k])]
    assert any("lora_" in k for k in changed) and any(k.startswith("model.head.") for k in changed)
    frozen_base = [k for k in before if k.startswith("model.backbone.") and "lora_" not in k]
    assert frozen_base and not any(k in changed for k in frozen_base), (
        "LoRA mode changed a frozen base weight"
    )


def test_finetune_from_policy_path_starts_from_the_checkpoint(trained, metaworld_dataset, tmp_path):
    repo_id, root = metaworld_dataset
    ckpt = trained / "checkpoints" / "000004" / "pretrained_model"
    out = tmp_path / "finetune"
    run_cli(
        "lerobot-train",
        f"--policy.path={ckpt}",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        "--policy.optimizer_lr=5e-4",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=1",
        "--batch_size=2",
        "--num_workers=0",
        "--log_freq=1",
        f"--output_dir={out}",
    )
    new = out / "checkpoints" / "000001" / "pretrained_model"
    cfg = json.loads((new / "config.json").read_text())
    assert cfg["optimizer_lr"] == 5e-4 and cfg["pretrained_path"] == str(ckpt)
    start, tuned = load_file(ckpt / "model.safetensors"), load_file(new / "model.safetensors")
    # one step moves the weights a little: the fine-tune started from the checkpoint, not from scratch
    delta = max((start[k] - tuned[k]).abs().max().item() for k in start if k.startswith("model.head."))
    assert 0 < delta < 0.05


def test_checkpoint_runs_through_lerobots_metaworld_eval_path(trained):
    """make_policy with the Meta-World env config, the saved processors with eval's overrides, a real
    MetaworldEnv observation through preprocess_observation: select_action gives one 4-D action."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.envs.configs import MetaworldEnv
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.envs.utils import preprocess_observation
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    ckpt = trained / "checkpoints" / "last" / "pretrained_model"
    cfg = PreTrainedConfig.from_pretrained(ckpt)
    cfg.pretrained_path = ckpt
    cfg.device = "cpu"
    env_cfg = MetaworldEnv(task=TEST_TASK)
    policy = make_policy(cfg, env_cfg=env_cfg)
    pre, post = make_pre_post_processors(
        cfg,
        pretrained_path=ckpt,
        preprocessor_overrides={
            "device_processor": {"device": "cpu"},
            "rename_observations_processor": {"rename_map": {}},
        },
    )
    env_pre, env_post = make_env_pre_post_processors(env_cfg, cfg)
    envs = make_env(env_cfg, n_envs=1, use_async_envs=False)
    env = next(iter(next(iter(envs.values())).values()))
    try:
        obs, _ = env.reset(seed=0)
        obs = preprocess_observation(obs)
        obs["task"] = list(env.call("task_description"))
        assert obs["task"][0]
        with torch.inference_mode():
            action = post(policy.select_action(pre(env_pre(obs))))
        assert action.shape == (1, 4) and torch.isfinite(action).all()
        env.step(env_post({"action": action})["action"].numpy())
    finally:
        env.close()


def test_push_to_hub_uploads_weights_backbone_configs_and_a_model_card(trained, tmp_path):
    """Offline: HfApi and the card's YAML validation are mocked; we check what would be uploaded."""
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.policies.factory import get_policy_class

    ckpt = trained / "checkpoints" / "last" / "pretrained_model"
    policy = get_policy_class("vla_adapter").from_pretrained(ckpt)
    policy.config.repo_id = "user/vla_adapter_metaworld"
    train_cfg = TrainPipelineConfig.from_pretrained(ckpt)
    uploaded: dict[str, str] = {}

    def fake_upload_folder(repo_id, folder_path, allow_patterns, **kw):
        import fnmatch

        for f in Path(folder_path).rglob("*"):
            rel = f.relative_to(folder_path).as_posix()
            if f.is_file() and any(fnmatch.fnmatch(rel, p) for p in allow_patterns):
                uploaded[rel] = f.read_text() if f.suffix in (".md", ".json") else "<binary>"
        return mock.Mock(repo_url=mock.Mock(url=f"https://huggingface.co/{repo_id}"))

    with (
        mock.patch("lerobot.policies.pretrained.HfApi") as api_cls,
        mock.patch("huggingface_hub.ModelCard.validate"),
    ):
        api = api_cls.return_value
        api.create_repo.return_value = mock.Mock(repo_id="user/vla_adapter_metaworld")
        api.upload_folder.side_effect = fake_upload_folder
        policy.push_model_to_hub(train_cfg)
    api.create_repo.assert_called_once()
    for name in (
        "config.json",
        "model.safetensors",
        "train_config.json",
        "README.md",
        "vlm/prismatic_config.json",
        "vlm/llm/tokenizer.json",
        "vlm/llm/config.json",
    ):
        assert name in uploaded, sorted(uploaded)
    assert "vla_adapter" in uploaded["README.md"] and "lerobot" in uploaded["README.md"]
    assert json.loads(uploaded["config.json"])["type"] == "vla_adapter"


@pytest.mark.slow
def test_lerobot_eval_in_metaworld_writes_eval_info_and_a_video(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last" / "pretrained_model"
    out = tmp_path / "eval"
    run_cli(
        "lerobot-eval",
        f"--policy.path={ckpt}",
        "--env.type=metaworld",
        f"--env.task={TEST_TASK}",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        "--eval.use_async_envs=false",
        "--policy.device=cpu",
        f"--output_dir={out}",
        timeout=1800,
    )
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 1 and 0.0 <= info["overall"]["pc_success"] <= 100.0
    assert len(list((out / "videos").rglob("*.mp4"))) == 1
