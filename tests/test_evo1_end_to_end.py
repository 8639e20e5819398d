"""Evo-1 end to end with LeRobot's own ``evo1`` (never re-registered here), through the installed commands:
``lerobot-train`` on the local Meta-World dataset (tiny InternVL from the testing kit), ``--resume=true``, and
``lerobot-eval --env.type=metaworld`` writing ``eval_info.json`` and a video."""

from __future__ import annotations

import json

import pytest
from lerobot_vla_tools.testing import TEST_TASK, run_cli
from lerobot_vla_tools.testing.evo1 import TINY_EVO1_FLAGS
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def trained(tmp_path_factory, metaworld_dataset, tiny_internvl):
    repo_id, root = metaworld_dataset
    out = tmp_path_factory.mktemp("evo1") / "train"
    run_cli(
        "lerobot-train",
        *TINY_EVO1_FLAGS,
        f"--policy.vlm_model_name={tiny_internvl}",
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


def test_training_writes_lerobot_checkpoints(trained):
    ckpts = trained / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["000002", "000004", "last"]
    model_dir = ckpts / "last" / "pretrained_model"
    for name in (
        "config.json",
        "model.safetensors",
        "train_config.json",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
    ):
        assert (model_dir / name).is_file(), name
    assert json.loads((model_dir / "config.json").read_text())["type"] == "evo1"
    assert json.loads((ckpts / "last" / "training_state" / "training_step.json").read_text())["step"] == 4


def test_resume_continues_from_the_last_checkpoint(trained):
    before = load_file(trained / "checkpoints" / "000004" / "pretrained_model" / "model.safetensors")
    written = (
        (trained / "checkpoints" / "000004" / "pretrained_model" / "model.safetensors").stat().st_mtime_ns
    )
    run_cli(
        "lerobot-train",
        f"--config_path={trained / 'checkpoints' / 'last' / 'pretrained_model' / 'train_config.json'}",
        "--resume=true",
        "--steps=6",
    )
    # resumed, not retrained: the step-4 checkpoint it started from was not written again
    assert (
        trained / "checkpoints" / "000004" / "pretrained_model" / "model.safetensors"
    ).stat().st_mtime_ns == written
    after_dir = trained / "checkpoints" / "000006"
    assert json.loads((after_dir / "training_state" / "training_step.json").read_text())["step"] == 6
    after = load_file(after_dir / "pretrained_model" / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before), "two more optimizer steps changed no weight"
    assert (trained / "checkpoints" / "last").resolve().name == "000006"


def test_eval_in_metaworld_writes_eval_info_and_a_video(trained, tmp_path):
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
    assert info["overall"]["n_episodes"] == 1
    assert 0.0 <= info["overall"]["pc_success"] <= 100.0
    videos = list((out / "videos").rglob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    assert info["per_task"][0]["metrics"]["video_paths"] == [str(videos[0])]
