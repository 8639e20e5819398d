"""SO-100 (LeRobot's ``so100_follower``) without hardware: the Feetech motor bus replaced at its boundary.

:class:`SimFeetechBus` takes ``FeetechMotorsBus``'s constructor arguments and answers the calls ``SOFollower`` makes
(``connect``, ``is_calibrated``, ``torque_disabled``, ``configure_motors``, ``write``, ``sync_read("Present_Position")``,
``sync_write("Goal_Position")``, ``disconnect``) with simulated STS3215 joints in LeRobot's normalized units (degrees
for the arm with ``use_degrees=True``, 0-100 for the gripper) that move toward goals at a finite speed. Cameras are
:class:`~lerobot_vla_plugins.robots.sim.SimCamera`. Everything above the bus is LeRobot's code, unchanged.

Run any LeRobot command against it::

    python -m lerobot_vla_tools.testing.so100 lerobot-rollout --robot.type=so100_follower --robot.port=/dev/null ...
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lerobot.motors import Motor, MotorCalibration

#: Ranges the simulated joints respect (normalized units): arm joints in degrees, gripper 0-100.
SO100_LOWER = {
    "shoulder_pan": -110.0,
    "shoulder_lift": -100.0,
    "elbow_flex": -100.0,
    "wrist_flex": -100.0,
    "wrist_roll": -160.0,
    "gripper": 0.0,
}
SO100_UPPER = {
    "shoulder_pan": 110.0,
    "shoulder_lift": 100.0,
    "elbow_flex": 100.0,
    "wrist_flex": 100.0,
    "wrist_roll": 160.0,
    "gripper": 100.0,
}


class SimFeetechBus:
    """Stand-in for ``lerobot.motors.feetech.FeetechMotorsBus`` (see module docstring)."""

    speed = 180.0  # normalized units per second

    def __init__(
        self,
        port: str,
        motors: dict[str, Motor],
        calibration: dict[str, MotorCalibration] | None = None,
        protocol_version: int = 0,
    ) -> None:
        self.port, self.motors, self.calibration = port, motors, calibration or {}
        self.pos = {m: 0.5 * (SO100_LOWER[m] + SO100_UPPER[m]) for m in motors}
        self.goal = dict(self.pos)
        self.writes: list[tuple[str, str, object]] = []
        self.goal_writes = 0
        self.outside_limits = 0
        self._connected = False
        self._t = time.monotonic()
        self._lock = threading.Lock()

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True

    def connect(self, handshake: bool = True) -> None:
        self._connected = True

    def disconnect(self, disable_torque: bool = True) -> None:
        self._connected = False

    @contextlib.contextmanager
    def torque_disabled(self, motors: str | list[str] | None = None) -> Iterator[None]:
        yield

    def configure_motors(self, *args: object, **kwargs: object) -> None:
        pass

    def write(self, data_name: str, motor: str, value: float, *args: object, **kwargs: object) -> None:
        self.writes.append((data_name, motor, value))

    def _advance(self) -> None:
        now = time.monotonic()
        step, self._t = self.speed * (now - self._t), now
        for m in self.pos:
            self.pos[m] += float(np.clip(self.goal[m] - self.pos[m], -step, step))

    def sync_read(
        self, data_name: str, motors: str | Sequence[str] | None = None, *args: object, **kwargs: object
    ) -> dict[str, float]:
        if data_name != "Present_Position":
            raise NotImplementedError(f"SimFeetechBus does not simulate {data_name!r}")
        with self._lock:
            self._advance()
            return dict(self.pos)

    def sync_write(self, data_name: str, values: dict[str, float], *args: object, **kwargs: object) -> None:
        if data_name != "Goal_Position":
            raise NotImplementedError(f"SimFeetechBus does not simulate {data_name!r}")
        with self._lock:
            self._advance()
            self.goal_writes += 1
            for m, v in values.items():
                if not np.isfinite(v) or v < SO100_LOWER[m] or v > SO100_UPPER[m]:
                    self.outside_limits += 1
                self.goal[m] = float(np.clip(v, SO100_LOWER[m], SO100_UPPER[m]))


@contextlib.contextmanager
def simulated_so_follower() -> Iterator[None]:
    """Patches LeRobot's ``so_follower`` module: Feetech bus -> :class:`SimFeetechBus`, cameras -> synthetic."""
    from unittest import mock

    import lerobot.robots.so_follower.so_follower as so

    from lerobot_vla_plugins.robots.sim import make_sim_cameras

    def cameras(configs):
        return make_sim_cameras(configs, lambda: [0.5] * 6)

    with (
        mock.patch.object(so, "FeetechMotorsBus", SimFeetechBus),
        mock.patch.object(so, "make_cameras_from_configs", cameras),
    ):
        yield


def main() -> None:
    """``python -m lerobot_vla_tools.testing.so100 <lerobot-command> <args...>`` with the simulated SO-100."""
    if len(sys.argv) < 2:
        raise SystemExit(
            "usage: python -m lerobot_vla_tools.testing.so100 lerobot-rollout|lerobot-record [args]"
        )
    command, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    modules = {
        "lerobot-rollout": "lerobot.scripts.lerobot_rollout",
        "lerobot-record": "lerobot.scripts.lerobot_record",
    }
    if command not in modules:
        raise SystemExit(f"unsupported command {command!r}; choose from {list(modules)}")
    import importlib

    with simulated_so_follower():
        importlib.import_module(modules[command]).main()


if __name__ == "__main__":
    main()
