"""xarm6 driver on the simulated XArmAPI: lifecycle, units, limit variants, xArm-specific faults, SDK fidelity.

The fuzz and fault suites shared by every arm are in ``tests/robots/test_guarded_arms.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lerobot.robots.config import RobotConfig
from lerobot.robots.utils import make_robot_from_config
from lerobot_robot_xarm6 import XArm6Config
from lerobot_robot_xarm6.sim_xarm import SimXArmAPI, xarm6_joint_limits, xarm_limit_variant
from lerobot_robot_xarm6.xarm6 import XArm6
from lerobot_vla_tools.testing.robots import connected, wait_until

from lerobot_vla_plugins.errors import ConfigError
from lerobot_vla_plugins.robots.safety import RobotSafetyError
from lerobot_vla_plugins.robots.sdk_contract import (
    contract_problems,
    instance_mismatches,
    record_use,
    signature_mismatches,
    unwrap,
)

JOINT_KEYS = [f"joint_{i}.pos" for i in range(1, 7)]


def make(tmp_path, **kw) -> XArm6:
    kw.setdefault("backend", "sim")
    return make_robot_from_config(XArm6Config(calibration_dir=tmp_path, **kw))


def with_sim(robot: XArm6, monkeypatch, **sim) -> None:
    """Builds the robot's simulated SDK with extra simulation options / switches."""
    real_make = robot._make_arm
    options = {k: v for k, v in sim.items() if k.startswith("sim_")}
    switches = {k: v for k, v in sim.items() if not k.startswith("sim_")}

    def make_arm():
        arm = real_make()
        if options:
            arm = SimXArmAPI(arm.port, is_radian=True, **{**_sim_options(arm), **options})
        for k, v in switches.items():
            setattr(arm, k, v)
        return arm

    monkeypatch.setattr(robot, "_make_arm", make_arm)


def _sim_options(arm: SimXArmAPI) -> dict:
    return {"sim_servo_step": arm.servo_step, "sim_step_cap": arm.step_cap}


@pytest.fixture
def robot(tmp_path):
    with connected(XArm6Config(backend="sim", calibration_dir=tmp_path)) as r:
        yield r


def test_type_is_registered_and_lerobot_builds_the_driver(tmp_path):
    assert RobotConfig.get_choice_class("xarm6") is XArm6Config
    assert isinstance(make(tmp_path), XArm6)


def test_features_are_radians_joints_and_gripper_and_exist_before_connect(tmp_path):
    from lerobot.cameras.opencv import OpenCVCameraConfig

    cam = OpenCVCameraConfig(index_or_path=0, width=64, height=48, fps=30)
    r = make(tmp_path, cameras={"image_1": cam, "image_2": cam})
    assert list(r.action_features) == [*JOINT_KEYS, "gripper.pos"]
    assert r.observation_features["image_1"] == r.observation_features["image_2"] == (48, 64, 3)


def test_connect_streams_the_measured_pose_and_configures_collision_detection(robot):
    q0 = robot.arm.dyn.read().copy()
    wait_until(lambda: robot.streamer.sent_count > 10)
    assert robot.arm.dyn.read() == pytest.approx(q0, abs=1e-9)  # streaming the measured pose: no motion
    assert robot.arm.collision_sensitivity == 3 and robot.arm._self_collision


def test_joint_angles_round_trip_rad_and_degrees(robot):
    obs = robot.get_observation()
    code, deg = robot.arm.get_servo_angle(is_radian=False)
    assert code == 0
    assert [math.radians(d) for d in deg[:6]] == pytest.approx([obs[k] for k in JOINT_KEYS], abs=1e-5)


def test_gripper_fraction_maps_to_pulses_zero_closed_850_open(robot):
    robot.send_action({**{k: robot.get_observation()[k] for k in JOINT_KEYS}, "gripper.pos": 0.9})
    assert wait_until(lambda: abs(robot.arm.gripper_dyn.read()[0] - 765) < 1)  # 0.9 * 850
    assert wait_until(lambda: abs(robot.get_observation()["gripper.pos"] - 0.9) <= 2 / 850)


def test_target_is_reached_through_the_interpolator_in_speed_limited_points(robot):
    q0 = np.array([robot.get_observation()[k] for k in JOINT_KEYS])
    goal = q0 + 0.05
    assert wait_until(
        lambda: robot.send_action({**dict(zip(JOINT_KEYS, goal, strict=True)), "gripper.pos": 1.0})
        is not None
        and np.allclose(robot.arm.dyn.read(), goal, atol=1e-3),
        timeout=3.0,
        period=1 / 30,
    )
    assert robot.arm.dyn.check.above_step_cap == 0  # every point within max_joint_speed / stream_rate_hz


def test_send_action_returns_the_clamped_capped_action(robot):
    obs = robot.get_observation()
    sent = robot.send_action({**{k: obs[k] for k in JOINT_KEYS}, "joint_2.pos": 99.0, "gripper.pos": 1.0})
    assert sent["joint_2.pos"] == pytest.approx(obs["joint_2.pos"] + 0.1)  # max_relative_target = 0.1 rad


def test_commands_stay_inside_the_sdk_limit_table_minus_the_margin(tmp_path):
    r = make(tmp_path, max_relative_target=None)
    r.connect()
    try:
        lower, upper = xarm6_joint_limits()
        sent = r.send_action({**dict(zip(JOINT_KEYS, [9.0] * 6, strict=True)), "gripper.pos": 2.0})
        assert [sent[k] for k in JOINT_KEYS] == pytest.approx([u - 0.02 for u in upper])
        assert sent["gripper.pos"] == 1.0
    finally:
        r.disconnect()


@pytest.mark.parametrize(
    ("sn", "variant"), [("XS1202A0000000", 6), ("XS1305A0000000", 61305), ("XS8500A0000000", 6)]
)
def test_the_limit_variant_rule_is_the_sdks(sn, variant):
    """Our table lookup agrees with the SDK's own pre-check (``_is_out_of_joint_range``) at both ends of J2/J3."""
    from xarm.x3.xarm import XArm

    assert xarm_limit_variant(6, 6, sn) == variant
    sdk = XArm("127.0.0.1", do_not_open=True)
    sdk._robot_sn, sdk._arm_axis, sdk._arm_type = sn, 6, 6
    sdk._check_joint_limit, sdk._stream_type, sdk._enable_report = True, "socket", True
    lower, upper = xarm6_joint_limits(6, sn)
    slack = math.radians(0.1)  # the SDK's own tolerance
    for i in (1, 2):
        assert not sdk._is_out_of_joint_range(upper[i], i) and not sdk._is_out_of_joint_range(lower[i], i)
        assert sdk._is_out_of_joint_range(upper[i] + 2 * slack, i) and sdk._is_out_of_joint_range(
            lower[i] - 2 * slack, i
        )


def test_an_arm_with_serial_1305_uses_its_own_table_and_is_never_refused(tmp_path, monkeypatch):
    """Serial >= 1305: J2 max 2.0246 and J3 min -3.8223 (X4: 2.0944, -3.9270). Targets at the X4 table's edge would
    be refused by the SDK with code -8 and stop the arm mid-episode."""
    r = make(tmp_path, max_relative_target=None, max_joint_speed=3.0)
    with_sim(r, monkeypatch, sim_sn="XS1305A0000000")
    r.connect()
    try:
        assert r.guard.upper[1] == pytest.approx(2.024581) and r.guard.lower[2] == pytest.approx(-3.822271)
        corner = {"joint_2.pos": 9.0, "joint_3.pos": -9.0}
        for _ in range(60):
            sent = r.send_action(corner)
            wait_until(lambda: False, timeout=1 / 30)
        assert sent["joint_2.pos"] == pytest.approx(2.024581 - 0.02)
        assert r.fault is None and r.arm.dyn.check.outside_limits == 0
    finally:
        r.disconnect()


def test_online_planning_stops_the_controller_on_a_fault_and_stays_stopped(tmp_path):
    """Mode 6: frozen feedback -> set_state(4) (the controller halts its planned motion) and the fault is latched:
    send_action keeps raising after the feedback comes back."""
    r = make(tmp_path, control_mode="online_planning")
    r.connect()
    try:
        obs = r.get_observation()
        r.send_action({**{k: obs[k] + 0.1 for k in JOINT_KEYS}, "gripper.pos": 1.0})
        r.arm.faults.freeze_feedback = True
        assert wait_until(lambda: r.fault is not None, timeout=3.0)
        assert r.arm.state == 4 and r.arm.dyn.stopped
        n = r.arm.dyn.check.commands
        r.arm.faults.freeze_feedback = False
        with pytest.raises(RobotSafetyError, match="stopped after a fault"):
            r.send_action({**{k: obs[k] for k in JOINT_KEYS}, "gripper.pos": 1.0})
        assert r.arm.dyn.check.commands == n and r.arm.state == 4
    finally:
        r.disconnect()
    assert r.arm.state == 4  # disconnect after a fault leaves the controller stopped


def test_a_gripper_that_stops_answering_goes_stale_and_stops_the_arm(tmp_path, monkeypatch):
    r = make(tmp_path)
    with_sim(r, monkeypatch)
    r.connect()
    try:
        r.arm.gripper_read_fails = True
        assert wait_until(lambda: r.fault is not None, timeout=3.0)
        assert "gripper feedback has not updated" in str(r.fault)
        assert r.arm.state == 4
    finally:
        r.disconnect()


def test_a_warning_that_cannot_be_cleared_refuses_to_connect(tmp_path, monkeypatch):
    r = make(tmp_path)
    with_sim(r, monkeypatch, warn_code=11, clean_warn_fails=True)
    with pytest.raises(RobotSafetyError, match="clean_warn returned code 2"):
        r.connect()
    assert not r.is_connected and r.arm.dyn.check.commands == 0


def test_enable_that_never_succeeds_fails_connect_and_leaves_nothing_running(tmp_path, monkeypatch):
    r = make(tmp_path, enable_timeout_s=0.3)
    real_make = r._make_arm

    def broken_arm():
        arm = real_make()
        arm.faults.enable_fails = True
        return arm

    monkeypatch.setattr(r, "_make_arm", broken_arm)
    with pytest.raises(RobotSafetyError, match="did not become ready"):
        r.connect()
    assert not r.is_connected and r.streamer is None and not r.arm.connected
    assert r.arm.dyn.check.commands == 0


def test_uncleared_controller_error_refuses_to_connect(tmp_path, monkeypatch):
    r = make(tmp_path)
    real_make = r._make_arm

    def arm_in_error():
        arm = real_make()
        arm._error_code = 22
        return arm

    monkeypatch.setattr(r, "_make_arm", arm_in_error)
    with pytest.raises(RobotSafetyError, match="error C22"):
        r.connect()


def test_collision_sensitivity_zero_is_refused():
    with pytest.raises(ConfigError, match="collision detection off"):
        XArm6Config(collision_sensitivity=0)


def test_slow_servo_stream_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="online_planning"):
        XArm6Config(stream_rate_hz=30)


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="backend must be one of"):
        XArm6Config(backend="mujoco")


def test_sdk_backend_reports_an_unreachable_controller(tmp_path, monkeypatch):
    import xarm.wrapper

    def refuse(*a, **k):
        raise Exception("connect socket failed")

    monkeypatch.setattr(xarm.wrapper, "XArmAPI", refuse)
    r = make(tmp_path, backend="sdk", ip="127.0.0.1")
    with pytest.raises(ConnectionError, match="cannot reach the controller at 127.0.0.1"):
        r.connect()


def _record_an_episode(tmp_path, monkeypatch, mode: str):
    """Connect, observe, act, let the watchdog hold, collide, disconnect: what the driver touched on the sim."""
    r = make(tmp_path, control_mode=mode)
    real_make = r._make_arm
    recording = []

    def recorded():
        proxy, use = record_use(real_make())
        recording.append(use)
        return proxy

    monkeypatch.setattr(r, "_make_arm", recorded)
    r.connect()
    obs = r.get_observation()
    r.send_action({**{k: obs[k] + 0.05 for k in JOINT_KEYS}, "gripper.pos": 0.5})
    wait_until(lambda: False, timeout=0.4)  # watchdog / streamer hold
    unwrap(r.arm).faults.collision = True
    wait_until(lambda: r.fault is not None, timeout=3.0)
    r.disconnect()
    return recording[0]


def test_the_sim_is_faithful_to_the_installed_sdk_for_every_member_the_driver_touches(tmp_path, monkeypatch):
    """Both modes, with a gripper, a watchdog hold and a collision: every member the driver touched on the sim has the
    installed XArmAPI's signature and defaults, accepts the driver's calls, follows its documented return convention,
    and answers like the real class when disconnected (``XArmAPI(ip, do_not_open=True)``)."""
    from xarm.wrapper import XArmAPI

    uses = [_record_an_episode(tmp_path, monkeypatch, mode) for mode in ("servo", "online_planning")]
    assert signature_mismatches(SimXArmAPI, XArmAPI, ["__init__"]) == []  # XArmAPI(ip, is_radian=True)
    for use in uses:
        assert {
            "device_type",
            "axis",
            "sn",
            "set_servo_angle_j" if use is uses[0] else "set_servo_angle",
        } <= use.top_level
        assert contract_problems(SimXArmAPI, XArmAPI, use) == []
        assert (
            instance_mismatches(SimXArmAPI(do_not_open=True), XArmAPI("127.0.0.1", do_not_open=True), use)
            == []
        )
