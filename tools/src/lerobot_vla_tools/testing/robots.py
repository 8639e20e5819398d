"""Test helpers shared by the robot plugins' tests: polling, adversarial action streams, the check applied to every
action a driver returns, and one :class:`SimArmCase` per simulated arm so the fuzz and fault suites run against
every driver the same way (``tests/robots/test_guarded_arms.py``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lerobot.robots import Robot, RobotConfig

#: Values a broken policy / pipeline can emit besides ordinary numbers.
NASTY = (float("nan"), float("inf"), float("-inf"), 1e9, -1e9, 1e308, -1e308)


def wait_until(pred: Callable[[], object], timeout: float = 2.0, period: float = 0.01) -> bool:
    """Polls ``pred`` until it is truthy (True) or ``timeout`` s have passed (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(period)
    return bool(pred())


def fuzz_actions(
    names: Sequence[str], n: int, lower: Sequence[float], upper: Sequence[float], seed: int = 0
) -> Iterator[dict[str, float]]:
    """``n`` actions mixing: uniform values over twice the joint range, NaN/inf/huge values, and missing keys.

    About 60 % ordinary (some far out of range), 30 % with at least one nasty value, 10 % with a missing key.
    """
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    mid, half = (lo + hi) / 2, (hi - lo)
    for _ in range(n):
        vals = mid + rng.uniform(-1, 1, len(names)) * half
        action = {k: float(v) for k, v in zip(names, vals, strict=True)}
        r = rng.random()
        if r < 0.3:
            for k in rng.choice(names, size=rng.integers(1, len(names) + 1), replace=False):
                action[str(k)] = float(NASTY[rng.integers(len(NASTY))])
        elif r < 0.4:
            del action[str(rng.choice(names))]
        yield action


def action_violations(
    sent: dict[str, float],
    measured: Sequence[float],
    last_target: Sequence[float] | None,
    names: Sequence[str],
    lower: Sequence[float],
    upper: Sequence[float],
    margin: Sequence[float],
    cap: float | None,
    tol: float = 1e-9,
) -> list[str]:
    """What is wrong with an action a driver returned (empty = safe), written from the safety rules themselves:

    * finite and inside the vendor's limits ``[lower, upper]``;
    * inside the limits shrunk by ``margin``, unless it lies between the measured position and that range (a joint
      measured in the margin band may stay or move inwards, never outwards);
    * within ``cap`` of the measured position, and of the last commanded target where both windows overlap.
    """
    out = []
    for i, k in enumerate(names):
        v, q = sent[k], measured[i]
        soft_lo, soft_hi = lower[i] + margin[i], upper[i] - margin[i]
        if not np.isfinite(v):
            out.append(f"{k} non-finite {v}")
        elif v < lower[i] - tol or v > upper[i] + tol:
            out.append(f"{k}={v} outside the vendor's [{lower[i]}, {upper[i]}]")
        elif v < min(soft_lo, q) - tol or v > max(soft_hi, q) + tol:
            out.append(f"{k}={v} in the margin band beyond the measured {q} ([{soft_lo}, {soft_hi}])")
        elif cap is not None and abs(v - q) > cap + tol:
            out.append(f"{k}={v} moved {abs(v - q):.4f} > cap {cap} from the measured {q}")
        elif (
            cap is not None
            and last_target is not None
            and abs(q - last_target[i]) <= 2 * cap
            and abs(v - last_target[i]) > cap + tol
        ):
            out.append(f"{k}={v} moved {abs(v - last_target[i]):.4f} > cap {cap} from the last target")
    return out


@dataclass
class SimCounts:
    """What a simulated controller received: commands, and those that broke its rules."""

    commands: int
    outside_limits: int
    above_step_cap: int
    non_finite: int
    max_step_ratio: float = 0.0


@dataclass
class SimArmCase:
    """One simulated robot for the shared suites.

    Attributes:
        id: test id.
        config: ``config(tmp_path, **overrides) -> RobotConfig`` with ``backend="sim"``.
        faults: the fault switches of every simulated controller of a connected robot (``collision``,
            ``freeze_feedback``, ``disconnected``).
        counts: what every simulated controller received (summed).
        positions: the true simulated joint positions of every arm (concatenated, joints only).
        members: ``(key prefix, GuardedArm)`` of the robot (one entry with prefix ``""`` for a single arm).
    """

    id: str
    config: Callable[..., object]
    faults: Callable[[object], list]
    counts: Callable[[object], SimCounts]
    positions: Callable[[object], np.ndarray]
    members: Callable[[object], list[tuple[str, object]]]


def _counts(checks: list) -> SimCounts:
    return SimCounts(
        sum(c.commands for c in checks),
        sum(c.outside_limits for c in checks),
        sum(c.above_step_cap for c in checks),
        sum(c.non_finite for c in checks),
        max((c.max_step_ratio for c in checks), default=0.0),
    )


def _xarm_config(mode: str):
    def config(tmp_path: Path, **kw):
        from lerobot_robot_xarm6 import XArm6Config

        return XArm6Config(backend="sim", control_mode=mode, calibration_dir=tmp_path, **kw)

    return config


def _piper_config(tmp_path: Path, **kw):
    from lerobot_robot_agilex_piper import PiperConfig

    return PiperConfig(backend="sim", calibration_dir=tmp_path, **kw)


def _bi_piper_config(tmp_path: Path, **kw):
    from lerobot_robot_agilex_piper import BiPiperConfig
    from lerobot_robot_agilex_piper.config_piper import PiperArmConfig

    arms = {side: PiperArmConfig(can_name=f"can_{side}", backend="sim", **kw) for side in ("left", "right")}
    return BiPiperConfig(
        backend="sim", calibration_dir=tmp_path, left_arm_config=arms["left"], right_arm_config=arms["right"]
    )


def _franka_config(tmp_path: Path, **kw):
    from lerobot_robot_franka import FrankaConfig

    return FrankaConfig(backend="sim", calibration_dir=tmp_path, **kw)


def _agibot_config(tmp_path: Path, **kw):
    from lerobot_robot_agibot import AgiBotConfig

    return AgiBotConfig(backend="sim", calibration_dir=tmp_path, **kw)


def _agibot_counts(robot) -> SimCounts:
    a = robot.server.adapter
    return SimCounts(a.commands, a.outside_limits, a.above_step_cap, 0)


def _single(robot) -> list[tuple[str, object]]:
    return [("", robot)]


def _bi(robot) -> list[tuple[str, object]]:
    return [(f"{p}_", arm) for p, arm in robot.members.items()]


def _single_arm(case_id: str, config: Callable[..., object], sim: Callable[[object], object]) -> SimArmCase:
    """A one-arm robot whose simulated controller ``sim(robot)`` has ``faults`` and ``dyn`` (SimJointDynamics)."""
    return SimArmCase(
        case_id,
        config,
        lambda r: [sim(r).faults],
        lambda r: _counts([sim(r).dyn.check]),
        lambda r: sim(r).dyn.read(),
        _single,
    )


SIM_ARMS = [
    _single_arm("xarm6-servo", _xarm_config("servo"), lambda r: r.arm),
    _single_arm("xarm6-online", _xarm_config("online_planning"), lambda r: r.arm),
    _single_arm("piper", _piper_config, lambda r: r.firmware),
    SimArmCase(
        "bi_piper",
        _bi_piper_config,
        lambda r: [arm.firmware.faults for arm in r.members.values()],
        lambda r: _counts([arm.firmware.dyn.check for arm in r.members.values()]),
        lambda r: np.concatenate([arm.firmware.dyn.read() for arm in r.members.values()]),
        _bi,
    ),
    _single_arm("franka", _franka_config, lambda r: r.robot),
    SimArmCase(
        "agibot",
        _agibot_config,
        lambda r: [r.server.adapter.faults],
        _agibot_counts,
        lambda r: np.asarray(r.server.adapter.read()[0]),
        _single,
    ),
]


@contextlib.contextmanager
def connected(config: RobotConfig) -> Iterator[Robot]:
    """A robot built by LeRobot from ``config``, connected, and disconnected afterwards (if still connected)."""
    from lerobot.robots.utils import make_robot_from_config

    robot = make_robot_from_config(config)
    robot.connect()
    try:
        yield robot
    finally:
        if robot.is_connected:
            robot.disconnect()
