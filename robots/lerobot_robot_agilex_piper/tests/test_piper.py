"""PiPer drivers on the real piper_sdk over python-can's virtual bus against the simulated firmware.

The fuzz and fault suites shared by every arm (piper and bi_piper among them) are in
``tests/robots/test_guarded_arms.py``; here: PiPer units and set-up, collision protection, control mode, the
bimanual composition, leader arms, and the firmware's fidelity to the SDK's codec."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from lerobot.robots.config import RobotConfig
from lerobot.robots.utils import make_robot_from_config
from lerobot.teleoperators.config import TeleoperatorConfig
from lerobot.teleoperators.utils import make_teleoperator_from_config
from lerobot_robot_agilex_piper import BiPiperConfig, BiPiperLeaderConfig, PiperConfig, PiperLeaderConfig
from lerobot_robot_agilex_piper.bipiper import BiPiper
from lerobot_robot_agilex_piper.bipiperleader import BiPiperLeader
from lerobot_robot_agilex_piper.config_piper import PiperArmConfig
from lerobot_robot_agilex_piper.piper import Piper, mdeg_to_rad, rad_to_mdeg
from lerobot_robot_agilex_piper.piperleader import PiperLeader
from lerobot_robot_agilex_piper.sim_piper import (
    MDEG_PER_RAD,
    PIPER_JOINT_LOWER,
    PIPER_JOINT_UPPER,
    SimPiperFirmware,
)
from lerobot_vla_tools.testing.robots import connected, wait_until

from lerobot_vla_plugins.errors import ConfigError
from lerobot_vla_plugins.robots.safety import RobotSafetyError

JOINT_KEYS = [f"joint_{i}.pos" for i in range(1, 7)]


def make(tmp_path, **kw) -> Piper:
    return make_robot_from_config(PiperConfig(backend="sim", calibration_dir=tmp_path, **kw))


@pytest.fixture
def robot(tmp_path):
    with connected(PiperConfig(backend="sim", calibration_dir=tmp_path)) as r:
        yield r


def patch_firmware(monkeypatch, change):
    """Runs ``change(firmware)`` on every simulated firmware right after it starts (before the driver reads it)."""
    import lerobot_robot_agilex_piper.piper as piper_mod

    real_open = piper_mod.open_piper_interface

    def opened(*args, **kwargs):
        iface, fw = real_open(*args, **kwargs)
        change(fw)
        return iface, fw

    monkeypatch.setattr(piper_mod, "open_piper_interface", opened)


def test_all_four_types_register_and_lerobot_builds_them(tmp_path):
    assert RobotConfig.get_choice_class("piper") is PiperConfig
    assert RobotConfig.get_choice_class("bi_piper") is BiPiperConfig
    assert TeleoperatorConfig.get_choice_class("piper_leader") is PiperLeaderConfig
    assert TeleoperatorConfig.get_choice_class("bi_piper_leader") is BiPiperLeaderConfig
    assert isinstance(make(tmp_path), Piper)
    assert isinstance(make_robot_from_config(BiPiperConfig(backend="sim", calibration_dir=tmp_path)), BiPiper)
    assert isinstance(
        make_teleoperator_from_config(PiperLeaderConfig(backend="sim", calibration_dir=tmp_path)), PiperLeader
    )
    assert isinstance(
        make_teleoperator_from_config(BiPiperLeaderConfig(backend="sim", calibration_dir=tmp_path)),
        BiPiperLeader,
    )


def test_the_import_package_is_the_distribution_name_lerobot_discovers():
    """LeRobot imports every distribution named lerobot_robot_* as a module of that name; ours is not the
    lerobot_robot_piper that another project publishes."""
    import importlib.metadata

    names = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert "lerobot_robot_agilex_piper" in names and "lerobot_robot_piper" not in names
    assert Piper.__module__ == "lerobot_robot_agilex_piper.piper"


def test_sim_runs_the_real_sdk_class(robot):
    from piper_sdk import C_PiperInterface_V2

    assert type(robot.arm) is C_PiperInterface_V2
    assert wait_until(lambda: robot.firmware.enabled and robot.firmware.ctrl_mode == 0x01)


def test_sdk_units_round_trip():
    for rad in (0.0, 1.234567, -2.5, math.pi / 7):
        assert mdeg_to_rad(rad_to_mdeg(rad)) == pytest.approx(
            rad, abs=0.5 / 57295.78
        )  # half a 0.001 deg step


def test_joint_limits_are_the_sdks_table():
    from piper_sdk.piper_param.piper_param_manager import C_PiperParamManager

    table = C_PiperParamManager().GetPiperParamOrigin()["joint_limit"]
    assert [table[f"j{i}"] for i in range(1, 7)] == [
        list(p) for p in zip(PIPER_JOINT_LOWER, PIPER_JOINT_UPPER, strict=True)
    ]


def test_connect_commands_the_measured_pose_so_nothing_moves(robot):
    q0 = robot.firmware.dyn.read().copy()
    wait_until(lambda: False, timeout=0.3)
    assert robot.firmware.dyn.read() == pytest.approx(q0, abs=1e-4)
    assert robot.firmware.joint_commands >= 1


def test_connect_sets_collision_protection_on_every_joint_and_reads_it_back(robot):
    assert (
        robot.firmware.crash_levels == [3] * 6
    )  # PiperConfig.collision_level; the firmware boots with 0 (off)


def test_collision_protection_that_is_not_confirmed_refuses_to_connect(tmp_path, monkeypatch):
    def deaf(fw):
        original = fw._handle

        def handle(msg):
            if msg.arbitration_id != 0x47A:  # the arm ignores CrashProtectionConfig (old firmware)
                original(msg)

        fw._handle = handle

    patch_firmware(monkeypatch, deaf)
    r = make(tmp_path, enable_timeout_s=0.5)
    with pytest.raises(RobotSafetyError, match="did not confirm collision protection level 3"):
        r.connect()
    assert not r.is_connected


def test_collision_level_zero_is_refused():
    with pytest.raises(ConfigError, match="collision_level=0"):
        PiperConfig(collision_level=0)


def test_the_teach_button_leaving_can_control_stops_the_arm(robot):
    robot.firmware.teach_button = True
    assert wait_until(lambda: robot.fault is not None, timeout=2.0)
    assert "left CAN control mode (now teaching" in str(robot.fault)
    with pytest.raises(RobotSafetyError, match="stopped after a fault"):
        robot.send_action({})


def test_nan_at_the_rest_pose_does_not_move_joints_sitting_on_their_stops(tmp_path, monkeypatch):
    """Rest pose: J2 = 0 is J2's lower limit and J3 = 0 J3's upper limit. Holding must not push them by the 0.02 rad
    margin (the driver did: the arm moved on a NaN)."""
    patch_firmware(monkeypatch, lambda fw: fw.dyn.place([0.0] * 6))
    r = make(tmp_path)
    r.connect()
    try:
        for _ in range(10):
            sent = r.send_action(dict.fromkeys(r.action_features, math.nan))
        assert [sent[k] for k in JOINT_KEYS] == [0.0] * 6
        wait_until(lambda: False, timeout=0.2)
        assert r.firmware.dyn.read() == pytest.approx([0.0] * 6, abs=1e-9)
    finally:
        r.disconnect()


def test_observation_is_in_radians_and_gripper_fraction(robot):
    obs = robot.get_observation()
    assert [obs[k] for k in JOINT_KEYS] == pytest.approx(robot.firmware.dyn.read().tolist(), abs=1e-4)
    assert obs["gripper.pos"] == pytest.approx(1.0, abs=1e-3)  # sim starts fully open (70 mm)


def test_targets_are_reached_in_small_capped_steps(robot):
    goal = np.array(robot.firmware.dyn.read()) + 0.25
    for _ in range(40):
        sent = robot.send_action({**dict(zip(JOINT_KEYS, goal, strict=True)), "gripper.pos": 0.5})
        time.sleep(1 / 30)
    assert [sent[k] for k in JOINT_KEYS] == pytest.approx(goal.tolist(), abs=1e-6)
    assert wait_until(lambda: np.allclose(robot.firmware.dyn.read(), goal, atol=2e-3))
    assert wait_until(lambda: abs(robot.firmware.gripper.read()[0] - 35000) < 10, timeout=3.0)  # 0.5 x 70 mm
    assert robot.firmware.dyn.check.above_step_cap == 0
    assert robot.firmware.dyn.step_cap == pytest.approx([0.1] * 6)  # the sim checks what the driver promises


def test_enable_that_never_succeeds_fails_connect(tmp_path, monkeypatch):
    patch_firmware(monkeypatch, lambda fw: setattr(fw.faults, "enable_fails", True))
    r = make(tmp_path, enable_timeout_s=0.3)
    with pytest.raises(RobotSafetyError, match="did not report enabled"):
        r.connect()
    assert not r.is_connected
    assert r.firmware.joint_commands == 0


def test_disconnect_keeps_motors_enabled_unless_asked(tmp_path):
    r = make(tmp_path)
    r.connect()
    fw = r.firmware
    r.disconnect()
    assert fw.enabled and not fw.dropped
    r2 = make(tmp_path, disable_on_disconnect=True)
    r2.connect()
    fw2 = r2.firmware
    r2.disconnect()
    assert not fw2.enabled and fw2.dropped  # what the warning says: an unbraked arm falls


def test_a_fault_stays_powered_so_the_arm_does_not_fall(robot):
    robot.firmware.faults.collision = True
    assert wait_until(lambda: robot.fault is not None, timeout=2.0)
    assert robot.firmware.enabled and not robot.firmware.dropped
    robot.disconnect()
    assert robot.firmware.enabled and not robot.firmware.dropped


def test_bi_piper_prefixes_keys_and_routes_each_side(tmp_path):
    from lerobot.cameras.opencv import OpenCVCameraConfig

    cam = OpenCVCameraConfig(index_or_path=0, width=32, height=24, fps=30)
    cfg = BiPiperConfig(backend="sim", calibration_dir=tmp_path, cameras={"top": cam})
    cfg.left_arm_config.cameras = {"wrist": cam}
    r = make_robot_from_config(cfg)
    assert list(r.action_features)[:2] == ["left_joint_1.pos", "left_joint_2.pos"]
    assert {"top", "left_wrist"} <= set(r.observation_features)
    r.connect()
    try:
        obs = r.get_observation()
        assert obs["top"].shape == (24, 32, 3) and obs["left_wrist"].shape == (24, 32, 3)
        a = {k: obs[k] for k in r.action_features}
        a["left_joint_1.pos"] += 5.0
        sent = r.send_action(a)
        assert sent["left_joint_1.pos"] == pytest.approx(obs["left_joint_1.pos"] + 0.1)
        assert sent["right_joint_1.pos"] == pytest.approx(obs["right_joint_1.pos"], abs=1e-9)
        with pytest.raises(ValueError, match="lack a member prefix"):
            r.send_action({"joint_1.pos": 0.0})
    finally:
        r.disconnect()


def test_bi_piper_a_collision_on_the_right_arm_stops_the_left_arm(tmp_path):
    """The left arm keeps being commanded towards a far target; the right arm collides. From then on the left arm
    gets no command and moves at most what its last target allowed (the cap, 0.1 rad)."""
    r = make_robot_from_config(BiPiperConfig(backend="sim", calibration_dir=tmp_path))
    r.connect()
    try:
        left_fw, right_fw = r.left_arm.firmware, r.right_arm.firmware
        obs = r.get_observation()
        far = {
            k: obs[k] + (0.8 if k.startswith("left_") and "gripper" not in k else 0.0)
            for k in r.action_features
        }
        for _ in range(5):
            r.send_action(far)
            time.sleep(1 / 30)
        right_fw.faults.collision = True
        q_trip = left_fw.dyn.read().copy()
        with pytest.raises(RobotSafetyError):
            for _ in range(60):
                r.send_action(far)
                time.sleep(1 / 30)
        assert r.left_arm.fault is not None and "because piper[can_right] faulted" in str(r.left_arm.fault)
        wait_until(lambda: False, timeout=0.1)
        n = left_fw.joint_commands
        wait_until(lambda: False, timeout=0.5)
        assert left_fw.joint_commands == n
        assert np.abs(left_fw.dyn.read() - q_trip).max() <= 0.1 + 1e-3
    finally:
        r.disconnect()


def test_bi_piper_refuses_one_can_interface_for_both_arms():
    with pytest.raises(ConfigError, match="both arms are on CAN interface 'can0'"):
        BiPiperConfig(
            left_arm_config=PiperArmConfig(can_name="can0"), right_arm_config=PiperArmConfig(can_name="can0")
        )


def test_leader_frames_become_follower_actions(tmp_path):
    t = make_teleoperator_from_config(PiperLeaderConfig(backend="sim", calibration_dir=tmp_path))
    t.connect()
    try:
        time.sleep(0.05)
        a = t.get_action()
        q_script, _ = t.sim_leader.pose(time.monotonic() - t.sim_leader._t0)
        assert [a[k] for k in JOINT_KEYS] == pytest.approx(q_script.tolist(), abs=0.05)
        assert 0.0 <= a["gripper.pos"] <= 1.0
        assert set(a) == {*JOINT_KEYS, "gripper.pos"}
    finally:
        t.disconnect()


def test_stale_leader_gives_nan_so_the_follower_holds(tmp_path):
    t = make_teleoperator_from_config(PiperLeaderConfig(backend="sim", calibration_dir=tmp_path))
    t.connect()
    try:
        t.sim_leader.paused = True
        time.sleep(0.3)
        assert all(math.isnan(v) for v in t.get_action().values())
    finally:
        t.disconnect()


def test_leader_config_rejects_unknown_backend():
    with pytest.raises(ConfigError, match="piper_leader.backend"):
        PiperLeaderConfig(backend="ros")


def test_speed_rate_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="speed_rate must be 1..100"):
        PiperConfig(speed_rate=0)


def test_the_firmware_speaks_the_sdks_codec_both_ways():
    """Commands encoded by the SDK are decoded by the firmware, and the firmware's frames decoded by the SDK come
    back with the SDK's own types (enums for status, ints in 0.001 deg / 0.001 mm)."""
    from piper_sdk import C_PiperInterface_V2
    from piper_sdk.piper_msgs.msg_v2.feedback.arm_feedback_status import ArmMsgFeedbackStatusEnum

    channel = "piper-codec-test"
    fw = SimPiperFirmware(channel, q0=(0.1, 0.6, -0.4, 0.2, -0.3, 0.5), step_cap=None).start()
    sdk = C_PiperInterface_V2(channel, judge_flag=False, can_auto_init=False)
    sdk.CreateCanBus(channel, bustype="virtual", judge_flag=False)
    sdk.ConnectPort()
    try:
        assert wait_until(lambda: sdk.GetArmJointMsgs().time_stamp > 0)
        js = sdk.GetArmJointMsgs().joint_state
        read = [js.joint_1, js.joint_2, js.joint_3, js.joint_4, js.joint_5, js.joint_6]
        assert all(type(v) is int for v in read)
        assert read == [round(v * MDEG_PER_RAD) for v in (0.1, 0.6, -0.4, 0.2, -0.3, 0.5)]
        assert type(sdk.GetArmGripperMsgs().gripper_state.grippers_angle) is int
        assert sdk.GetArmGripperMsgs().gripper_state.grippers_angle == 70000  # 70 mm in 0.001 mm
        status = sdk.GetArmStatus().arm_status
        assert isinstance(status.ctrl_mode, ArmMsgFeedbackStatusEnum.CtrlMode)
        assert isinstance(status.arm_status, ArmMsgFeedbackStatusEnum.ArmStatus)
        assert wait_until(sdk.EnablePiper) and fw.enabled
        sdk.MotionCtrl_2(0x01, 0x01, 42, 0x00)
        assert wait_until(lambda: fw.speed_rate == 42 and sdk.GetArmStatus().arm_status.ctrl_mode == 0x01)
        sdk.JointCtrl(120000, 40000, -30000, 10000, -20000, 30000)
        target = np.array([120000, 40000, -30000, 10000, -20000, 30000]) / MDEG_PER_RAD
        assert wait_until(lambda: np.allclose(fw.dyn.target, target))
        sdk.GripperCtrl(25000, 1000, 0x01, 0)
        assert wait_until(lambda: fw.gripper.target[0] == 25000)
        sdk.CrashProtectionConfig(1, 2, 3, 4, 5, 6)
        assert wait_until(lambda: fw.crash_levels == [1, 2, 3, 4, 5, 6])
        sdk.ArmParamEnquiryAndConfig(0x02, 0x00, 0x00, 0x00, 0x03)
        fb = sdk.GetCrashProtectionLevelFeedback()
        assert wait_until(lambda: sdk.GetCrashProtectionLevelFeedback().time_stamp > 0)
        fb = sdk.GetCrashProtectionLevelFeedback().crash_protection_level_feedback
        assert [getattr(fb, f"joint_{i}_protection_level") for i in range(1, 7)] == [1, 2, 3, 4, 5, 6]
        fw.faults.collision = True
        assert wait_until(lambda: sdk.GetArmStatus().arm_status.arm_status == 0x07)
    finally:
        sdk.DisconnectPort()
        fw.stop()
