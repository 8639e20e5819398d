"""``lerobot-rollout`` drives the simulated xArm6 (robots/lerobot_robot_xarm6, ``backend=sim``) with a tiny
VLA-Adapter checkpoint and records what it did: synchronous inference with the L1 head, real-time chunking
(``--inference.type=rtc``) with the DiT head (slow: a real robot loop in a subprocess)."""

from __future__ import annotations

import pytest
import torch
from lerobot_vla_tools.testing import run_cli

H, W = 48, 64
CAM = f"{{type: opencv, index_or_path: 0, width: {W}, height: {H}, fps: 30}}"


def _tiny_checkpoint(path, tiny_prismatic, **overrides):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_policy_vla_adapter.configuration_vla_adapter import VLAAdapterConfig
    from lerobot_policy_vla_adapter.modeling_vla_adapter import VLAAdapterPolicy
    from lerobot_policy_vla_adapter.processor_vla_adapter import make_vla_adapter_pre_post_processors
    from lerobot_robot_xarm6.sim_xarm import xarm6_joint_limits

    lo, hi = xarm6_joint_limits()
    lo, hi = torch.tensor([*lo, 0.0]), torch.tensor([*hi, 1.0])
    n = lo.numel()
    cfg = VLAAdapterConfig(
        vlm_path=str(tiny_prismatic),
        device="cpu",
        num_action_queries=8,
        training_mode="frozen",
        push_to_hub=False,
        input_features={
            "observation.state": PolicyFeature(FeatureType.STATE, (n,)),
            "observation.images.image_1": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
            "observation.images.image_2": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (n,))},
        **overrides,
    )
    stats = {
        k: {"q01": lo, "q99": hi, "min": lo, "max": hi, "mean": (lo + hi) / 2, "std": (hi - lo) / 4}
        for k in ("observation.state", "action")
    }
    VLAAdapterPolicy(cfg).save_pretrained(path)
    pre, post = make_vla_adapter_pre_post_processors(cfg, stats)
    pre.save_pretrained(path)
    post.save_pretrained(path)
    return path


def _rollout(ckpt, root, repo_id, *extra):
    """Run lerobot-rollout for one 6 s episode -> (recorded dataset, its console output)."""
    proc = run_cli(
        "lerobot-rollout",
        "--strategy.type=episodic",
        f"--policy.path={ckpt}",
        "--policy.device=cpu",
        "--robot.type=xarm6",
        "--robot.backend=sim",
        f"--robot.cameras={{image_1: {CAM}, image_2: {CAM}}}",
        "--task=pick up the can",
        "--fps=30",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--dataset.num_episodes=1",
        "--dataset.episode_time_s=6",
        "--dataset.reset_time_s=0",
        "--dataset.push_to_hub=false",
        "--dataset.single_task=pick up the can",
        "--play_sounds=false",
        *extra,
        timeout=600,
    )
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root), proc.stdout


@pytest.mark.slow
def test_vla_adapter_rolls_out_on_the_simulated_xarm6(tmp_path, tiny_prismatic):
    pytest.importorskip("lerobot_robot_xarm6")
    ckpt = _tiny_checkpoint(tmp_path / "ckpt", tiny_prismatic)
    ds, _ = _rollout(ckpt, tmp_path / "rec", "local/rollout_vla_adapter")
    assert ds.meta.robot_type == "xarm6" and ds.meta.total_frames >= 2


@pytest.mark.slow
def test_dit_head_rolls_out_with_real_time_chunking_on_the_simulated_xarm6(tmp_path, tiny_prismatic):
    """``--inference.type=rtc``: LeRobot's RTC engine computes chunks in a background thread and calls
    predict_action_chunk with the leftover of the previous chunk; the episode completes and is recorded."""
    pytest.importorskip("lerobot_robot_xarm6")
    ckpt = _tiny_checkpoint(
        tmp_path / "ckpt", tiny_prismatic, head="dit", num_train_timesteps=20, num_inference_steps=4
    )
    ds, out = _rollout(
        ckpt,
        tmp_path / "rec",
        "local/rollout_vla_adapter_rtc",
        "--inference.type=rtc",
        "--inference.rtc.execution_horizon=8",
        "--inference.queue_threshold=4",
    )
    assert "RTC inference thread started" in out
    assert "RTC inference error" not in out and "Fatal error in RTC thread" not in out
    assert ds.meta.robot_type == "xarm6" and ds.meta.total_frames >= 2
    actions = torch.stack([ds[i]["action"] for i in range(ds.meta.total_frames)])
    assert actions.std(dim=0).max() > 0  # the policy's chunks drove the arm, not a held command
