"""franka driver on the simulated franky Robot/Gripper: lifecycle, limits, franky types, fidelity to franky.

The fuzz and fault suites shared by every arm are in ``tests/robots/test_guarded_arms.py``."""

from __future__ import annotations

import numpy as np
import pytest
from lerobot.robots.config import RobotConfig
from lerobot.robots.utils import make_robot_from_config
from lerobot_robot_franka import FrankaConfig
from lerobot_robot_franka.config_franka import FRANKA_JOINT_LIMITS
from lerobot_vla_tools.testing.robots import connected, wait_until

from lerobot_vla_plugins.errors import ConfigError
from lerobot_vla_plugins.robots.safety import RobotSafetyError
from lerobot_vla_plugins.robots.sdk_contract import (
    contract_problems,
    record_use,
    signature_mismatches,
    unwrap,
)
from lerobot_vla_plugins.robots.sim import SimFaults

franky = pytest.importorskip("franky", reason="franky-control has Linux wheels only")
from lerobot_robot_franka.franka import Franka  # noqa: E402
from lerobot_robot_franka.sim_franky import SimFrankyGripper, SimFrankyRobot  # noqa: E402

JOINT_KEYS = [f"joint_{i}.pos" for i in range(1, 8)]


def make(tmp_path, **kw) -> Franka:
    return make_robot_from_config(FrankaConfig(backend="sim", calibration_dir=tmp_path, **kw))


@pytest.fixture
def robot(tmp_path):
    with connected(FrankaConfig(backend="sim", calibration_dir=tmp_path)) as r:
        yield r


def test_type_is_registered_and_lerobot_builds_the_driver(tmp_path):
    assert RobotConfig.get_choice_class("franka") is FrankaConfig
    assert isinstance(make(tmp_path), Franka)


def test_connect_sets_dynamics_and_collision_behaviour_without_moving(robot):
    q0 = robot.robot.dyn.read().copy()
    wait_until(lambda: False, timeout=0.2)
    assert robot.robot.relative_dynamics_factor.velocity == pytest.approx(0.1)
    assert robot.robot.collision_thresholds == (20.0, 30.0)
    assert robot.robot.motions == 0 and robot.gripper.commands == 0
    assert robot.robot.dyn.read() == pytest.approx(q0)


def test_targets_stream_as_asynchronous_joint_motions_and_are_reached(robot):
    goal = robot.robot.dyn.read() + 0.05
    action = {**dict(zip(JOINT_KEYS, goal, strict=True)), "gripper.pos": 0.5}
    # keep sending: the watchdog holds the arm 0.2 s after the last action
    assert wait_until(
        lambda: robot.send_action(action) is not None
        and abs(robot.get_observation()["gripper.pos"] - 0.5) < 1e-3,
        timeout=3.0,
        period=1 / 30,
    )
    assert np.allclose(robot.robot.dyn.read(), goal, atol=1e-3)  # 0.05 rad at 0.2 rad/s (factor 0.1)
    n = robot.gripper.commands
    robot.send_action(action)
    assert robot.gripper.commands == n  # unchanged target: no new gripper command


def test_panda_model_uses_panda_limits(tmp_path):
    r = make(tmp_path, model="panda", max_relative_target=None)
    r.connect()
    try:
        sent = r.send_action(dict.fromkeys(JOINT_KEYS, 10.0))
        assert [sent[k] for k in JOINT_KEYS] == pytest.approx(
            [u - 0.02 for u in FRANKA_JOINT_LIMITS["panda"][1]]
        )
    finally:
        r.disconnect()


def test_the_robot_state_time_is_a_franky_duration_and_frozen_state_is_still_caught(robot):
    """franky's RobotState.time is a Duration (compares by identity, a new object per call): 2 s of frozen state used
    to go unnoticed while motions kept being sent. The sim returns the real type, the driver compares to_msec()."""
    assert isinstance(robot.robot.state.time, franky.Duration)
    assert robot.robot.state.time != robot.robot.state.time  # what made the old comparison useless
    robot.robot.faults.freeze_feedback = True
    assert wait_until(lambda: robot.fault is not None, timeout=3.0)
    n = robot.robot.motions
    with pytest.raises(RobotSafetyError, match="stopped after a fault"):
        robot.send_action({})
    assert robot.robot.motions == n


def test_a_frozen_gripper_state_stops_the_arm(robot):
    robot.gripper.frozen = True
    assert wait_until(lambda: robot.fault is not None, timeout=3.0)
    assert "gripper feedback has not updated" in str(robot.fault)


def test_control_never_granted_fails_connect_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(SimFrankyRobot, "start_faults", SimFaults(enable_fails=True))
    r = make(tmp_path)
    with pytest.raises(ConnectionError, match="activate FCI in Desk"):
        r.connect()
    assert not r.is_connected


def test_a_robot_in_reflex_refuses_to_connect(tmp_path, monkeypatch):
    monkeypatch.setattr(SimFrankyRobot, "start_faults", SimFaults(collision=True))
    with pytest.raises(RobotSafetyError, match="reports errors"):
        make(tmp_path).connect()


def test_zero_dynamics_factor_is_refused():
    with pytest.raises(ConfigError, match="relative_dynamics_factor"):
        FrankaConfig(relative_dynamics_factor=0.0)


def test_the_sims_are_faithful_to_franky_for_every_member_the_driver_touches(tmp_path, monkeypatch):
    """Signatures with their default values (pybind11 signature lines), the driver's calls, documented return types
    and the types of the state fields the driver reads (RobotState.time / GripperState.time: Duration)."""
    r = make(tmp_path)
    real_make = r._make
    uses = {}

    def recorded():
        robot, gripper = real_make()
        (robot_proxy, uses["robot"]), (gripper_proxy, uses["gripper"]) = (
            record_use(robot),
            record_use(gripper),
        )
        return robot_proxy, gripper_proxy

    monkeypatch.setattr(r, "_make", recorded)
    r.connect()
    obs = r.get_observation()
    r.send_action({**{k: obs[k] + 0.05 for k in JOINT_KEYS}, "gripper.pos": 0.3})
    wait_until(lambda: r.holds >= 1, timeout=2.0)
    unwrap(r.robot).faults.collision = True
    wait_until(lambda: r.fault is not None, timeout=2.0)
    r.disconnect()
    assert {"state.time", "state.q", "state.time.to_msec"} <= set(uses["robot"].values) | set(
        uses["robot"].calls
    )
    assert {"state.time", "state.width"} <= set(uses["gripper"].values)
    assert signature_mismatches(SimFrankyRobot, franky.Robot, ["__init__"]) == []
    assert signature_mismatches(SimFrankyGripper, franky.Gripper, ["__init__"]) == []
    assert contract_problems(SimFrankyRobot, franky.Robot, uses["robot"]) == []
    assert contract_problems(SimFrankyGripper, franky.Gripper, uses["gripper"]) == []
