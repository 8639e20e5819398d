"""The fuzz and fault suites, run the same way against every driver on its simulated backend (all are GuardedArms).

Each simulated controller checks every command it receives against the vendor's limit table and against the step
bound the driver promises (its ``max_relative_target`` per action, or the xArm streamer's per-point step), measured
from the sim's *true* position: a driver that caps against lagged feedback, or sends outside the table, is counted.
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
from lerobot.utils.errors import DeviceNotConnectedError
from lerobot_vla_tools.testing.robots import (
    SIM_ARMS,
    action_violations,
    connected,
    fuzz_actions,
    wait_until,
)

from lerobot_vla_plugins.robots.guarded import GuardedArm
from lerobot_vla_plugins.robots.safety import RobotSafetyError

CAP = 0.1  # the drivers' default max_relative_target


@pytest.fixture(params=SIM_ARMS, ids=[c.id for c in SIM_ARMS])
def case(request):
    return request.param


@pytest.fixture
def robot(case, tmp_path):
    with connected(case.config(tmp_path)) as r:
        yield r


def hold_action(robot) -> dict:
    obs = robot.get_observation()
    return {k: obs[k] for k in robot.action_features}


def send_until_raises(robot, timeout: float = 3.0) -> RobotSafetyError | None:
    """Keeps sending the measured pose (as a policy loop would) until the driver raises; returns the error."""
    caught: list[RobotSafetyError] = []

    def step() -> bool:
        try:
            robot.send_action({})
        except RobotSafetyError as e:
            caught.append(e)
            return True
        return False

    wait_until(step, timeout=timeout, period=1 / 30)
    return caught[0] if caught else None


@pytest.fixture
def fuzzed_robot(case, tmp_path):
    """The robot with a 3 s feedback watchdog: this suite is about limits, and its 2000-action hot loop can starve
    the simulated controller's feedback thread for more than the default 0.5 s on a loaded 2-core machine."""
    with connected(case.config(tmp_path, feedback_timeout_s=3.0)) as r:
        yield r


def test_fuzzed_actions_stay_inside_the_limits_and_the_promised_step(case, fuzzed_robot):
    """2000 actions (30 % NaN/inf/1e308, 10 % missing keys): 0 commands outside the vendor's table, 0 non-finite,
    0 above the step bound from the true position; every returned action passes the safety rules."""
    robot = fuzzed_robot
    for i, action in enumerate(fuzz_actions(list(robot.action_features), 2000, *_bounds(robot), seed=3)):
        last = {p: arm.last_target for p, arm in case.members(robot)}
        sent = robot.send_action(action)
        for prefix, arm in case.members(robot):
            g = arm.guard
            mine = {k: sent[prefix + k] for k in arm.action_features}
            margin = g.soft_lower - g.lower
            problems = action_violations(
                mine, arm.last_measured, last[prefix], g.names, g.lower, g.upper, margin, CAP, tol=1e-9
            )
            assert not problems, (i, action, problems)
        if i % 25 == 0:
            wait_until(lambda: False, timeout=0.01)  # let the simulated arms move
    streamed = (
        getattr(robot, "streamer", None) is not None
    )  # xArm servo: points at 100 Hz, not one per action
    n_arms = len(case.members(robot))
    assert wait_until(lambda: case.counts(robot).commands >= (1 if streamed else 2000 * n_arms), timeout=5.0)
    counts = case.counts(robot)  # (the simulated CAN firmware may still be draining its bus above)
    assert (counts.outside_limits, counts.non_finite, counts.above_step_cap) == (0, 0, 0), counts


def _bounds(robot) -> tuple[list[float], list[float]]:
    lo, hi = [], []
    arms = robot.members.values() if hasattr(robot, "members") else [robot]
    for arm in arms:
        lo += arm.guard.lower.tolist()
        hi += arm.guard.upper.tolist()
    return lo, hi


def test_nan_and_missing_values_hold_the_measured_pose(case, robot):
    before = case.positions(robot)  # true joint positions, in action-key order
    sent = robot.send_action(dict.fromkeys(robot.action_features, math.nan))
    joint_keys = [k for k in robot.action_features if "gripper" not in k]
    assert [sent[k] for k in joint_keys] == pytest.approx(before.tolist(), abs=1e-3)
    sent = robot.send_action({})
    assert [sent[k] for k in joint_keys] == pytest.approx(before.tolist(), abs=1e-3)


def test_watchdog_holds_the_measured_pose_when_actions_stop(case, robot):
    action = hold_action(robot)
    far = {k: v + 0.1 if "gripper" not in k else v for k, v in action.items()}
    robot.send_action(far)
    arms = [arm for _, arm in case.members(robot)]
    streamer = getattr(robot, "streamer", None)
    if streamer is not None:  # xArm servo mode: the streamer is the watchdog
        assert wait_until(lambda: streamer.holding, timeout=2.0)
    else:
        assert wait_until(lambda: all(arm.holds >= 1 for arm in arms), timeout=2.0)
    q = case.positions(robot)
    wait_until(lambda: False, timeout=0.2)
    assert case.positions(robot) == pytest.approx(q, abs=5e-3)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("collision", r"collision|C31|reflex"),
        ("freeze_feedback", "feedback has not updated"),
        ("disconnected", r"lost|not updated"),
    ],
)
def test_a_fault_stops_the_arm_and_stays_latched_after_the_cause_is_gone(case, robot, fault, message):
    """Collision reported by the controller, frozen feedback, pulled cable: the driver raises, nothing more reaches
    the controller (no hold, no streamed point), and it keeps raising once the fault switch is cleared."""
    robot.send_action(hold_action(robot))
    setattr(case.faults(robot)[0], fault, True)
    error = send_until_raises(robot)
    assert error is not None and re.search(message, str(error)), error
    wait_until(
        lambda: False, timeout=0.1
    )  # the vendor stop sent by the trip (PiPer: hold the fresh pose) lands
    n = case.counts(robot).commands
    wait_until(
        lambda: False, timeout=0.6
    )  # three command timeouts: a watchdog or streamer would have sent by now
    assert case.counts(robot).commands == n
    for f in case.faults(robot):
        setattr(f, fault, False)
    with pytest.raises(RobotSafetyError, match="stopped after a fault"):
        robot.send_action({})
    with pytest.raises(RobotSafetyError, match="stopped after a fault"):
        robot.get_observation()
    assert case.counts(robot).commands == n


def test_a_fault_trips_every_member(case, robot):
    """Whatever arm faults first, no member keeps moving (one member for single arms, both for bi_piper)."""
    for f in case.faults(robot)[-1:]:
        f.collision = True
    assert wait_until(lambda: all(arm.fault is not None for _, arm in case.members(robot)), timeout=3.0)


def test_disconnect_when_not_connected_raises(case, robot):
    robot.disconnect()
    with pytest.raises(DeviceNotConnectedError):
        robot.disconnect()


def test_every_driver_is_a_guarded_arm(case, robot):
    assert all(isinstance(arm, GuardedArm) for _, arm in case.members(robot))
    assert np.all(np.isfinite(case.positions(robot)))


def test_the_fault_is_visible_only_once_the_vendor_stop_has_run(case, robot):
    """`fault` (what callers and tests wait on) appears after the vendor stop has returned; `tripped` (what the
    drivers decide on) from the moment the fault is latched. On a bimanual robot the robot's fault appears once
    every member has been stopped."""
    arm = case.members(robot)[0][1]
    entered, release = threading.Event(), threading.Event()
    vendor_stop = arm._stop

    def slow_stop(hold):
        entered.set()
        release.wait(5.0)
        vendor_stop(hold)

    arm._stop = slow_stop
    tripping = threading.Thread(target=arm.trip, args=(RobotSafetyError("test: injected fault"),))
    tripping.start()
    try:
        assert entered.wait(5.0)
        assert arm.tripped and arm.fault is None and robot.fault is None
    finally:
        release.set()
        tripping.join(5.0)
    assert arm.fault is not None and "injected fault" in str(arm.fault)
    assert robot.fault is not None
    if robot is not arm:
        assert all(member.fault is not None for _, member in case.members(robot))
