"""End to end: ``lerobot-rollout`` runs LeRobot's ``evo1`` on every robot type (``backend=sim``) and records a dataset;
a checkpoint trained for another robot is refused before the arm is enabled; ``lerobot-record`` records PiPer leader
demonstrations; the Evo-1 xArm6 recipe trains ``evo1`` on a recorded dataset and rolls the trained checkpoint out.
Real LeRobot commands in subprocesses, tiny real InternVL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lerobot_vla_tools.testing.fixtures import lerobot_env, run_cli
from lerobot_vla_tools.testing.robot_policy import TINY_EVO1, build_tiny_evo1_for_robot

H, W = 48, 64
CAM = f"{{type: opencv, index_or_path: 0, width: {W}, height: {H}, fps: 30}}"
EVO1_CAMS = f"{{image_1: {CAM}, image_2: {CAM}}}"  # Evo-1's real-world setup: image_1 fixed, image_2 wrist


def _limits(robot_type: str) -> tuple[list[float], list[float]]:
    if robot_type == "xarm6":
        from lerobot_robot_xarm6.sim_xarm import xarm6_joint_limits

        lo, hi = xarm6_joint_limits()
        return [*lo, 0.0], [*hi, 1.0]
    if robot_type in ("piper", "bi_piper"):
        from lerobot_robot_agilex_piper.sim_piper import PIPER_JOINT_LOWER, PIPER_JOINT_UPPER

        lo, hi = [*PIPER_JOINT_LOWER, 0.0], [*PIPER_JOINT_UPPER, 1.0]
        return (lo * 2, hi * 2) if robot_type == "bi_piper" else (lo, hi)
    if robot_type == "franka":
        from lerobot_robot_franka.config_franka import FRANKA_JOINT_LIMITS

        lo, hi = FRANKA_JOINT_LIMITS["fr3"]
        return [*lo, 0.0], [*hi, 1.0]
    if robot_type == "agibot":
        from lerobot_robot_agibot.agibot_bridge_server import SIM_LIMITS

        return [a for a, _ in SIM_LIMITS] + [0.0, 0.0], [b for _, b in SIM_LIMITS] + [1.0, 1.0]
    if robot_type == "so100_follower":
        from lerobot_vla_tools.testing.so100 import SO100_LOWER, SO100_UPPER

        return list(SO100_LOWER.values()), list(SO100_UPPER.values())
    raise KeyError(robot_type)


ROBOTS = {
    "xarm6": ["--robot.backend=sim", f"--robot.cameras={EVO1_CAMS}"],
    "piper": ["--robot.backend=sim", f"--robot.cameras={EVO1_CAMS}"],
    "bi_piper": [
        "--robot.backend=sim",
        f"--robot.cameras={{top: {CAM}}}",
        f"--robot.left_arm_config.cameras={{wrist: {CAM}}}",
        f"--robot.right_arm_config.cameras={{wrist: {CAM}}}",
    ],
    "franka": ["--robot.backend=sim", f"--robot.cameras={EVO1_CAMS}"],
    "agibot": ["--robot.backend=sim", f"--robot.cameras={EVO1_CAMS}"],
}
CAMERAS = {"bi_piper": ["top", "left_wrist", "right_wrist"]}


def rollout_args(
    ckpt: Path, robot_type: str, extra: list[str], root: Path, seconds: float = 6.0
) -> list[str]:
    return [
        "--strategy.type=episodic",
        f"--policy.path={ckpt}",
        "--policy.device=cpu",
        f"--robot.type={robot_type}",
        *extra,
        "--task=pick up the can",
        "--fps=30",
        f"--dataset.repo_id=local/rollout_{robot_type}",
        f"--dataset.root={root}",
        "--dataset.num_episodes=1",
        f"--dataset.episode_time_s={seconds}",
        "--dataset.reset_time_s=0",
        "--dataset.push_to_hub=false",
        "--dataset.single_task=pick up the can",
        "--play_sounds=false",
    ]


def check_recorded(root: Path, robot_type: str, lo: list[float], hi: list[float]) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(f"local/rollout_{robot_type}", root=root)
    assert ds.meta.robot_type == robot_type and ds.meta.total_episodes == 1
    # 6 s at 30 fps would be 180 frames; a 2-core CPU shared with other jobs (load ~12) ran the loop at 1-6 Hz.
    assert ds.meta.total_frames >= 2
    state = np.stack([ds[i]["observation.state"].numpy() for i in range(0, len(ds), max(1, len(ds) // 10))])
    assert np.all(state >= np.array(lo) - 1e-4) and np.all(
        state <= np.array(hi) + 1e-4
    )  # the arm never left limits
    for cam in CAMERAS.get(robot_type, ["image_1", "image_2"]):
        assert ds[0][f"observation.images.{cam}"].shape == (3, H, W)


def _ckpt(tmp_path: Path, tiny_internvl: Path, robot_type: str) -> Path:
    lo, hi = _limits(robot_type)
    cams = dict.fromkeys(CAMERAS.get(robot_type, ["image_1", "image_2"]), (H, W))
    return build_tiny_evo1_for_robot(tmp_path / f"ckpt_{robot_type}", tiny_internvl, lo, hi, cams)


def test_evo1_rolls_out_on_the_simulated_xarm6_and_records_a_dataset(tmp_path, tiny_internvl):
    ckpt = _ckpt(tmp_path, tiny_internvl, "xarm6")
    run_cli("lerobot-rollout", *rollout_args(ckpt, "xarm6", ROBOTS["xarm6"], tmp_path / "rec"), timeout=600)
    check_recorded(tmp_path / "rec", "xarm6", *_limits("xarm6"))


def test_a_checkpoint_for_another_robot_is_refused_before_the_arm_is_enabled(tmp_path, tiny_internvl):
    """A Meta-World-shaped checkpoint (4-D state and action, one camera ``top``) on the 7-D xArm6 with cameras
    image_1/image_2: LeRobot 0.6.1 used to enable the arm and die mid-rollout with ``IndexError: index 4 is out of
    bounds``. The driver's connect() compares both sides first and names them."""
    ckpt = build_tiny_evo1_for_robot(
        tmp_path / "ckpt_mw", tiny_internvl, [-1.0] * 4, [1.0] * 4, {"top": (H, W)}
    )
    args = rollout_args(ckpt, "xarm6", ROBOTS["xarm6"], tmp_path / "rec", seconds=2)
    exe = Path(sys.executable).parent / "lerobot-rollout"
    proc = subprocess.run(
        [str(exe), *args],
        env=lerobot_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert "PolicyRobotMismatchError" in out and "IndexError" not in out, out[-3000:]
    assert "the policy outputs a 4-D action, xarm6 takes 7 (joint_1.pos" in out
    assert "the policy reads a 4-D observation.state, xarm6 provides 7" in out
    assert "the policy needs cameras ['observation.images.top']" in out
    assert "--robot.type=xarm6" in out  # the fix
    assert "Robot connected" not in out and "xarm6 connected" not in out  # nothing was opened or enabled


@pytest.mark.slow
@pytest.mark.parametrize("robot_type", ["piper", "bi_piper", "franka", "agibot"])
def test_evo1_rolls_out_on_every_simulated_robot_type(tmp_path, tiny_internvl, robot_type):
    ckpt = _ckpt(tmp_path, tiny_internvl, robot_type)
    run_cli(
        "lerobot-rollout", *rollout_args(ckpt, robot_type, ROBOTS[robot_type], tmp_path / "rec"), timeout=600
    )
    check_recorded(tmp_path / "rec", robot_type, *_limits(robot_type))


@pytest.mark.slow
def test_evo1_rolls_out_on_so100_with_the_motor_bus_simulated(tmp_path, tiny_internvl):
    ckpt = _ckpt(tmp_path, tiny_internvl, "so100_follower")
    args = rollout_args(
        ckpt,
        "so100_follower",
        [
            "--robot.port=/dev/null",
            "--robot.id=sim_so100",
            f"--robot.calibration_dir={tmp_path / 'calib'}",
            f"--robot.cameras={EVO1_CAMS}",
        ],
        tmp_path / "rec",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_vla_tools.testing.so100", "lerobot-rollout", *args],
        env=lerobot_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/rollout_so100_follower", root=tmp_path / "rec")
    assert ds.meta.robot_type == "so_follower" and ds.meta.total_frames >= 2
    assert ds.meta.features["observation.state"]["names"][0] == "shoulder_pan.pos"


@pytest.mark.slow
def test_lerobot_record_with_the_piper_leader_records_episodes(tmp_path):
    root = tmp_path / "demos"
    run_cli(
        "lerobot-record",
        "--robot.type=piper",
        "--robot.backend=sim",
        f"--robot.cameras={EVO1_CAMS}",
        "--teleop.type=piper_leader",
        "--teleop.backend=sim",
        "--dataset.repo_id=local/piper_demos",
        f"--dataset.root={root}",
        "--dataset.num_episodes=2",
        "--dataset.episode_time_s=2",
        "--dataset.reset_time_s=0",
        "--dataset.fps=30",
        "--dataset.single_task=wave",
        "--dataset.push_to_hub=false",
        "--play_sounds=false",
        timeout=600,
    )
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/piper_demos", root=root)
    assert ds.meta.total_episodes == 2 and ds.meta.robot_type == "piper"
    actions = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    states = np.stack([ds[i]["observation.state"].numpy() for i in range(len(ds))])
    assert actions[:, 0].std() > 0.01  # the leader moved (scripted sinusoid), so did the recorded action
    assert np.abs(states[-1, :6] - actions[-1, :6]).max() < 0.5  # the follower tracked the leader


@pytest.mark.slow
def test_evo1_xarm6_recipe_trains_on_a_recorded_dataset_and_rolls_out(tmp_path, tiny_internvl):
    """README "Robots", Evo-1 on xArm6: record (rollout) -> lerobot-train evo1 -> lerobot-rollout, all on the sim."""
    ckpt0 = _ckpt(tmp_path, tiny_internvl, "xarm6")
    rec = tmp_path / "rec"
    run_cli("lerobot-rollout", *rollout_args(ckpt0, "xarm6", ROBOTS["xarm6"], rec, seconds=6), timeout=600)
    overrides = [
        f"--policy.{k}={list(v) if isinstance(v, tuple) else str(v).lower() if isinstance(v, bool) else v}"
        for k, v in TINY_EVO1.items()
    ]
    out = tmp_path / "train"
    run_cli(
        "lerobot-train",
        "--policy.type=evo1",
        f"--policy.vlm_model_name={tiny_internvl}",
        *overrides,
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        "--dataset.repo_id=local/rollout_xarm6",
        f"--dataset.root={rec}",
        "--steps=2",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        f"--output_dir={out}",
        "--wandb.enable=false",
        timeout=900,
    )
    trained = out / "checkpoints" / "last" / "pretrained_model"
    assert (trained / "model.safetensors").is_file()
    rec2 = tmp_path / "rec2"
    run_cli("lerobot-rollout", *rollout_args(trained, "xarm6", ROBOTS["xarm6"], rec2), timeout=600)
    check_recorded(rec2, "xarm6", *_limits("xarm6"))
