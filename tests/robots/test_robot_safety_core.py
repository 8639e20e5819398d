"""The shared robot safety layer: ActionGuard, FeedbackClock, JointStreamer, simulated dynamics, SDK contract check."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from lerobot_vla_tools.testing.robots import action_violations, fuzz_actions, wait_until

from lerobot_vla_plugins.errors import ConfigError
from lerobot_vla_plugins.robots.guarded import FeedbackClock
from lerobot_vla_plugins.robots.policy_fit import check_rollout_policy_fits, policy_mismatches
from lerobot_vla_plugins.robots.safety import ActionGuard, JointLimits, RobotSafetyError
from lerobot_vla_plugins.robots.sdk_contract import (
    contract_problems,
    instance_mismatches,
    record_use,
    signature_mismatches,
)
from lerobot_vla_plugins.robots.sim import SimJointDynamics
from lerobot_vla_plugins.robots.streaming import JointStreamer

NAMES = ("a.pos", "b.pos", "gripper.pos")
LIMITS = JointLimits(NAMES, (-1.0, -2.0, 0.0), (1.0, 0.5, 1.0), (1.0, 1.0, 1.0))


def guard(cap=0.1, margin=0.0):
    return ActionGuard(LIMITS, margin, cap, "testbot")


def test_in_range_action_within_cap_passes_unchanged():
    out, rep = guard()({"a.pos": 0.05, "b.pos": -0.05, "gripper.pos": 0.5}, [0.0, 0.0, 0.45])
    assert out == pytest.approx({"a.pos": 0.05, "b.pos": -0.05, "gripper.pos": 0.5})
    assert rep.held == rep.limited == rep.capped == []


def test_nan_inf_and_missing_values_hold_the_measured_position():
    out, rep = guard()({"a.pos": math.nan, "b.pos": math.inf}, [0.3, -0.2, 0.7])
    assert out == pytest.approx({"a.pos": 0.3, "b.pos": -0.2, "gripper.pos": 0.7})
    assert rep.held == ["a.pos", "b.pos", "gripper.pos"]


def test_targets_are_clamped_to_limits_then_capped_relative_to_measured():
    # b: 9.0 -> upper 0.5 -> at most 0.1 away from measured 0.45 -> 0.5 (limit) ; a: -5 -> -1 -> -0.1 (cap from 0)
    out, rep = guard()({"a.pos": -5.0, "b.pos": 9.0, "gripper.pos": 0.0}, [0.0, 0.45, 0.5])
    assert out == pytest.approx({"a.pos": -0.1, "b.pos": 0.5, "gripper.pos": 0.4})
    assert set(rep.limited) == {"a.pos", "b.pos"} and set(rep.capped) == {"a.pos", "gripper.pos"}


def test_per_key_cap_accepts_bare_joint_names():
    g = ActionGuard(LIMITS, 0.0, {"a": 0.5, "b.pos": 0.01}, "testbot")
    out, _ = g({"a.pos": 0.9, "b.pos": 0.3, "gripper.pos": 1.0}, [0.0, 0.0, 0.0])
    assert out == pytest.approx({"a.pos": 0.5, "b.pos": 0.01, "gripper.pos": 1.0})  # gripper uncapped


def test_unknown_key_is_an_error_naming_the_expected_keys():
    with pytest.raises(ValueError, match=r"unknown action key\(s\) \['c.pos'\].*a.pos"):
        guard()({"c.pos": 0.0}, [0, 0, 0])


def test_non_numeric_value_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match=r"action\['a.pos'\] = 'up' is not a number"):
        guard()({"a.pos": "up"}, [0, 0, 0])


def test_non_finite_measurement_refuses_to_command():
    with pytest.raises(RobotSafetyError, match="measured joint positions are unusable"):
        guard()({"a.pos": 0.0}, [math.nan, 0, 0])


def test_invalid_cap_is_rejected_with_the_fix():
    with pytest.raises(ConfigError, match="set it to null"):
        ActionGuard(LIMITS, 0.0, 0.0, "testbot")


def test_limit_margin_shrinks_every_joint():
    shrunk = LIMITS.shrink({"a.pos": 0.1})
    assert shrunk.lower[0] == pytest.approx(-0.9) and shrunk.upper[0] == pytest.approx(0.9)
    assert shrunk.lower[1] == -2.0


def test_fuzzed_actions_never_leave_limits_or_exceed_the_cap():
    g, measured, last = guard(0.05, margin=0.02), np.array([0.0, 0.0, 0.5]), None
    margin = [0.02, 0.02, 0.02]
    for action in fuzz_actions(NAMES, 3000, LIMITS.lower, LIMITS.upper, seed=1):
        out, _ = g(action, measured, None if last is None else [last])
        assert not action_violations(out, measured, last, NAMES, LIMITS.lower, LIMITS.upper, margin, 0.05)
        last = np.array([out[k] for k in NAMES])
        measured = 0.5 * (measured + last)  # the arm lags behind its targets


def test_a_held_joint_inside_the_margin_band_stays_where_it_is():
    """PiPer's rest pose has J2 at its lower stop (0) and J3 at its upper stop (0): NaN must not move them by the
    margin (0.02 rad), nor may any target push further out; moving inwards is allowed."""
    g = guard(0.1, margin=0.02)
    measured = [0.5, -2.0, 0.0]  # b.pos exactly at its lower limit
    out, _ = g({"a.pos": math.nan, "b.pos": math.nan}, measured)
    assert out["b.pos"] == -2.0
    out, _ = g({"b.pos": -5.0}, measured)
    assert out["b.pos"] == -2.0  # not further out
    out, _ = g({"b.pos": -1.99}, measured)
    assert out["b.pos"] == pytest.approx(-1.99)  # inwards, still inside the margin band: allowed
    out, _ = g({"a.pos": 5.0}, [0.95, 0.0, 0.5])
    assert out["a.pos"] == pytest.approx(0.98)  # an ordinary joint is clamped at the limit minus the margin


def test_the_cap_holds_against_every_target_sent_since_the_measurement():
    """Feedback lags: the arm may already be near the last target p = +0.1 while the reading says q = 0. A reversal
    to -1 must stay within 0.1 of both: 0.0, not -0.1 (which would be a 0.2 jump for an arm at +0.1)."""
    g = guard(0.1)
    out, rep = g({"a.pos": -1.0}, [0.0, 0.0, 0.5], [[0.1, 0.0, 0.5]])
    assert out["a.pos"] == pytest.approx(0.0) and "a.pos" in rep.capped
    # several actions since the reading: the window is the intersection over all of them
    out, _ = g({"a.pos": -1.0}, [0.0, 0.0, 0.5], [[0.05, 0.0, 0.5], [0.08, 0.0, 0.5], [-0.02, 0.0, 0.5]])
    assert out["a.pos"] == pytest.approx(-0.02)
    # measured and targets more than 2 caps apart (the arm is stuck): stay within the cap of the measured pose
    out, _ = g({"a.pos": 1.0}, [0.0, 0.0, 0.5], [[0.5, 0.0, 0.5]])
    assert out["a.pos"] == pytest.approx(0.1)


def test_feedback_stamps_must_be_numbers():
    """franky's RobotState.time is a Duration: a new object per call that compares by identity
    (Duration(5) == Duration(5) is False), so a frozen state would always look fresh. The clock refuses it."""

    class DurationLike:
        def __init__(self, ms):
            self.ms = ms

    clock = FeedbackClock(0.05, "testbot")
    with pytest.raises(TypeError, match="not a number"):
        clock.update({"joints": DurationLike(5)}, now=0.0)


def test_feedback_clock_reports_a_channel_that_stops_changing():
    clock = FeedbackClock(0.5, "testbot")
    assert clock.update({"joints": 1.0, "gripper": 7}, now=0.0) == {"joints", "gripper"}
    assert clock.update({"joints": 2.0, "gripper": 7}, now=0.4) == {"joints"}
    with pytest.raises(RobotSafetyError, match="gripper feedback has not updated for 0.60 s"):
        clock.update({"joints": 3.0, "gripper": 7}, now=0.6)


class _Arm:
    """A velocity-limited joint the streamer drives (simulated dynamics with command checks)."""

    def __init__(self):
        self.dyn = SimJointDynamics([0.0, 0.0], [-1, -1], [1, 1], [5.0, 5.0], step_cap=[0.02, 0.02])
        self.sent = []
        self.fail = threading.Event()

    def send(self, q):
        if self.fail.is_set():
            raise RobotSafetyError("controller error C31")
        self.sent.append(q.copy())
        self.dyn.command(q)

    def read(self):
        return self.dyn.read()


def test_streamer_spreads_a_target_over_small_speed_limited_steps():
    arm = _Arm()
    s = JointStreamer(
        arm.send,
        arm.read,
        rate_hz=200,
        policy_fps=20,
        max_velocity=np.array([1.0, 1.0]),
        command_timeout_s=5.0,
    )
    s.start(np.zeros(2))
    try:
        s.set_target(np.array([0.3, -0.1]))
        # 0.3 rad at <= 1 rad/s needs >= 60 ticks (0.3 s); a loaded machine runs the ticks late, never larger
        wait_until(lambda: bool(arm.sent) and arm.sent[-1] == pytest.approx([0.3, -0.1]), timeout=10.0)
    finally:
        s.stop()
    steps = np.abs(np.diff(np.array(arm.sent), axis=0)).max(axis=1)
    assert steps.max() <= 1.0 / 200 + 1e-9  # v_max * dt
    assert arm.sent[-1] == pytest.approx([0.3, -0.1])
    assert arm.dyn.check.above_step_cap == 0 and arm.dyn.check.outside_limits == 0


def test_streamer_holds_the_measured_position_when_targets_stop():
    arm = _Arm()
    s = JointStreamer(
        arm.send,
        arm.read,
        rate_hz=200,
        policy_fps=20,
        max_velocity=np.array([0.5, 0.5]),
        command_timeout_s=0.1,
    )
    s.start(np.zeros(2))
    try:
        s.set_target(np.array([0.9, 0.9]))  # far: takes 1.8 s at 0.5 rad/s
        time.sleep(0.4)
        assert s.holding
        held = arm.read()
        time.sleep(0.3)
    finally:
        s.stop()
    assert held[0] < 0.9 - 0.5  # stopped well before the stale target
    assert arm.read() == pytest.approx(held, abs=0.01)


def test_streamer_stops_and_reports_a_send_failure_once():
    arm, faults = _Arm(), []
    s = JointStreamer(
        arm.send,
        arm.read,
        rate_hz=200,
        policy_fps=20,
        max_velocity=np.array([1.0, 1.0]),
        command_timeout_s=1.0,
        on_fault=faults.append,
    )
    s.start(np.zeros(2))
    time.sleep(0.05)
    arm.fail.set()
    time.sleep(0.1)
    n = len(arm.sent)
    time.sleep(0.1)
    s.stop()
    assert len(faults) == 1 and isinstance(s.fault, RobotSafetyError)
    assert len(arm.sent) == n  # nothing sent after the fault


def test_sim_dynamics_lag_commands_at_the_speed_limit():
    dyn = SimJointDynamics([0.0], [-1], [1], [0.5])
    dyn.command([1.0])
    time.sleep(0.2)
    q = dyn.read()[0]
    assert 0.05 < q < 0.2  # 0.5 rad/s * 0.2 s = 0.1 rad, not the commanded 1.0


def test_sim_dynamics_count_commands_outside_the_vendor_limits():
    dyn = SimJointDynamics([0.0], [-1], [1], [0.5])
    assert not dyn.command([1.5])
    assert not dyn.command([math.nan])
    assert dyn.check.outside_limits == 1 and dyn.check.non_finite == 1


def test_signature_check_detects_a_renamed_parameter():
    class Vendor:
        def move(self, angles, speed=None, is_radian=None):
            return 0

    class GoodFake:
        def move(self, angles, speed=None, is_radian=None):
            return 0

    class BadFake:
        def move(self, angles, velocity=None, is_radian=None):
            return 0

    assert signature_mismatches(GoodFake, Vendor, ["move"]) == []
    assert "move" in signature_mismatches(BadFake, Vendor, ["move"])[0]


class _Vendor:
    """A vendor SDK class in xarm-python-sdk's style (docstring return conventions)."""

    def set_speed(self, value, wait=True):
        """Set the speed.

        :return: code
        """
        return 0

    def get_angle(self, is_radian=None):
        """Get the angle.

        :return: tuple((code, angle)), only when code is 0, the returned result is correct.
        """
        return -1, "xArm is not connect"


def _touch(fake):
    """What a driver does with the SDK object; returns the recording."""
    proxy, use = record_use(fake)
    proxy.set_speed(3)
    proxy.get_angle(is_radian=True)
    return use


class _GoodFake:
    def set_speed(self, value, wait=True):
        return 0

    def get_angle(self, is_radian=None):
        return 0, 1.5


def test_a_faithful_fake_has_no_contract_problems():
    assert contract_problems(_GoodFake, _Vendor, _touch(_GoodFake())) == []


def test_contract_detects_a_changed_default_value():
    class Fake(_GoodFake):
        def set_speed(self, value, wait=False):
            return 0

    assert any("set_speed" in p and "wait" in p for p in contract_problems(Fake, _Vendor, _touch(Fake())))


def test_contract_detects_a_broken_return_convention():
    class Fake(_GoodFake):
        def set_speed(self, value, wait=True):
            return 0, None  # a getter's tuple where the SDK returns an int code

    assert any("returns an int code" in p for p in contract_problems(Fake, _Vendor, _touch(Fake())))


def test_contract_detects_a_call_the_vendor_signature_does_not_take():
    class Lenient(_GoodFake):
        def get_angle(self, is_radian=None, **kwargs):  # a fake that swallows any keyword
            return 0, 1.5

    proxy, use = record_use(Lenient())
    proxy.get_angle(radians=True)  # the driver passes a keyword the real SDK does not have
    assert any("does not fit" in p for p in contract_problems(Lenient, _Vendor, use))


def test_contract_detects_a_touched_member_the_vendor_lacks():
    class Fake(_GoodFake):
        @property
        def device_kind(self):
            return 6

    proxy, use = record_use(Fake())
    assert proxy.device_kind == 6
    assert any("has no 'device_kind'" in p for p in contract_problems(Fake, _Vendor, use))


def test_instance_check_detects_a_different_disconnected_reply():
    class Fake(_GoodFake):
        def get_angle(self, is_radian=None):
            return -1, None  # the SDK says (-1, 'xArm is not connect')

    use = _touch(Fake())
    assert any("while disconnected" in p for p in instance_mismatches(Fake(), _Vendor(), use))


def test_contract_detects_a_float_where_franky_returns_a_duration_and_none_where_it_has_an_object():
    franky = pytest.importorskip("franky", reason="franky-control has Linux wheels only")

    class State:
        def __init__(self):
            self.time = 1.25  # franky: Duration
            self.q = np.zeros(7)

    class Fake:
        def __init__(self, fci_hostname, relative_dynamics_factor=1.0, default_torque_threshold=20.0,
                     default_force_threshold=30.0, controller_mode=None, realtime_config=None):  # fmt: skip
            pass

        @property
        def state(self):
            return State()

    proxy, use = record_use(Fake("host"))
    assert proxy.state.time == 1.25
    problems = contract_problems(Fake, franky.Robot, use)
    assert any(p.startswith("state.time") and "Duration" in p for p in problems), problems
    assert any(p.startswith("__init__") for p in signature_mismatches(Fake, franky.Robot, ["__init__"]))


def _features(state: int, action: int, cameras: list[str]):
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state,))}
    inputs.update(
        {f"observation.images.{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 8, 8)) for c in cameras}
    )
    return inputs, {"action": PolicyFeature(type=FeatureType.ACTION, shape=(action,))}


XARM_OBS = {**{f"joint_{i}.pos": float for i in range(1, 7)}, "gripper.pos": float, "image_1": (8, 8, 3)}
XARM_ACT = {k: v for k, v in XARM_OBS.items() if v is float}


def test_a_policy_that_fits_the_robot_passes():
    assert policy_mismatches("xarm6", XARM_OBS, XARM_ACT, *_features(7, 7, ["image_1"])) == []


def test_a_meta_world_policy_on_the_xarm6_names_both_sides():
    problems = policy_mismatches("xarm6", XARM_OBS, XARM_ACT, *_features(4, 4, ["top"]))
    assert problems[0].startswith("the policy outputs a 4-D action, xarm6 takes 7 (joint_1.pos, ")
    assert problems[1].startswith("the policy reads a 4-D observation.state, xarm6 provides 7")
    assert (
        "needs cameras ['observation.images.top'], xarm6 provides ['observation.images.image_1']"
        in problems[2]
    )


def test_a_rename_map_can_supply_the_policys_camera_name():
    inputs, outputs = _features(7, 7, ["top"])
    rename = {"observation.images.image_1": "observation.images.top"}
    assert policy_mismatches("xarm6", XARM_OBS, XARM_ACT, inputs, outputs, rename) == []


def test_outside_a_rollout_command_nothing_is_checked():
    check_rollout_policy_fits("xarm6", "xarm6", XARM_OBS, XARM_ACT, argv=["--robot.type=xarm6"])
