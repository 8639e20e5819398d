"""LeRobot's own so100_follower driven through the simulated Feetech bus (the boundary the e2e SO-100 run uses)."""

from __future__ import annotations

import time

import pytest
from lerobot.cameras.opencv import OpenCVCameraConfig
from lerobot.robots.so_follower import SO100FollowerConfig
from lerobot.robots.utils import make_robot_from_config
from lerobot_vla_tools.testing.so100 import SimFeetechBus, simulated_so_follower


def test_so100_follower_runs_unchanged_on_the_simulated_bus(tmp_path):
    cam = OpenCVCameraConfig(index_or_path=0, width=64, height=48, fps=30)
    cfg = SO100FollowerConfig(
        port="/dev/null",
        id="sim",
        calibration_dir=tmp_path,
        max_relative_target=5.0,
        cameras={"image_1": cam, "image_2": cam},
    )
    with simulated_so_follower():
        robot = make_robot_from_config(cfg)
        robot.connect(calibrate=False)
        try:
            assert isinstance(robot.bus, SimFeetechBus)
            assert ("P_Coefficient", "shoulder_pan", 16) in robot.bus.writes  # LeRobot's configure() ran
            obs = robot.get_observation()
            assert obs["image_1"].shape == (48, 64, 3) and obs["shoulder_pan.pos"] == pytest.approx(0.0)
            sent = robot.send_action({**{k: obs[k] for k in robot.action_features}, "shoulder_pan.pos": 90.0})
            assert sent["shoulder_pan.pos"] == pytest.approx(5.0)  # LeRobot's max_relative_target, in degrees
            time.sleep(0.1)
            assert robot.get_observation()["shoulder_pan.pos"] == pytest.approx(5.0, abs=0.5)
            assert robot.bus.goal_writes == 1 and robot.bus.outside_limits == 0
        finally:
            robot.disconnect()
