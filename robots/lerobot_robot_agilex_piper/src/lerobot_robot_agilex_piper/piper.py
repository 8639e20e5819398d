"""PiPer follower driver (LeRobot ``Robot``) on ``piper_sdk``'s ``C_PiperInterface_V2``.

The safety state machine (guard, feedback freshness, fault latch, watchdog) is
:class:`~lerobot_vla_plugins.robots.guarded.GuardedArm`'s; this module is the PiPer part:

* ``_open``: SocketCAN (``sdk``) or python-can's virtual bus with :class:`~.sim_piper.SimPiperFirmware` (``sim``);
  wait for joint feedback; retry ``EnablePiper()`` up to ``enable_timeout_s`` (it returns the *previous* enable
  state, so it must be polled); select CAN control / MOVE J / ``speed_rate`` % (``MotionCtrl_2``) and wait until the
  arm *reports* CAN control mode; set the collision protection level of every joint (``CrashProtectionConfig``;
  level 0 = detection off is refused by the config) and read it back (``ArmParamEnquiryAndConfig(0x02)`` ->
  ``GetCrashProtectionLevelFeedback``); nothing moves.
* ``_start_motion``: command the measured pose and enable the gripper at its measured width.
* ``_read_state``: ``arm_status`` must be 0 (7 = collision, 1 = e-stop, 4 = target over limit, ...) and the control
  mode must still be CAN control (a press of the teach button switches the arm to teaching mode, where it ignores
  commands); joint and gripper feedback carry the CAN frames' own time stamps.
* Targets: ``MotionCtrl_2`` + ``JointCtrl`` in 0.001 deg (as the SDK demos do every cycle), ``GripperCtrl`` in
  0.001 mm only when the gripper target moves beyond a deadband.
* Stop after a fault: if the feedback is still fresh, command the measured pose once (the firmware holds it, motors
  enabled); with stale feedback, send nothing (the measured pose is old: commanding it could move the arm). The
  PiPer has no brakes, so the driver never disables the motors after a fault and never sends ``EmergencyStop``
  (its reset drops the arm).
* ``_close``: disable only if ``disable_on_disconnect`` (a warning: the arm falls); close the port.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from lerobot_vla_plugins.robots.guarded import ArmState, GuardedArm
from lerobot_vla_plugins.robots.safety import Deadband, JointLimits, RobotSafetyError, per_key

from .config_piper import GRIPPER_STROKES_M, PiperArmConfig, PiperConfig
from .sim_piper import MDEG_PER_RAD, PIPER_JOINT_LOWER, PIPER_JOINT_UPPER, PIPER_MAX_JOINT_SPEED

if TYPE_CHECKING:
    from piper_sdk import C_PiperInterface_V2

    from .sim_piper import SimPiperFirmware

logger = logging.getLogger(__name__)

JOINTS = tuple(f"joint_{i}" for i in range(1, 7))
CAN_CTRL = 0x01
ARM_STATUS = {
    1: "emergency stop",
    2: "no IK solution",
    3: "singularity",
    4: "target over limit",
    5: "joint communication error",
    6: "brake not released",
    7: "collision",
    8: "overspeed during teach drag",
    9: "joint state error",
    10: "other error",
    11: "teach record",
    12: "teach execute",
    13: "teach pause",
    14: "NTC over temperature",
    15: "release resistor over temperature",
}
CTRL_MODES = {
    0: "standby",
    1: "CAN control",
    2: "teaching",
    3: "ethernet",
    4: "wifi",
    5: "remote",
    6: "linkage teaching",
    7: "offline trajectory",
}
_sim_channels = itertools.count()


def rad_to_mdeg(v: float) -> int:
    """rad -> the SDK's int 0.001 deg."""
    return round(v * MDEG_PER_RAD)


def mdeg_to_rad(v: int) -> float:
    return v / MDEG_PER_RAD


def _int(value) -> int:
    return int(getattr(value, "value", value))  # piper_sdk 0.6 reports enums (e.g. COLLISION_OCCURRED(0x7))


def open_piper_interface(
    can_name: str, backend: str, step_cap: list[float] | None = None
) -> tuple[C_PiperInterface_V2, SimPiperFirmware | None]:
    """The SDK interface on ``can_name`` (SocketCAN) or, for ``sim``, on a fresh virtual channel with a firmware whose
    step bound is ``step_cap`` (the driver's promise).

    Returns ``(interface, firmware_or_None)``.
    """
    from piper_sdk import C_PiperInterface_V2

    if backend == "sim":
        from .sim_piper import SimPiperFirmware

        channel = f"piper-sim-{can_name}-{next(_sim_channels)}"  # the SDK caches one interface per name
        fw = SimPiperFirmware(channel, step_cap=step_cap).start()
        iface = C_PiperInterface_V2(channel, judge_flag=False, can_auto_init=False)
        iface.CreateCanBus(channel, bustype="virtual", judge_flag=False)
        iface.ConnectPort()
        return iface, fw
    try:
        iface = C_PiperInterface_V2(can_name, judge_flag=True)
        iface.ConnectPort()
    except Exception as e:
        raise ConnectionError(
            f"piper: cannot open CAN interface {can_name!r} ({e}). Bring it up with "
            f"`sudo ip link set {can_name} type can bitrate 1000000 && sudo ip link set {can_name} up`, "
            "or use --robot.backend=sim for a dry run"
        ) from e
    return iface, None


class Piper(GuardedArm):
    """One AgileX PiPer follower arm; see the module docstring."""

    config_class = PiperConfig
    name = "piper"
    controller_latency_s = 0.01  # the arm's 200 Hz control loop: two cycles

    def __init__(self, config: PiperConfig | PiperArmConfig):
        super().__init__(config)
        self.arm = None
        self.firmware = None
        self._stroke_um = GRIPPER_STROKES_M[config.gripper_type] * 1e6
        self._gripper_deadband = Deadband(config.gripper_deadband)

    @property
    def label(self) -> str:
        return f"piper[{self.config.can_name}]"

    def _motor_keys(self) -> list[str]:
        return [*(f"{j}.pos" for j in JOINTS), "gripper.pos"]

    def _joint_limits(self) -> JointLimits:
        return JointLimits(
            tuple(self._motor_keys()),
            (*PIPER_JOINT_LOWER, 0.0),
            (*PIPER_JOINT_UPPER, 1.0),
            (PIPER_MAX_JOINT_SPEED * self.config.speed_rate / 100,) * 6 + (1.0,),
        )

    # --- connect ------------------------------------------------------------------------------------------------
    def _wait(self, what: str, timeout_s: float, done) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise RobotSafetyError(f"{self.label}: {what} (waited {timeout_s} s)")
            time.sleep(0.01)

    def _open(self) -> None:
        cfg = self.config
        cap = per_key(cfg.max_relative_target, self._motor_keys(), f"{self.label}.max_relative_target")[:6]
        self.arm, self.firmware = open_piper_interface(
            cfg.can_name, cfg.backend, None if np.all(np.isinf(cap)) else cap.tolist()
        )
        arm = self.arm
        self._wait(
            "no joint feedback frames on the bus; is the arm powered and on this CAN interface?",
            max(cfg.feedback_timeout_s, 1.0),
            lambda: arm.GetArmJointMsgs().time_stamp > 0 and arm.GetArmGripperMsgs().time_stamp > 0,
        )
        self._wait(
            f"motors did not report enabled; check the e-stop and power (enable status {arm.GetArmEnableStatus()})",
            cfg.enable_timeout_s,
            arm.EnablePiper,
        )
        self._motion_ctrl()
        self._wait(
            "the arm did not enter CAN control mode (is the teach button active, or another controller on the bus?)",
            cfg.enable_timeout_s,
            lambda: _int(arm.GetArmStatus().arm_status.ctrl_mode) == CAN_CTRL,
        )
        levels = [cfg.collision_level] * 6
        arm.CrashProtectionConfig(*levels)

        def confirmed() -> bool:
            arm.ArmParamEnquiryAndConfig(0x02, 0x00, 0x00, 0x00, 0x03)
            fb = arm.GetCrashProtectionLevelFeedback()
            got = fb.crash_protection_level_feedback
            read = [getattr(got, f"joint_{i}_protection_level") for i in range(1, 7)]
            return fb.time_stamp > 0 and read == levels

        self._wait(
            f"the arm did not confirm collision protection level {cfg.collision_level} on every joint "
            "(CrashProtectionConfig / GetCrashProtectionLevelFeedback)",
            cfg.enable_timeout_s,
            confirmed,
        )
        self._gripper_deadband.reset()

    def _start_motion(self, q0: np.ndarray) -> None:
        self._command_joints(q0[:6])  # hold the measured pose: no motion in connect()
        self._gripper_deadband(float(q0[6]))
        self._command_gripper(float(q0[6]))

    # --- feedback -----------------------------------------------------------------------------------------------
    def _read_state(self) -> ArmState:
        arm = self.arm
        status = arm.GetArmStatus().arm_status
        code = _int(status.arm_status)
        if code != 0:
            raise RobotSafetyError(
                f"{self.label}: arm_status {code} ({ARM_STATUS.get(code, 'unknown')}); stopped. Inspect the arm, "
                "clear it (EmergencyStop(0x02) resets and DROPS the arm: support it first) and reconnect"
            )
        mode = _int(status.ctrl_mode)
        if mode != CAN_CTRL:
            raise RobotSafetyError(
                f"{self.label}: the arm left CAN control mode (now {CTRL_MODES.get(mode, mode)}, e.g. the teach "
                "button was pressed) and ignores commands; stopped. Leave teaching mode and reconnect"
            )
        msg = arm.GetArmJointMsgs()
        js = msg.joint_state
        grip = arm.GetArmGripperMsgs()
        positions = np.array(
            [
                *(
                    mdeg_to_rad(v)
                    for v in (js.joint_1, js.joint_2, js.joint_3, js.joint_4, js.joint_5, js.joint_6)
                ),
                float(np.clip(grip.gripper_state.grippers_angle / self._stroke_um, 0.0, 1.0)),
            ]
        )
        # CAN frame stamps are host wall-clock receive times (SocketCAN; python-can's virtual bus: send times)
        sampled_at = time.monotonic() - max(0.0, time.time() - msg.time_stamp) if msg.time_stamp else None
        return ArmState(
            positions, {"joints": msg.time_stamp or None, "gripper": grip.time_stamp or None}, sampled_at
        )

    # --- commands -----------------------------------------------------------------------------------------------
    def _motion_ctrl(self) -> None:
        self.arm.MotionCtrl_2(
            0x01, 0x01, self.config.speed_rate, 0x00
        )  # CAN control, MOVE J, position-velocity

    def _command_joints(self, q: np.ndarray) -> None:
        self._motion_ctrl()
        self.arm.JointCtrl(*(rad_to_mdeg(v) for v in q[:6]))

    def _command_gripper(self, g: float) -> None:
        self.arm.GripperCtrl(round(g * self._stroke_um), self.config.gripper_effort, 0x01, 0)

    def _send_target(self, q: np.ndarray) -> None:
        self._command_joints(q)
        if self._gripper_deadband(float(q[6])):
            self._command_gripper(float(q[6]))

    def _hold(self, q: np.ndarray) -> None:
        self._command_joints(q)

    def _stop(self, hold: np.ndarray | None) -> None:
        if hold is not None and self.arm is not None:
            self._command_joints(hold)

    def _close(self) -> None:
        if self.arm is not None:
            try:
                if self.config.disable_on_disconnect:
                    logger.warning(
                        "%s: disabling the motors: the arm has no brakes and will fall", self.label
                    )
                    self.arm.DisablePiper()
                self.arm.DisconnectPort()
            finally:
                self.arm = None
        if self.firmware is not None:
            self.firmware.stop()
