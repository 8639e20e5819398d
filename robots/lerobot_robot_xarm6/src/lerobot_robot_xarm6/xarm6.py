"""xArm6 driver (LeRobot ``Robot``) on ``xarm-python-sdk``'s ``XArmAPI`` or its simulated twin.

The safety state machine (guard, feedback freshness, fault latch, watchdog) is
:class:`~lerobot_vla_plugins.robots.guarded.GuardedArm`'s; this module is the xArm part:

* ``_open``: ``XArmAPI(ip, is_radian=True)``; clear a pending warning (its return code checked), refuse to start on
  an uncleared controller error; collision sensitivity 1..5 (never 0) and self-collision detection; enable; mode 1
  (servo) or 6 (online planning); wait for the ready state; enable the gripper. Nothing moves.
* Limits: the SDK's own table for *this* arm, ``XCONF.Robot.JOINT_LIMITS[axis][variant]`` with the SDK's variant
  rule (serial >= 1305: J2 max 2.0246, J3 min -3.8223 instead of 2.0944 / -3.9270); targets outside it would be
  refused by the SDK with code -8.
* ``_read_state``: ``error_code`` (any controller error trips: C31 collision, C22 self-collision, C23/C24/C60
  limits), ``get_servo_angle(is_real=True)``; the gripper is read at most every ``gripper_poll_s``. Channel stamps are
  the host times of the last successful reads, so a timing-out position query (code 3) or a gripper that stops
  answering goes stale after ``feedback_timeout_s``.
* Targets: servo mode -> a :class:`~lerobot_vla_plugins.robots.streaming.JointStreamer` that sends
  ``set_servo_angle_j`` at ``stream_rate_hz`` with a per-joint speed cap (it also holds on stale commands and polls
  the feedback, so the base monitor is off); online planning -> ``set_servo_angle(wait=False)`` once per action.
  Gripper commands only when the target moves beyond a deadband.
* Stop after a fault (both modes): the streamer stops sending and ``set_state(4)`` halts the controller, motors
  powered (the xArm holds its pose). The fault is latched; on disconnect the arm is left in state 4.
* ``_close`` after a clean run: back to position mode, the arm stays enabled.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from lerobot_vla_plugins.robots.guarded import ArmState, GuardedArm
from lerobot_vla_plugins.robots.safety import Deadband, JointLimits, RobotSafetyError, per_key
from lerobot_vla_plugins.robots.streaming import JointStreamer

from .config_xarm6 import XArm6Config
from .sim_xarm import GRIPPER_MAX_PULSES, xarm6_joint_limits, xarm_limit_variant

logger = logging.getLogger(__name__)

JOINTS = tuple(f"joint_{i}" for i in range(1, 7))
MODE_SERVO, MODE_ONLINE = 1, 6
READY_STATES = (1, 2)  # 1 moving, 2 sleeping/ready
STATE_STOP = 4


class XArm6(GuardedArm):
    """UFACTORY xArm6 (+ xArm Gripper) as a LeRobot robot; see the module docstring."""

    config_class = XArm6Config
    name = "xarm6"

    def __init__(self, config: XArm6Config):
        super().__init__(config)
        self.arm = None
        self.streamer: JointStreamer | None = None
        self.use_monitor = config.control_mode != "servo"
        self.reuse_reading_s = 2.0 / config.stream_rate_hz if config.control_mode == "servo" else 0.0
        self._gripper = 1.0
        self._gripper_stamp: float | None = None
        self._gripper_deadband = Deadband(config.gripper_deadband)
        self._joint_stamp: float | None = None
        self._q_cache = np.zeros(6)

    def _motor_keys(self) -> list[str]:
        return [f"{j}.pos" for j in JOINTS] + (["gripper.pos"] if self.config.use_gripper else [])

    # --- SDK ----------------------------------------------------------------------------------------------------
    def _make_arm(self):
        cfg = self.config
        if cfg.backend == "sim":
            from .sim_xarm import SimXArmAPI

            cap = per_key(cfg.max_relative_target, self._motor_keys(), "xarm6.max_relative_target")[:6]
            return SimXArmAPI(
                cfg.ip,
                is_radian=True,
                sim_servo_step=cfg.max_joint_speed
                / cfg.stream_rate_hz,  # what the streamer promises per point
                sim_step_cap=None
                if np.all(np.isinf(cap))
                else cap.tolist(),  # what the guard promises per action
            )
        from xarm.wrapper import XArmAPI

        try:
            return XArmAPI(cfg.ip, is_radian=True)
        except Exception as e:  # the SDK raises a bare Exception('connect socket failed')
            raise ConnectionError(
                f"xarm6: cannot reach the controller at {cfg.ip} ({e}); check the cable and --robot.ip, "
                "or use --robot.backend=sim for a dry run"
            ) from e

    def _ok(self, code, call: str) -> None:
        if code != 0:
            raise RobotSafetyError(
                f"xarm6: {call} returned code {code} (controller error C{getattr(self.arm, 'error_code', '?')}, "
                f"warning {getattr(self.arm, 'warn_code', '?')}); xArm API codes: -1 not connected, 1 uncleared "
                "error, 2 uncleared warning, 9 state not ready, -8 out of range"
            )

    def _open(self) -> None:
        cfg = self.config
        self.arm = arm = self._make_arm()
        if not arm.connected:
            raise ConnectionError(f"xarm6: controller at {cfg.ip} did not accept the connection")
        if arm.warn_code:
            self._ok(arm.clean_warn(), "clean_warn")
        if arm.error_code:
            raise RobotSafetyError(
                f"xarm6: controller reports error C{arm.error_code}; not starting. Inspect the arm, clear the "
                "error in UFACTORY Studio (or arm.clean_error()) and connect again"
            )
        if arm.axis != 6:
            raise ConnectionError(
                f"xarm6: the controller at {cfg.ip} reports a {arm.axis}-axis arm, not an xArm6"
            )
        self._ok(arm.set_collision_sensitivity(cfg.collision_sensitivity), "set_collision_sensitivity")
        self._ok(arm.set_self_collision_detection(True), "set_self_collision_detection")
        self._ok(arm.motion_enable(enable=True), "motion_enable")
        self._ok(arm.set_mode(MODE_SERVO if cfg.control_mode == "servo" else MODE_ONLINE), "set_mode")
        self._ok(arm.set_state(0), "set_state(0)")
        deadline = time.monotonic() + cfg.enable_timeout_s
        while arm.state not in READY_STATES:
            if time.monotonic() > deadline:
                raise RobotSafetyError(
                    f"xarm6: the controller did not become ready within {cfg.enable_timeout_s} s "
                    f"(state {arm.state}, error C{arm.error_code}); check the e-stop and the motor power"
                )
            time.sleep(0.02)
        if cfg.use_gripper:
            self._ok(arm.set_gripper_mode(0), "set_gripper_mode")
            self._ok(arm.set_gripper_enable(True), "set_gripper_enable")
            self._ok(arm.set_gripper_speed(cfg.gripper_speed), "set_gripper_speed")
        self._gripper_stamp = self._joint_stamp = None
        self._gripper_deadband.reset()

    def _joint_limits(self) -> JointLimits:
        arm = self.arm
        sn = arm.sn
        if not sn:
            code, sn = arm.get_robot_sn()
            self._ok(code, "get_robot_sn")
        try:
            lower, upper = xarm6_joint_limits(arm.device_type, sn)
        except KeyError:
            raise ConnectionError(
                f"xarm6: the SDK has no joint-limit table for this arm (axis {arm.axis}, device type "
                f"{arm.device_type}, variant {xarm_limit_variant(arm.axis, arm.device_type, sn)}, sn {sn}); update "
                "xarm-python-sdk"
            ) from None
        names = self._motor_keys()
        vel = [self.config.max_joint_speed] * 6
        if self.config.use_gripper:
            lower, upper, vel = [*lower, 0.0], [*upper, 1.0], [*vel, 1.0]
        return JointLimits(tuple(names), tuple(lower), tuple(upper), tuple(vel))

    def _read_gripper(self, now: float) -> None:
        if self._gripper_stamp is not None and now - self._gripper_stamp < self.config.gripper_poll_s:
            return
        code, pulses = self.arm.get_gripper_position()
        if code == 0 and pulses is not None:
            self._gripper = float(np.clip(pulses / GRIPPER_MAX_PULSES, 0.0, 1.0))
            self._gripper_stamp = now
        elif code == -1:
            raise RobotSafetyError("xarm6: connection to the controller lost (code -1)")

    def _read_state(self) -> ArmState:
        arm = self.arm
        if not arm.connected:
            raise RobotSafetyError("xarm6: connection to the controller lost")
        if arm.error_code != 0:
            raise RobotSafetyError(
                f"xarm6: controller error C{arm.error_code} (e.g. 31 collision, 22 self-collision, 23 joint limit, "
                "24/60 speed limit); the arm is stopped. Inspect the arm, then clear the error and reconnect"
            )
        code, angles = arm.get_servo_angle(is_radian=True, is_real=True)
        now = time.monotonic()
        if code == 0 and isinstance(angles, list) and len(angles) >= 6:
            self._q_cache = np.asarray(angles[:6], dtype=float)
            self._joint_stamp = now
        elif code == -1:
            raise RobotSafetyError("xarm6: connection to the controller lost (code -1)")
        stamps = {"joints": self._joint_stamp}
        positions = self._q_cache
        if self.config.use_gripper:
            self._read_gripper(now)
            stamps["gripper"] = self._gripper_stamp
            positions = np.array([*positions, self._gripper])
        return ArmState(positions.copy(), stamps)

    # --- commands -----------------------------------------------------------------------------------------------
    def _start_motion(self, q0: np.ndarray) -> None:
        cfg = self.config
        if cfg.control_mode != "servo":
            return
        self.streamer = JointStreamer(
            send=lambda q: self._io(self._servo_j, q),
            read=lambda: self._locked_poll()[:6],
            rate_hz=cfg.stream_rate_hz,
            policy_fps=cfg.policy_fps,
            max_velocity=np.full(6, cfg.max_joint_speed),
            command_timeout_s=cfg.command_timeout_s,
            on_fault=self.trip,
            name="xarm6-servo",
        )
        self.streamer.start(q0[:6])  # streams the measured pose: no motion

    def _locked_poll(self) -> np.ndarray:
        with self._lock:
            return self._poll()

    def _servo_j(self, q: np.ndarray) -> None:
        code = self.arm.set_servo_angle_j(q.tolist(), is_radian=True)
        if code != 0:
            raise RobotSafetyError(
                f"xarm6: set_servo_angle_j returned {code} (controller error C{self.arm.error_code})"
            )

    def _online(self, q: np.ndarray) -> None:
        code = self.arm.set_servo_angle(
            angle=q[:6].tolist(),
            speed=self.config.max_joint_speed,
            mvacc=self.config.max_joint_acc,
            is_radian=True,
            wait=False,
        )
        if code != 0:
            raise RobotSafetyError(
                f"xarm6: set_servo_angle returned {code} (controller error C{self.arm.error_code})"
            )

    def _send_joints(self, q: np.ndarray) -> None:
        if self.streamer is not None:
            self.streamer.set_target(q[:6])
        else:
            self._online(q)

    def _send_target(self, q: np.ndarray) -> None:
        self._send_joints(q)
        if self.config.use_gripper:
            g = float(q[6])
            if self._gripper_deadband(g):
                self._ok(
                    self.arm.set_gripper_position(round(g * GRIPPER_MAX_PULSES), wait=False),
                    "set_gripper_position",
                )

    def _hold(self, q: np.ndarray) -> None:
        self._send_joints(q)

    def _stop(self, hold: np.ndarray | None) -> None:
        if self.streamer is not None:
            self.streamer.request_stop()
        if self.arm is not None and self.arm.connected:
            self._ok(
                self.arm.set_state(STATE_STOP), "set_state(4)"
            )  # halt; motors stay powered, the arm holds

    def _close(self) -> None:
        if self.streamer is not None:
            self.streamer.stop()
            self.streamer = None
        if self.arm is None:
            return
        try:
            if self.arm.connected and not self.tripped:
                self.arm.set_mode(0)
                self.arm.set_state(0)
        finally:
            self.arm.disconnect()
