"""``SimXArmAPI``: an in-process xArm6 controller with ``xarm.wrapper.XArmAPI``'s interface (``backend="sim"``).

Same method signatures and defaults as the installed SDK and the same return conventions (checked member by member
by ``tests/test_xarm6.py`` with :mod:`lerobot_vla_plugins.robots.sdk_contract`): setters return an int code, getters
``(code, value)``; not connected -> ``-1`` and, for getters, the string ``'xArm is not connect'`` as value; 7 joint
values even on a 6-axis arm; angles in rad or degrees per ``is_radian``; gripper in pulses 0 (closed) .. 850 (open).
Mode changes take effect after ``set_state(0)``; motion commands are refused (code 9) unless the arm is enabled, in
the right mode and in a motion state; points outside the SDK's joint-limit table *of this arm's variant* return -8
(the SDK's own pre-check) and are counted.

Variant: the SDK picks the limit table ``XCONF.Robot.JOINT_LIMITS[axis][variant]`` with ``variant = <axis>1305`` for
arms whose serial number has digits 2..5 >= 1305 (and < 8500), else the reported ``device_type``
(:func:`xarm_limit_variant`, the rule of ``xarm/x3/xarm.py``). ``sim_sn`` / ``sim_device_type`` set them.

Joint motion: :class:`~lerobot_vla_plugins.robots.sim.SimJointDynamics` with that table and a per-joint speed of
``sim_joint_speed`` rad/s. Step bounds, measured from the true simulated position: servo mode, ``sim_servo_step``
per streamed point (servo mode runs every point at full speed, SDK issue #60); online planning, ``sim_step_cap``
per target (the driver's ``max_relative_target``).
Faults (:class:`~lerobot_vla_plugins.robots.sim.SimFaults`): ``collision`` -> error C31, state 4, arm stopped;
``freeze_feedback`` -> position queries time out (code 3) and repeat the last angles; ``enable_fails`` -> the arm
never leaves state 4; ``disconnected`` -> every call returns -1. Extra switches: ``gripper_read_fails`` (the tool
port's Modbus stops answering: ``(19, None)``), ``warn_code`` / ``clean_warn_fails`` (a warning that cannot be cleared).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from lerobot_vla_plugins.robots.sim import SimFaults, SimJointDynamics

GRIPPER_MAX_PULSES = 850.0
NOT_CONNECTED = (-1, "xArm is not connect")


def xarm_limit_variant(axis: int, device_type: int, sn: str | None) -> int:
    """The key of ``XCONF.Robot.JOINT_LIMITS[axis]`` the SDK uses for this arm (its ``_is_out_of_joint_range``)."""
    digits = sn[2:6] if sn else ""
    if digits.isdigit() and 1305 <= int(digits) < 8500:
        return int(f"{axis}1305")
    return device_type


def xarm6_joint_limits(device_type: int = 6, sn: str | None = None) -> tuple[list[float], list[float]]:
    """xArm6 joint limits (rad) of this arm from the installed SDK's table ``XCONF.Robot.JOINT_LIMITS[6]``.

    Raises:
        KeyError: the SDK has no table for this variant.
    """
    from xarm.core.config.x_config import XCONF

    table = XCONF.Robot.JOINT_LIMITS[6][xarm_limit_variant(6, device_type, sn)]
    return [lo for lo, _ in table], [hi for _, hi in table]


class SimXArmAPI:
    """Simulated ``XArmAPI`` (module docstring). Test handles: ``faults``, ``dyn``, ``gripper_dyn``,
    ``gripper_read_fails``, ``clean_warn_fails``.

    Simulation options (keyword arguments the real SDK ignores): ``sim_q0``, ``sim_joint_speed``, ``sim_servo_step``,
    ``sim_step_cap``, ``sim_sn``, ``sim_device_type``.
    """

    def __init__(
        self, port: str | None = None, is_radian: bool = False, do_not_open: bool = False, **kwargs: Any
    ) -> None:
        self.port = port
        self._default_is_radian = is_radian
        self._sn = kwargs.get("sim_sn", "XS1202SIM00001")
        self._device_type = int(kwargs.get("sim_device_type", 6))
        lower, upper = xarm6_joint_limits(self._device_type, self._sn)
        self.joint_lower, self.joint_upper = lower, upper
        self.faults = SimFaults()
        self.gripper_read_fails = False
        self.clean_warn_fails = False
        self.servo_step = kwargs.get("sim_servo_step", 0.05)
        self.step_cap = kwargs.get("sim_step_cap")
        q0 = kwargs.get("sim_q0", [0.0, -0.3, -0.5, 0.0, 0.8, 0.0])
        speed = kwargs.get("sim_joint_speed", 3.0)
        self.dyn = SimJointDynamics(q0, lower, upper, [speed] * 6, step_cap=[self.servo_step] * 6)
        self.gripper_dyn = SimJointDynamics([GRIPPER_MAX_PULSES], [0.0], [GRIPPER_MAX_PULSES], [900.0])
        self._lock = threading.Lock()
        self._connected = False
        self._enabled = False
        self._mode = 0
        self._pending_mode = 0
        self._state = 4
        self._error_code = 0
        self._warn_code = 0
        self._collision_sensitivity = 3
        self._self_collision = False
        self._gripper_enabled = False
        self._gripper_speed = 0
        self._last_angles = [*q0, 0.0]
        if not do_not_open:
            self.connect()

    # --- connection ---------------------------------------------------------------------------------------------
    def connect(
        self,
        port: str | None = None,
        baudrate: int | None = None,
        timeout: float | None = None,
        axis: int | None = None,
        **kwargs: object,
    ) -> None:
        if self.faults.disconnected:
            raise Exception("connect socket failed")  # what the SDK raises for an unreachable controller
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected and not self.faults.disconnected

    def _poll_faults(self) -> None:
        if self.faults.collision and self._error_code == 0:
            self._error_code = 31  # C31: collision (abnormal current)
            self._state = 4
            self.dyn.hold()

    # --- status -------------------------------------------------------------------------------------------------
    @property
    def error_code(self) -> int:
        self._poll_faults()
        return self._error_code

    @property
    def warn_code(self) -> int:
        return self._warn_code

    @warn_code.setter
    def warn_code(self, value: int) -> None:  # test handle: raise a controller warning
        self._warn_code = int(value)

    @property
    def has_error(self) -> bool:
        return self.error_code != 0

    @property
    def state(self) -> int:
        self._poll_faults()
        return self._state

    @property
    def mode(self) -> int:
        return self._mode

    @property
    def axis(self) -> int:
        return 6

    @property
    def device_type(self) -> int:
        return self._device_type

    @property
    def sn(self) -> str | None:
        return self._sn if self._connected else None

    @property
    def collision_sensitivity(self) -> int:
        return self._collision_sensitivity

    @property
    def version_number(self) -> tuple[int, int, int]:
        return (2, 6, 0)

    def get_robot_sn(self) -> tuple[int, str]:
        if not self.connected:
            return NOT_CONNECTED
        return 0, self._sn

    def get_err_warn_code(self, show: bool = False, lang: str = "en") -> tuple[int, list[int] | str]:
        if not self.connected:
            return NOT_CONNECTED
        return 0, [self.error_code, self._warn_code]

    def clean_error(self) -> int:
        if not self.connected:
            return -1
        if self.faults.collision:
            return 0  # the cause persists: the error comes back on the next poll
        self._error_code = 0
        self._state = 4
        self._enabled = False  # after clean_error the arm must be enabled and set to state 0 again
        return 0

    def clean_warn(self) -> int:
        if not self.connected:
            return -1
        if self.clean_warn_fails:
            return 2  # uncleared warning
        self._warn_code = 0
        return 0

    # --- enable / mode / state ----------------------------------------------------------------------------------
    def motion_enable(self, enable: bool = True, servo_id: int | None = None) -> int:
        if not self.connected:
            return -1
        self._enabled = bool(enable) and not self.faults.enable_fails
        if not enable:
            self._state = 4
            self.dyn.hold()
        return 0

    def set_mode(self, mode: int = 0, detection_param: int = 0) -> int:
        if not self.connected:
            return -1
        self._pending_mode = int(mode)
        return 0

    def set_state(self, state: int = 0) -> int:
        if not self.connected:
            return -1
        self._poll_faults()
        if state == 0:
            self._mode = self._pending_mode
            if self._enabled and self._error_code == 0:
                self._state = 2  # ready (sleeping until a motion command arrives)
                self.dyn.release()
        elif state in (3, 4, 6):
            self._state = state
            self.dyn.hold()
        return 0

    def emergency_stop(self) -> None:
        self.set_state(4)

    def set_collision_sensitivity(self, value: int, wait: bool = True) -> int:
        if not self.connected:
            return -1
        self._collision_sensitivity = int(value)
        return 0

    def set_self_collision_detection(self, on_off: bool) -> int:
        if not self.connected:
            return -1
        self._self_collision = bool(on_off)
        return 0

    # --- joints -------------------------------------------------------------------------------------------------
    def _to_rad(self, values: list[float], is_radian: bool | None) -> list[float]:
        is_radian = self._default_is_radian if is_radian is None else is_radian
        return [float(v) if is_radian else math.radians(float(v)) for v in values]

    def _from_rad(self, values: list[float], is_radian: bool | None) -> list[float]:
        is_radian = self._default_is_radian if is_radian is None else is_radian
        return [round(v if is_radian else math.degrees(v), 6) for v in values]

    def get_servo_angle(
        self, servo_id: int | None = None, is_radian: bool | None = None, is_real: bool = False
    ) -> tuple[int, list[float] | float | str]:
        if not self.connected:
            return NOT_CONNECTED
        self._poll_faults()
        if self.faults.freeze_feedback:
            return 3, self._from_rad(self._last_angles, is_radian)  # response timeout, cached angles
        q = self.dyn.read()
        self._last_angles = [*q.tolist(), 0.0]
        angles = self._from_rad(self._last_angles, is_radian)
        return (0, angles) if servo_id is None or servo_id == 8 else (0, angles[servo_id - 1])

    def get_joint_states(
        self, is_radian: bool | None = None, num: int = 3
    ) -> tuple[int, list[list[float]] | str]:
        code, pos = self.get_servo_angle(is_radian=is_radian)
        if code == -1:
            return NOT_CONNECTED
        return code, [pos, [0.0] * 7, [0.0] * 7][: max(1, num & 0x0F)]

    def _motion_ready(self, mode: int) -> int:
        if not self.connected:
            return -1
        self._poll_faults()
        if self._error_code:
            return 1  # uncleared error
        if not self._enabled or self._state not in (1, 2) or self._mode != mode:
            return 9  # state not ready
        return 0

    def _check_and_command(self, q_rad: list[float], label: str) -> int:
        q = np.asarray(q_rad[:6], dtype=float)
        if (
            not np.all(np.isfinite(q))
            or np.any(q < np.asarray(self.joint_lower))
            or np.any(q > np.asarray(self.joint_upper))
        ):
            self.dyn.command(q, label)  # counted as a violation there
            return -8  # out of range (the SDK's pre-check against its table)
        self.dyn.command(q, label)
        self._state = 1
        return 0

    def set_servo_angle_j(
        self,
        angles: list[float],
        speed: float | None = None,
        mvacc: float | None = None,
        mvtime: float | None = None,
        is_radian: bool | None = None,
        **kwargs: object,
    ) -> int:
        code = self._motion_ready(1)
        if code:
            return code
        self.dyn.step_cap = np.full(6, self.servo_step)
        return self._check_and_command(self._to_rad(list(angles)[:6], is_radian), "set_servo_angle_j")

    def set_servo_angle(
        self,
        servo_id: int | None = None,
        angle: list[float] | None = None,
        speed: float | None = None,
        mvacc: float | None = None,
        mvtime: float | None = None,
        relative: bool = False,
        is_radian: bool | None = None,
        wait: bool = False,
        timeout: float | None = None,
        radius: float | None = None,
        **kwargs: object,
    ) -> int:
        code = self._motion_ready(self._mode if self._mode in (0, 6) else 6)
        if code:
            return code
        # Online planning: the controller plans to the new goal at `speed`; the sim moves at min(speed, joint speed).
        if speed is not None:
            v = min(
                float(speed)
                if (is_radian if is_radian is not None else self._default_is_radian)
                else math.radians(float(speed)),
                float(self.dyn.v.max()),
            )
            self.dyn.v = np.full(6, v)
        self.dyn.step_cap = None if self.step_cap is None else np.asarray(self.step_cap, dtype=float)
        return self._check_and_command(self._to_rad(list(angle)[:6], is_radian), "set_servo_angle")

    # --- gripper ------------------------------------------------------------------------------------------------
    def set_gripper_mode(self, mode: int, **kwargs: object) -> int:
        return -1 if not self.connected else 0

    def set_gripper_enable(self, enable: bool, **kwargs: object) -> int:
        if not self.connected:
            return -1
        self._gripper_enabled = bool(enable)
        return 0

    def set_gripper_speed(self, speed: float, **kwargs: object) -> int:
        if not self.connected:
            return -1
        self._gripper_speed = speed
        return 0

    def set_gripper_position(
        self,
        pos: float,
        wait: bool = False,
        speed: float | None = None,
        auto_enable: bool = False,
        timeout: float | None = None,
        **kwargs: object,
    ) -> int:
        if not self.connected:
            return -1
        if not self._gripper_enabled:
            return 9
        self.gripper_dyn.command([float(pos)], "set_gripper_position")
        return 0

    def get_gripper_position(self, **kwargs: object) -> tuple[int, float | str | None]:
        if not self.connected:
            return NOT_CONNECTED
        if self.gripper_read_fails:
            return 19, None  # C19: end-module communication error
        return 0, float(round(self.gripper_dyn.read()[0]))
