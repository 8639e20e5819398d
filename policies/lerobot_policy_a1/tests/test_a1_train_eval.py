"""End to end with the real LeRobot commands on the cached Meta-World dataset: lerobot-train, resume, the
lerobot-eval loading path on a real MetaworldEnv observation, lerobot-a1-calibrate, and a (mocked) Hub push."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import torch
from lerobot_vla_tools.testing.fixtures import run_cli


def _ckpt(out: Path, step: str = "last") -> Path:
    return out / "checkpoints" / step / "pretrained_model"


def test_lerobot_train_writes_a_loadable_a1_checkpoint(trained_fm):
    ckpt = _ckpt(trained_fm)
    names = {p.name for p in ckpt.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "train_config.json",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
    } <= names
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["type"] == "a1" and cfg["head"] == "flow_matching" and cfg["exit_training"] == "all"
    assert (trained_fm / "checkpoints" / "000002").is_dir() and (
        trained_fm / "checkpoints" / "000004"
    ).is_dir()


def test_lerobot_train_resumes_from_the_last_checkpoint(trained_fm):
    step4 = trained_fm / "checkpoints" / "000004" / "pretrained_model" / "model.safetensors"
    written = step4.stat().st_mtime_ns
    run_cli(
        "lerobot-train",
        f"--config_path={_ckpt(trained_fm) / 'train_config.json'}",
        "--resume=true",
        "--steps=6",
        "--save_freq=2",
    )
    assert step4.stat().st_mtime_ns == written  # resumed from step 4, not retrained from step 0
    state = json.loads(
        (trained_fm / "checkpoints" / "000006" / "training_state" / "training_step.json").read_text()
    )
    assert state["step"] == 6


def _metaworld_eval_setup(policy_path: Path):
    """What lerobot-eval does before its rollout loop, on a real MetaworldEnv."""
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()  # as lerobot-eval's main() does: registers --policy.type=a1
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.envs.configs import MetaworldEnv
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.envs.utils import preprocess_observation
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    env_cfg = MetaworldEnv(task="button-press-topdown-v3")
    policy_cfg = PreTrainedConfig.from_pretrained(policy_path)
    policy_cfg.pretrained_path = policy_path
    policy_cfg.device = "cpu"
    policy = make_policy(cfg=policy_cfg, env_cfg=env_cfg)
    policy.eval()
    pre, post = make_pre_post_processors(
        policy_cfg=policy_cfg,
        pretrained_path=str(policy_path),
        preprocessor_overrides={
            "device_processor": {"device": "cpu"},
            "rename_observations_processor": {"rename_map": {}},
        },
    )
    env_pre, env_post = make_env_pre_post_processors(env_cfg=env_cfg, policy_cfg=policy_cfg)
    envs = make_env(env_cfg, n_envs=1, use_async_envs=False)
    env = next(iter(next(iter(envs.values())).values()))
    obs, _ = env.reset(seed=0)
    obs = preprocess_observation(obs)
    obs["task"] = list(env.call("task_description"))
    batch = pre(env_pre(obs))
    return policy, batch, post, env


def test_checkpoint_loads_through_the_lerobot_eval_path_and_acts_on_a_real_metaworld_observation(trained_fm):
    policy, batch, post, env = _metaworld_eval_setup(_ckpt(trained_fm))
    try:
        policy.reset()
        with torch.inference_mode():
            action = post(policy.select_action(batch))
        assert action.shape == (1, 4) and torch.isfinite(action).all()
        assert policy.last_exit_info["early_exit"] is False  # no calibration yet: full depth
    finally:
        env.close()


def test_calibrate_stores_thresholds_that_the_eval_path_then_uses(
    trained_fm, metaworld_dataset, tmp_path, monkeypatch, capsys
):
    import shutil

    from lerobot_policy_a1.calibrate_a1 import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(_ckpt(trained_fm), ckpt)
    repo_id, root = metaworld_dataset
    # the lerobot-a1-calibrate entry point, run in this process (its command line parsed from sys.argv)
    monkeypatch.setattr(
        "sys.argv",
        [
            "lerobot-a1-calibrate",
            f"--policy.path={ckpt}",
            f"--dataset.repo_id={repo_id}",
            f"--dataset.root={root}",
            "--exit_dist=exp",
            "--exit_ratio=1.0",
            "--num_samples=12",
            "--batch_size=6",
            "--policy.device=cpu",
        ],
    )
    assert main() == 0
    assert "expected executed layers" in capsys.readouterr().out
    cal = json.loads((ckpt / "exit_calibration.json").read_text())
    assert cal["exit_layers"] == [1, 2, 3] and cal["num_samples"] == 12 and cal["thresholds"][-1] == "inf"
    from safetensors.torch import load_file

    assert load_file(str(ckpt / "exit_discrepancies.safetensors"))["values"].shape == (3, 12)

    policy, batch, post, env = _metaworld_eval_setup(ckpt)
    try:
        assert policy.early_exit_active
        with torch.inference_mode():
            action = post(policy.select_action(batch))
        assert action.shape == (1, 4)
        info = policy.last_exit_info
        assert info["early_exit"] and info["exit_layer"][0] in (1, 2, 3)
        assert info["executed_layer_fraction"][0] == (info["exit_layer"][0] + 1) / 4
    finally:
        env.close()


def test_calibrate_refuses_an_unknown_exit_distribution(trained_fm, metaworld_dataset, monkeypatch, capsys):
    from lerobot_policy_a1.calibrate_a1 import main

    repo_id, root = metaworld_dataset
    argv = [
        "lerobot-a1-calibrate",
        f"--policy.path={_ckpt(trained_fm)}",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--exit_dist=poisson",
    ]
    monkeypatch.setattr("sys.argv", argv)
    # a ConfigError, which draccus turns into "error: <message>" and exit 1 (tests/test_cli.py: the console script)
    from lerobot_vla_plugins.errors import ConfigError

    with pytest.raises((ConfigError, SystemExit)) as info:
        main()
    shown = str(info.value) + capsys.readouterr().err
    assert "exit_dist 'poisson' does not exist; choose one of ['exp', 'gamma', 'gauss']" in shown


def test_calibrate_refuses_a_dataset_with_other_features(trained_fm):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot_policy_a1.calibrate_a1 import check_dataset_features

    cfg = PreTrainedConfig.from_pretrained(_ckpt(trained_fm))
    features = {
        "observation.images.wrist": {
            "dtype": "video",
            "shape": [96, 96, 3],
            "names": ["height", "width", "channels"],
        },
        "observation.state": {"dtype": "float32", "shape": [8], "names": None},
        "action": {"dtype": "float32", "shape": [7], "names": None},
    }
    with pytest.raises(
        ValueError, match=r"observation.image \(3, 480, 480\) is missing; observation.state has shape \(8,\)"
    ):
        check_dataset_features(cfg, features, {})


def test_push_to_hub_uploads_weights_config_and_card(trained_fm, tmp_path):
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot_policy_a1.modeling_a1 import A1Policy

    ckpt = _ckpt(trained_fm)
    policy = A1Policy.from_pretrained(ckpt)
    policy.config.repo_id = "someone/a1-metaworld-tiny"
    train_cfg = TrainPipelineConfig.from_pretrained(ckpt)
    uploaded = {}

    def fake_upload_folder(self, repo_id, folder_path, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()
        return mock.Mock(repo_url=mock.Mock(url=f"https://huggingface.co/{repo_id}"))

    with (
        mock.patch(
            "huggingface_hub.HfApi.create_repo", return_value=mock.Mock(repo_id="someone/a1-metaworld-tiny")
        ),
        mock.patch("huggingface_hub.HfApi.upload_folder", fake_upload_folder),
        mock.patch("huggingface_hub.ModelCard.validate", return_value=None),
    ):
        policy.push_model_to_hub(train_cfg)
    assert uploaded["repo_id"] == "someone/a1-metaworld-tiny"
    assert {"config.json", "model.safetensors", "train_config.json", "README.md"} <= set(uploaded["files"])
    assert "a1" in uploaded["card"]


@pytest.mark.slow
def test_lerobot_train_mlp_head_with_random_exits_on_an_internvl_backbone(
    tiny_internvl, metaworld_dataset, tmp_path, tiny
):
    repo_id, root = metaworld_dataset
    flags = [f"--policy.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in tiny.items()]
    run_cli(
        "lerobot-train",
        "--policy.type=a1",
        "--policy.backbone_family=internvl",
        f"--policy.vlm_name={tiny_internvl}",
        "--policy.head=mlp",
        "--policy.exit_training=random",
        *flags,
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=2",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        f"--output_dir={tmp_path / 'out'}",
    )
    cfg = json.loads((_ckpt(tmp_path / "out") / "config.json").read_text())
    assert cfg["head"] == "mlp" and cfg["backbone_family"] == "internvl"
