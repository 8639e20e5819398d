"""``SimFrankyRobot`` / ``SimFrankyGripper``: in-process stand-ins for ``franky.Robot`` / ``franky.Gripper``.

Same method signatures *and default values* as the installed franky (``controller_mode`` defaults to
``franky.ControllerMode.JointImpedance``, ``realtime_config`` to ``franky.RealtimeConfig.Enforce``), and franky's own
types wherever franky lets them be built: ``state.time`` is a ``franky.Duration`` (which compares by identity:
``Duration(5) == Duration(5)`` is False), ``current_joint_state`` a ``franky.JointState``,
``relative_dynamics_factor`` a ``franky.RelativeDynamicsFactor``. ``RobotState``, ``GripperState`` and ``BoolFuture``
have no public constructor; their stand-ins carry franky's types in every field a driver reads (``RobotState.q``
float64 (7,), ``.time`` Duration; ``GripperState.width`` float, ``.time`` Duration). ``tests/test_franka.py`` checks
all of this against franky's pybind11 signatures with :mod:`lerobot_vla_plugins.robots.sdk_contract`.

Conventions: ``move(JointMotion, asynchronous=True)`` returns at once and a new motion preempts the running one
(the target is read from ``motion.target``); errors surface as franky's exceptions (``ControlException`` for a
reflex, ``NetworkException`` for a lost link) and ``has_errors``; gripper widths in metres, ``move_async`` returns
immediately.

Joint motion: :class:`SimJointDynamics` with the model's limits and a speed of ``2.0 x relative_dynamics_factor``
rad/s (Ruckig's jerk-limited profile is not modelled); each motion target is checked against ``step_cap`` from the
true simulated position (``sim_configure``: the driver's ``max_relative_target``). Faults (:class:`SimFaults`):
``collision`` -> reflex (has_errors, motion aborted); ``freeze_feedback`` -> the robot state (time and joints) stops
changing; ``disconnected`` -> every call raises ``NetworkException``; ``enable_fails`` -> construction fails with
``NetworkException`` (FCI never grants control).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import franky
import numpy as np

from lerobot_vla_plugins.robots.sim import SimFaults, SimJointDynamics

from .config_franka import FRANKA_HAND_MAX_WIDTH_M, FRANKA_JOINT_LIMITS

SIM_Q0 = (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8)


def _duration(seconds: float) -> franky.Duration:
    return franky.Duration(int(seconds * 1000))


class SimRobotState:
    """Stand-in for ``franky.RobotState`` (no public constructor): ``time`` (Duration since start), ``q``, ``dq``."""

    def __init__(self, t: float, q: np.ndarray) -> None:
        self.time = _duration(t)
        self.q = np.asarray(q, dtype=np.float64)
        self.dq = np.zeros(7)


class SimGripperState:
    """Stand-in for ``franky.GripperState``: ``width``, ``max_width`` (m), ``is_grasped``, ``time`` (Duration)."""

    def __init__(self, t: float, width: float) -> None:
        self.time = _duration(t)
        self.width = float(width)
        self.max_width = FRANKA_HAND_MAX_WIDTH_M
        self.is_grasped = False


class SimBoolFuture:
    """Stand-in for ``franky.BoolFuture`` (no public constructor): ``wait(timeout)``, ``get()``."""

    def __init__(self, value: bool) -> None:
        self._value = value

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def get(self) -> bool:
        return self._value


class SimFrankyRobot:
    """Simulated ``franky.Robot`` (module docstring); ``faults``/``dyn`` are the test handles."""

    start_faults: SimFaults | None = None  # faults applied at construction (tests)

    def __init__(
        self,
        fci_hostname: str,
        relative_dynamics_factor: float | franky.RelativeDynamicsFactor = 1.0,
        default_torque_threshold: float = 20.0,
        default_force_threshold: float = 30.0,
        controller_mode: franky.ControllerMode = franky.ControllerMode.JointImpedance,
        realtime_config: franky.RealtimeConfig = franky.RealtimeConfig.Enforce,
        kalman_q_process_var: float = 0.0001,
        kalman_dq_process_var: float = 0.001,
        kalman_ddq_process_var: float = 0.1,
        kalman_control_process_var: float = 1.0,
        kalman_q_obs_var: float = 0.01,
        kalman_dq_obs_var: float = 0.1,
        kalman_q_d_obs_var: float = 0.0001,
        kalman_dq_d_obs_var: float = 0.0001,
        kalman_ddq_d_obs_var: float = 0.0001,
        kalman_control_adaptation_rate: float = 0.1,
    ) -> None:
        self.faults = SimFaults(**vars(self.start_faults)) if self.start_faults else SimFaults()
        if self.faults.enable_fails or self.faults.disconnected:
            raise franky.NetworkException(f"libfranka: Connection to FCI at {fci_hostname} failed")
        self._rdf = float(relative_dynamics_factor)
        self.sim_configure("fr3", None)
        self.collision_thresholds = (default_torque_threshold, default_force_threshold)
        self._errors = False
        self._t0 = time.monotonic()
        self._frozen: SimRobotState | None = None
        self.motions = 0

    def sim_configure(self, model: str, step_cap: Sequence[float] | None) -> None:
        """Simulation set-up (not a franky member): the arm model's limits and the per-motion step bound."""
        lower, upper = FRANKA_JOINT_LIMITS[model]
        self.dyn = SimJointDynamics(SIM_Q0, lower, upper, [2.0 * self._rdf] * 7, step_cap=step_cap)

    def _link(self) -> None:
        if self.faults.disconnected:
            raise franky.NetworkException("libfranka: UDP receive: Timeout")
        if self.faults.collision and not self._errors:
            self._errors = True
            self.dyn.hold()

    @property
    def relative_dynamics_factor(self) -> franky.RelativeDynamicsFactor:
        return franky.RelativeDynamicsFactor(self._rdf)

    @relative_dynamics_factor.setter
    def relative_dynamics_factor(self, value: float | franky.RelativeDynamicsFactor) -> None:
        self._rdf = float(getattr(value, "velocity", value))
        self.dyn.v = np.full(7, 2.0 * self._rdf)

    @property
    def has_errors(self) -> bool:
        self._link()
        return self._errors

    @property
    def is_in_control(self) -> bool:
        return not self._errors

    @property
    def state(self) -> SimRobotState:
        self._link()
        if self.faults.freeze_feedback:
            if self._frozen is None:
                self._frozen = SimRobotState(time.monotonic() - self._t0, self.dyn.read())
            return SimRobotState(
                self._frozen.time.to_sec(), self._frozen.q
            )  # a new object per call, as franky
        self._frozen = None
        return SimRobotState(time.monotonic() - self._t0, self.dyn.read())

    @property
    def current_joint_state(self) -> franky.JointState:
        return franky.JointState(self.state.q)

    def set_collision_behavior(
        self, torque_thresholds: float | Sequence[float], force_thresholds: float | Sequence[float]
    ) -> None:
        self._link()
        self.collision_thresholds = (torque_thresholds, force_thresholds)

    def move(
        self,
        motion: franky.JointMotion,
        asynchronous: bool = False,
        limit_rate: bool = False,
        cutoff_frequency: float = 100.0,
    ) -> None:
        self._link()
        if self._errors:
            raise franky.ControlException("libfranka: Move command rejected: robot is in reflex mode")
        q = np.asarray(motion.target.position, dtype=float)
        self.motions += 1
        self.dyn.command(q, "JointMotion")

    def poll_motion(self) -> bool:
        self._link()
        if self._errors:
            raise franky.ControlException('libfranka: Motion aborted by reflex! ["cartesian_reflex"]')
        return bool(np.any(np.abs(self.dyn.target - self.dyn.read()) > 1e-4))

    def join_motion(self, timeout: float | None = None) -> bool:
        self._link()
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll_motion():
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        self._link()
        self.dyn.hold()
        self.dyn.release()

    def recover_from_errors(self) -> bool:
        self._link()
        if self.faults.collision:
            return False
        self._errors = False
        self.dyn.release()
        return True


class SimFrankyGripper:
    """Simulated ``franky.Gripper``: fingers move at the commanded speed, width in metres."""

    def __init__(self, fci_hostname: str) -> None:
        self.dyn = SimJointDynamics([FRANKA_HAND_MAX_WIDTH_M], [0.0], [FRANKA_HAND_MAX_WIDTH_M], [0.1])
        self.commands = 0
        self.frozen = False  # test handle: the gripper state stops updating
        self._t0 = time.monotonic()
        self._frozen_state: SimGripperState | None = None

    @property
    def state(self) -> SimGripperState:
        if self.frozen:
            if self._frozen_state is None:
                self._frozen_state = SimGripperState(time.monotonic() - self._t0, self.dyn.read()[0])
            return SimGripperState(self._frozen_state.time.to_sec(), self._frozen_state.width)
        self._frozen_state = None
        return SimGripperState(time.monotonic() - self._t0, self.dyn.read()[0])

    @property
    def width(self) -> float:
        return float(self.dyn.read()[0])

    @property
    def max_width(self) -> float:
        return FRANKA_HAND_MAX_WIDTH_M

    @property
    def is_grasped(self) -> bool:
        return False

    def move_async(self, width: float, speed: float) -> SimBoolFuture:
        self.commands += 1
        self.dyn.v = np.array([float(speed)])
        return SimBoolFuture(self.dyn.command([float(width)], "Gripper.move_async"))

    def homing(self) -> bool:
        self.dyn.command([FRANKA_HAND_MAX_WIDTH_M], "Gripper.homing")
        return True

    def stop(self) -> bool:
        self.dyn.hold()
        self.dyn.release()
        return True
