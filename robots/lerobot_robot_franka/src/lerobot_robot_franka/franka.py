"""Franka FR3 / Panda driver (LeRobot ``Robot``) on franky.

The safety state machine (guard, feedback freshness, fault latch, watchdog) is
:class:`~lerobot_vla_plugins.robots.guarded.GuardedArm`'s; this module is the franky part:

* ``_open``: ``franky.Robot(ip, realtime_config=...)``, global ``relative_dynamics_factor``, collision thresholds,
  refuse to start while the robot reports errors (``has_errors``; recover with the pilot / Desk first), optional
  gripper homing (off by default: it moves the fingers). Nothing moves.
* ``_read_state``: ``has_errors`` and ``poll_motion()`` (a reflex surfaces as ``ControlException``), then one
  ``robot.state``: joints from ``state.q``, the stamp from ``state.time.to_msec()``. ``RobotState.time`` is a
  ``franky.Duration``, which compares by identity and is a new object per call, so it is always turned into a
  number; the gripper's stamp likewise comes from ``GripperState.time``.
* Targets: ``robot.move(JointMotion(target), asynchronous=True)``: franky preempts the running motion and replans
  with Ruckig (jerk-limited), so 30 Hz targets need no host interpolator. Gripper: ``move_async`` only when the target
  moves beyond the deadband.
* Stop after a fault: ``robot.stop()`` if the link is up (franky aborts the motion; the arm holds in idle, brakes
  untouched); the fault is latched.
* ``_close``: after a clean run, ``stop()`` and join the motion; the arm keeps holding.
"""

from __future__ import annotations

import logging

import numpy as np

from lerobot_vla_plugins.robots.guarded import ArmState, GuardedArm
from lerobot_vla_plugins.robots.safety import Deadband, JointLimits, RobotSafetyError, per_key

from .config_franka import FRANKA_HAND_MAX_WIDTH_M, FRANKA_JOINT_LIMITS, FrankaConfig

logger = logging.getLogger(__name__)
JOINTS = tuple(f"joint_{i}" for i in range(1, 8))


class Franka(GuardedArm):
    config_class = FrankaConfig
    name = "franka"

    def __init__(self, config: FrankaConfig):
        super().__init__(config)
        self.robot = None
        self.gripper = None
        self._gripper_deadband = Deadband(config.gripper_deadband)

    def _motor_keys(self) -> list[str]:
        return [f"{j}.pos" for j in JOINTS] + (["gripper.pos"] if self.config.use_gripper else [])

    def _joint_limits(self) -> JointLimits:
        lower, upper = FRANKA_JOINT_LIMITS[self.config.model]
        lo, hi = list(lower), list(upper)
        if self.config.use_gripper:
            lo, hi = [*lo, 0.0], [*hi, 1.0]
        return JointLimits(tuple(self._motor_keys()), tuple(lo), tuple(hi), (1.0,) * len(lo))

    def _make(self):
        import franky

        cfg = self.config
        rt = franky.RealtimeConfig.Enforce if cfg.realtime == "enforce" else franky.RealtimeConfig.Ignore
        if cfg.backend == "sim":
            from .sim_franky import SimFrankyGripper, SimFrankyRobot

            robot_cls, gripper_cls = SimFrankyRobot, SimFrankyGripper
        else:
            robot_cls, gripper_cls = franky.Robot, franky.Gripper
        try:
            robot = robot_cls(cfg.ip, realtime_config=rt)
            gripper = gripper_cls(cfg.ip) if cfg.use_gripper else None
        except franky.Exception as e:
            raise ConnectionError(
                f"franka: cannot connect to the FCI at {cfg.ip} ({e}); unlock the joints and activate FCI in "
                "Desk, check the cable, or use --robot.backend=sim for a dry run"
            ) from e
        if cfg.backend == "sim":  # the simulated arm checks what the guard promises per motion
            cap = per_key(cfg.max_relative_target, self._motor_keys(), "franka.max_relative_target")[:7]
            robot.sim_configure(cfg.model, None if np.all(np.isinf(cap)) else cap)
        return robot, gripper

    def _open(self) -> None:
        cfg = self.config
        self.robot, self.gripper = self._make()
        if self.robot.has_errors:
            raise RobotSafetyError(
                "franka: the robot reports errors (reflex); not starting. Recover it with the pilot / Desk "
                "(or robot.recover_from_errors()) and connect again"
            )
        self.robot.relative_dynamics_factor = cfg.relative_dynamics_factor
        self.robot.set_collision_behavior(cfg.torque_threshold, cfg.force_threshold)
        if cfg.home_gripper_on_connect and self.gripper is not None:
            self.gripper.homing()
        self._gripper_deadband.reset()

    def _read_state(self) -> ArmState:
        import franky

        try:
            if self.robot.has_errors:
                raise RobotSafetyError(
                    "franka: the robot is in reflex/error mode (collision or limit violation); stopped. Inspect it, "
                    "then recover (robot.recover_from_errors() or the pilot) and reconnect"
                )
            self.robot.poll_motion()
            st = self.robot.state
        except franky.ControlException as e:
            raise RobotSafetyError(f"franka: motion aborted (reflex): {e}") from e
        except franky.NetworkException as e:
            raise RobotSafetyError(f"franka: connection to the robot lost: {e}") from e
        positions = np.asarray(st.q, dtype=float)
        stamps = {"joints": st.time.to_msec()}
        if self.gripper is not None:
            gs = self.gripper.state
            positions = np.array([*positions, float(np.clip(gs.width / FRANKA_HAND_MAX_WIDTH_M, 0.0, 1.0))])
            stamps["gripper"] = gs.time.to_msec()
        return ArmState(positions, stamps)

    def _send_target(self, q: np.ndarray) -> None:
        self._move(q)
        if self.gripper is not None:
            g = float(q[7])
            if self._gripper_deadband(g):
                self.gripper.move_async(g * FRANKA_HAND_MAX_WIDTH_M, self.config.gripper_speed)

    def _move(self, q: np.ndarray) -> None:
        import franky

        self.robot.move(
            franky.JointMotion(franky.JointState(np.asarray(q[:7], dtype=float))), asynchronous=True
        )

    def _hold(self, q: np.ndarray) -> None:
        self._move(q)

    def _stop(self, hold: np.ndarray | None) -> None:
        if self.robot is not None:
            self.robot.stop()  # raises if the link is down: then the robot stops by itself (communication reflex)

    def _close(self) -> None:
        if self.robot is not None and not self.tripped:
            try:
                self.robot.stop()
                self.robot.join_motion(timeout=2.0)
            except Exception as e:
                logger.warning("franka: stop on disconnect failed: %s", e)
        self.robot = self.gripper = None
