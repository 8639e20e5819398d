"""The one safety state machine every robot driver runs: :class:`GuardedArm`, and :class:`GuardedComposite` for robots
made of several arms (``bi_piper``).

A vendor driver subclasses :class:`GuardedArm` and implements only the vendor part:

==========================  ==============================================================================
``_motor_keys()``           the action keys, in order (``joint_1.pos``, ..., ``gripper.pos``)
``_open()``                 open the SDK, configure, enable; never move
``_joint_limits()``         the vendor's limit table for the connected arm (hard limits)
``_read_state()``           measured positions + one numeric time stamp per feedback channel; raise
                            :class:`RobotSafetyError` for an error the controller reports
``_send_target(q)``         command a full target (all keys)
``_hold(q)``                command "stay at ``q``" (default: ``_send_target``)
``_step_cap()``             the guard's per-step cap (default: ``max_relative_target``)
``_stop(hold)``             the vendor's stop after a fault (``hold``: last *fresh* measured pose, or None)
``_close()``                release the SDK (after motion has stopped)
==========================  ==============================================================================

Everything else is here, once, for every arm:

* **Feedback freshness.** Every feedback channel carries a numeric stamp (a number, never an object compared by
  identity such as franky's ``Duration``: a non-numeric stamp is refused). A channel whose stamp has not changed for
  ``feedback_timeout_s`` is stale.
* **Guard.** :class:`~.safety.ActionGuard` on every action: keys, NaN/inf -> hold, the vendor's limits minus
  ``limit_margin``, ``max_relative_target`` against the measured pose and every target commanded since that reading
  was sampled (plus the one being tracked then): when feedback lags, the arm is somewhere between them.
* **Fault latch.** Any failure while reading or commanding (a controller error, stale feedback, a lost link, an SDK
  exception, a stopped sibling arm) *trips* the arm once: nothing more is commanded, the vendor's stop runs, the
  fault listeners (e.g. the bimanual composite) are told, and every later ``send_action`` / ``get_observation``
  raises :class:`RobotSafetyError` until ``disconnect()`` and a new ``connect()``.
* **Monitor.** A thread polls the feedback every ``min(0.05, timeouts / 4)`` s, so faults trip even while the policy
  is slow or paused, and holds the measured pose when no action arrived for ``command_timeout_s`` (watchdog).
  Drivers that stream through their own thread (xArm servo mode) turn it off: their streamer polls instead.
* **Policy fit.** ``connect()`` first compares the policy of the running ``lerobot-rollout`` with the robot's
  features (:mod:`.policy_fit`), before the SDK is opened.

Locking: ``_lock`` serialises the driver's own calls (the policy thread, the monitor, a streamer); ``_io_lock``
covers "is it faulted? then command" and "mark faulted, then stop", so no command can follow a trip. A trip tells
its listeners with no lock held, so tripping a sibling cannot deadlock.
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from lerobot.cameras.utils import make_cameras_from_configs
from lerobot.robots.config import RobotConfig
from lerobot.robots.robot import Robot
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

from .policy_fit import check_rollout_policy_fits
from .safety import ActionGuard, JointLimits, RobotSafetyError
from .sim import make_sim_cameras

logger = logging.getLogger(__name__)


@dataclass
class ArmState:
    """One reading of the arm.

    Attributes:
        positions: measured positions (J,) in action-key order.
        stamps: feedback channel -> numeric time stamp that changes whenever the channel delivers new data (the
            vendor's own time stamp where it has one, else the host time of the last successful read); ``None`` for
            a channel that never delivered.
        sampled_at: host ``time.monotonic()`` at which the controller sampled ``positions``, where the vendor's stamp
            tells (else the reading's arrival time is used).
    """

    positions: np.ndarray
    stamps: dict[str, float | None]
    sampled_at: float | None = None


class FeedbackClock:
    """Per-channel freshness: a channel is stale when its stamp has not changed for ``timeout_s`` (host clock)."""

    def __init__(self, timeout_s: float, label: str):
        self.timeout_s = timeout_s
        self.label = label
        self._seen: dict[str, tuple[float, float]] = {}

    def update(self, stamps: dict[str, float | None], now: float) -> set[str]:
        """Checks every channel; returns the channels whose stamp changed (raises when one is stale)."""
        advanced = set()
        for channel, stamp in stamps.items():
            if stamp is None:
                raise RobotSafetyError(f"{self.label}: no {channel} feedback received")
            if isinstance(stamp, bool) or not isinstance(stamp, numbers.Real):
                raise TypeError(
                    f"{self.label}: the {channel} feedback time stamp is a {type(stamp).__name__}, not a number; "
                    "objects that compare by identity (e.g. franky.Duration) never look unchanged - pass a numeric "
                    "time (Duration.to_msec())"
                )
            prev = self._seen.get(channel)
            if prev is None or stamp != prev[0]:
                self._seen[channel] = (stamp, now)
                advanced.add(channel)
            elif now - prev[1] > self.timeout_s:
                raise RobotSafetyError(
                    f"{self.label}: {channel} feedback has not updated for {now - prev[1]:.2f} s "
                    f"(> feedback_timeout_s={self.timeout_s}): frozen feedback or lost link"
                )
        return advanced

    def fresh(self, now: float) -> bool:
        """True if every channel updated within ``timeout_s``."""
        return bool(self._seen) and all(now - t <= self.timeout_s for _, t in self._seen.values())


def motor_features(keys: list[str]) -> dict[str, type]:
    return dict.fromkeys(keys, float)


def camera_features(cameras: dict) -> dict[str, tuple]:
    return {name: (cfg.height, cfg.width, 3) for name, cfg in cameras.items()}


class GuardedArm(Robot):
    """Base of every arm driver (module docstring). ``config`` is an :class:`~.config.ArmSafetyConfig` with
    ``cameras``; a plain per-arm dataclass (not a ``RobotConfig``) makes this arm a *member* of a composite: it has no
    calibration directory and skips the policy check (the composite checks the whole robot)."""

    #: seconds within which a reading is reused instead of querying the SDK again (0: always query)
    reuse_reading_s: float = 0.0
    #: run the monitor thread (feedback polling + command watchdog); off for drivers with their own streamer
    use_monitor: bool = True
    #: how long a command may take to reach the controller's control loop (targets sent less than this before a
    #: reading was sampled count as not yet applied by it)
    controller_latency_s: float = 0.0

    def __init__(self, config):
        self.member = not isinstance(config, RobotConfig)
        if self.member:
            self.robot_type, self.id, self.calibration = self.name, None, {}
        else:
            super().__init__(config)
        self.config = config
        self.guard: ActionGuard | None = None
        self.holds = 0  # watchdog holds (tests, logs)
        self._connected = False
        self._fault: RobotSafetyError | None = None
        self._stopped_fault: RobotSafetyError | None = None  # `fault` as seen outside: set once the stop ran
        self._fault_listeners: list[Callable[[GuardedArm, RobotSafetyError], None]] = []
        self._lock = threading.RLock()
        self._io_lock = threading.RLock()
        self._stop_event = threading.Event()
        self._monitor: threading.Thread | None = None
        self._clock = FeedbackClock(config.feedback_timeout_s, self.label)
        self._q: np.ndarray | None = None
        self._q_time = 0.0
        self._q_sampled = 0.0
        self._last_target: np.ndarray | None = None
        self._history: deque[tuple[float, np.ndarray]] = deque(maxlen=256)  # (host time sent, target)
        self._last_commit = 0.0
        self._held = True
        self.cameras = (
            make_sim_cameras(config.cameras, self._normalized_state)
            if config.backend == "sim"
            else make_cameras_from_configs(config.cameras)
        )

    # --- vendor part --------------------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.name

    def _motor_keys(self) -> list[str]:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _joint_limits(self) -> JointLimits:
        raise NotImplementedError

    def _read_state(self) -> ArmState:
        raise NotImplementedError

    def _send_target(self, q: np.ndarray) -> None:
        raise NotImplementedError

    def _hold(self, q: np.ndarray) -> None:
        self._send_target(q)

    def _step_cap(self) -> float | dict[str, float] | None:
        """The per-step cap of the guard (after ``_open``); default ``max_relative_target``."""
        return self.config.max_relative_target

    def _start_motion(self, q0: np.ndarray) -> None:
        """After the first fresh reading (``q0``): e.g. start a streamer at the measured pose. Default: nothing."""

    def _stop(self, hold: np.ndarray | None) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # --- features -----------------------------------------------------------------------------------------------
    @cached_property
    def observation_features(self) -> dict[str, type | tuple]:
        return {**motor_features(self._motor_keys()), **camera_features(self.config.cameras)}

    @cached_property
    def action_features(self) -> dict[str, type]:
        return motor_features(self._motor_keys())

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True  # joint zeros live in the arms' controllers; nothing to calibrate on the host

    def calibrate(self) -> None:
        """Nothing to calibrate on the host: every supported arm keeps its joint zeros in its controller."""

    def configure(self) -> None:
        """Controller settings (modes, collision detection, speed) are applied in ``connect()``."""

    @property
    def fault(self) -> RobotSafetyError | None:
        """The latched fault, visible once the vendor stop has run (commands are refused from the trip on)."""
        return self._stopped_fault

    @property
    def tripped(self) -> bool:
        """True from the moment a fault is latched (its vendor stop may still be running): drivers decide on it."""
        return self._fault is not None

    @property
    def last_target(self) -> np.ndarray | None:
        return None if self._last_target is None else self._last_target.copy()

    def add_fault_listener(self, callback: Callable[[GuardedArm, RobotSafetyError], None]) -> None:
        self._fault_listeners.append(callback)

    def _normalized_state(self) -> list[float]:
        """Positions scaled to [0, 1] by the joint table (drawn by the sim cameras)."""
        if self.guard is None or self._q is None:
            return [0.5] * len(self._motor_keys())
        lo, hi = self.guard.lower, self.guard.upper
        return np.clip((self._q - lo) / (hi - lo), 0.0, 1.0).tolist()

    # --- fault latch --------------------------------------------------------------------------------------------
    def trip(self, exc: BaseException) -> RobotSafetyError:
        """Latches a fault (first call only): stop commanding, run the vendor stop, tell the listeners.

        Returns the error to raise (the original one for the first trip).
        """
        err = (
            exc
            if isinstance(exc, RobotSafetyError)
            else RobotSafetyError(f"{self.label}: {type(exc).__name__}: {exc}")
        )
        first = False
        with self._io_lock:
            if self._fault is None:
                first = True
                self._fault = err
                self._stop_event.set()
                logger.error("%s: stopping: %s", self.label, err)
                hold = self._q.copy() if self._q is not None and self._clock.fresh(time.monotonic()) else None
                try:
                    self._stop(hold)
                except Exception:
                    logger.exception("%s: the vendor stop after a fault failed", self.label)
                self._stopped_fault = err
        if first:
            for callback in list(self._fault_listeners):
                try:
                    callback(self, err)
                except Exception:
                    logger.exception("%s: fault listener failed", self.label)
            return err
        return self._latched()

    def _latched(self) -> RobotSafetyError:
        return RobotSafetyError(
            f"{self.label} stopped after a fault and stays stopped until disconnect() and connect(): {self._fault}"
        )

    def _raise_if_faulted(self) -> None:
        if self._fault is not None:
            raise self._latched() from self._fault

    def _io(self, fn: Callable[..., object], *args) -> None:
        """Runs a command unless the arm is faulted; any exception trips the arm."""
        with self._io_lock:
            self._raise_if_faulted()
            try:
                fn(*args)
                return
            except Exception as e:
                error = e
        raise self.trip(error) from error

    def _poll(self, reuse_s: float = 0.0) -> np.ndarray:
        """A fresh measured reading (J,); any failure trips the arm and raises."""
        now = time.monotonic()
        if reuse_s and self._q is not None and now - self._q_time < reuse_s:
            return self._q.copy()
        try:
            state = self._read_state()
            self._clock.update(state.stamps, now)
            q = self.guard.measured_array(state.positions)
        except Exception as e:
            raise self.trip(e) from e
        self._q, self._q_time = q, now
        self._q_sampled = now if state.sampled_at is None else min(now, state.sampled_at)
        return q.copy()

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def connect(self, calibrate: bool = True) -> None:
        if self._connected:
            raise DeviceAlreadyConnectedError(f"{self.label} is already connected")
        if not self.member:
            check_rollout_policy_fits(self.label, self.name, self.observation_features, self.action_features)
        self._fault = self._stopped_fault = None
        self._stop_event.clear()
        self._clock = FeedbackClock(self.config.feedback_timeout_s, self.label)
        self._q, self._last_target, self._held, self.holds = None, None, True, 0
        try:
            self._open()
            keys = self._motor_keys()
            margin = {k: self.config.limit_margin for k in keys if "gripper" not in k}
            self.guard = ActionGuard(self._joint_limits(), margin, self._step_cap(), self.label)
            q0 = self._first_reading()
            self._history.clear()
            self._set_target(q0)
            self._start_motion(q0)
            for cam in self.cameras.values():
                cam.connect()
            if self.use_monitor:
                self._monitor = threading.Thread(
                    target=self._monitor_loop, name=f"{self.label}-monitor", daemon=True
                )
                self._monitor.start()
        except BaseException:
            self._shutdown()
            raise
        self._connected = True
        logger.info("%s connected (%s)", self.label, self.config.backend)

    def _first_reading(self) -> np.ndarray:
        """Waits for every feedback channel (no motion starts from a guessed pose)."""
        deadline = time.monotonic() + max(self.config.feedback_timeout_s, 1.0)
        while True:
            state = self._read_state()
            if all(s is not None for s in state.stamps.values()):
                now = time.monotonic()
                self._clock.update(state.stamps, now)
                q = self.guard.measured_array(state.positions)
                self._q, self._q_time = q, now
                return q.copy()
            if time.monotonic() > deadline:
                missing = [c for c, s in state.stamps.items() if s is None]
                raise RobotSafetyError(
                    f"{self.label}: no {', '.join(missing)} feedback within "
                    f"{max(self.config.feedback_timeout_s, 1.0)} s; is the arm powered and reachable?"
                )
            time.sleep(0.01)

    def _monitor_loop(self) -> None:
        cfg = self.config
        period = min(0.05, cfg.command_timeout_s / 4, cfg.feedback_timeout_s / 4)
        while not self._stop_event.wait(period):
            with self._lock:
                if self._fault is not None or self._stop_event.is_set():
                    return
                try:
                    q = self._poll(reuse_s=period)
                    if not self._held and time.monotonic() - self._last_commit > cfg.command_timeout_s:
                        logger.warning(
                            "%s: no action for %.3f s, holding the measured pose",
                            self.label,
                            cfg.command_timeout_s,
                        )
                        self._held = True
                        self.holds += 1
                        self._io(self._hold, q)
                        self._set_target(q)
                except RobotSafetyError:
                    return  # tripped: the fault is latched and reported to the caller of the next call

    def _shutdown(self) -> None:
        """Stops the threads and releases the SDK (after a failed connect or in disconnect)."""
        self._stop_event.set()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=2.0)
        self._monitor = None
        for cam in self.cameras.values():
            if cam.is_connected:
                cam.disconnect()
        try:
            self._close()
        except Exception:
            logger.exception("%s: error while closing the SDK", self.label)

    def disconnect(self) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.label} is not connected")
        self._connected = False
        self._stop_event.set()
        if self._monitor is not None:
            self._monitor.join(timeout=2.0)
            self._monitor = None
        with self._lock:
            if self._fault is None:
                try:
                    self._io(self._hold, self._poll())  # stop where it is
                except RobotSafetyError as e:
                    logger.warning("%s", e)
        self._shutdown()
        logger.info("%s disconnected", self.label)

    # --- I/O ----------------------------------------------------------------------------------------------------
    def get_observation(self) -> dict:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.label} is not connected")
        with self._lock:
            self._raise_if_faulted()
            q = self._poll(reuse_s=self.reuse_reading_s)
        obs: dict = {k: float(v) for k, v in zip(self.action_features, q, strict=True)}
        for name, cam in self.cameras.items():
            obs[name] = cam.read_latest()
        return obs

    def prepare_action(self, action: dict) -> tuple[dict[str, float], np.ndarray]:
        """Guards ``action`` against a fresh reading; returns ``(safe_action, measured)`` without commanding."""
        with self._lock:
            self._raise_if_faulted()
            self.guard.validate_keys(action)
            measured = self._poll(reuse_s=self.reuse_reading_s)
            safe, _ = self.guard(action, measured, self._recent_targets())
            return safe, measured

    def _set_target(self, q: np.ndarray) -> None:
        self._last_target = q
        self._history.append((time.monotonic(), q))

    def _recent_targets(self) -> list[np.ndarray]:
        """The target the arm was tracking when the current reading was sampled, then every later one."""
        t_ref = self._q_sampled - self.controller_latency_s
        later = [q for t, q in self._history if t >= t_ref]
        before = [q for t, q in self._history if t < t_ref][-1:]
        return before + later

    def commit_action(self, safe: dict[str, float]) -> None:
        """Commands a guarded action (from :meth:`prepare_action`)."""
        q = np.array([safe[k] for k in self.action_features])
        with self._lock:
            self._io(self._send_target, q)
            self._set_target(q)
            self._last_commit = time.monotonic()
            self._held = False

    def send_action(self, action: dict) -> dict:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.label} is not connected")
        safe, measured = self.prepare_action(action)
        self.last_measured = measured.tolist()  # what the guard capped against (tests check the cap with it)
        self.commit_action(safe)
        return safe


class GuardedComposite(Robot):
    """A robot made of several :class:`GuardedArm` members, keys prefixed ``<member>_`` (``left_``, ``right_``).

    One fault stops all members: a member's trip (from any thread) trips every other member and latches the
    composite. ``send_action`` guards every member's part against fresh feedback before commanding any of them, so a
    step is either sent to all members or to none.

    Args:
        config: the composite's ``RobotConfig`` (``cameras`` = top-level cameras, keys unprefixed).
        members: ``{prefix: arm}`` in key order.
    """

    def __init__(self, config, members: dict[str, GuardedArm]):
        super().__init__(config)
        self.config = config
        self.members = members
        for arm in members.values():
            arm.add_fault_listener(self._on_member_fault)
        sim = all(arm.config.backend == "sim" for arm in members.values())
        self.top_cameras = (
            make_sim_cameras(config.cameras, self._normalized_state)
            if sim
            else make_cameras_from_configs(config.cameras)
        )
        self.cameras = {
            **self.top_cameras,
            **{f"{p}_{k}": c for p, arm in members.items() for k, c in arm.cameras.items()},
        }
        self._connected = False
        self._fault: RobotSafetyError | None = None
        self._stopped_fault: RobotSafetyError | None = None
        self._lock = threading.RLock()

    @property
    def label(self) -> str:
        return self.name

    def _normalized_state(self) -> list[float]:
        return [v for arm in self.members.values() for v in arm._normalized_state()]

    @cached_property
    def observation_features(self) -> dict:
        out = {f"{p}_{k}": v for p, arm in self.members.items() for k, v in arm.action_features.items()}
        out.update(camera_features(self.config.cameras))
        for p, arm in self.members.items():
            out.update({f"{p}_{k}": v for k, v in camera_features(arm.config.cameras).items()})
        return out

    @cached_property
    def action_features(self) -> dict:
        return {f"{p}_{k}": v for p, arm in self.members.items() for k, v in arm.action_features.items()}

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return all(arm.is_calibrated for arm in self.members.values())

    def calibrate(self) -> None:
        """Nothing to calibrate on the host (see the members)."""

    def configure(self) -> None:
        """The members configure their controllers in ``connect()``."""

    @property
    def fault(self) -> RobotSafetyError | None:
        """The first member's fault, visible once every member has been stopped."""
        return self._stopped_fault

    def _on_member_fault(self, arm: GuardedArm, exc: RobotSafetyError) -> None:
        with self._lock:
            if self._fault is not None:
                return
            self._fault = exc
        for other in self.members.values():
            if other is not arm:
                other.trip(RobotSafetyError(f"{other.label}: stopped because {arm.label} faulted ({exc})"))
        self._stopped_fault = exc

    def _raise_if_faulted(self) -> None:
        if self._fault is not None:
            raise RobotSafetyError(
                f"{self.label} stopped after a fault and stays stopped until disconnect() and connect(): {self._fault}"
            ) from self._fault

    def connect(self, calibrate: bool = True) -> None:
        if self._connected:
            raise DeviceAlreadyConnectedError(f"{self.label} is already connected")
        check_rollout_policy_fits(self.label, self.name, self.observation_features, self.action_features)
        self._fault = self._stopped_fault = None
        try:
            for arm in self.members.values():
                arm.connect(calibrate)
            for cam in self.top_cameras.values():
                cam.connect()
        except BaseException:
            for arm in self.members.values():
                if arm.is_connected:
                    arm.disconnect()
            for cam in self.top_cameras.values():
                if cam.is_connected:
                    cam.disconnect()
            raise
        self._connected = True

    def _split(self, action: dict) -> dict[str, dict]:
        prefixes = tuple(f"{p}_" for p in self.members)
        unknown = [k for k in action if not k.startswith(prefixes)]
        if unknown:
            raise ValueError(
                f"{self.label}: action keys {unknown} lack a member prefix {list(prefixes)}; expected "
                f"{list(self.action_features)}"
            )
        return {
            p: {k.removeprefix(f"{p}_"): v for k, v in action.items() if k.startswith(f"{p}_")}
            for p in self.members
        }

    def get_observation(self) -> dict:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.label} is not connected")
        self._raise_if_faulted()
        obs = {}
        for p, arm in self.members.items():
            obs.update({f"{p}_{k}": v for k, v in arm.get_observation().items()})
        for name, cam in self.top_cameras.items():
            obs[name] = cam.read_latest()
        return obs

    def send_action(self, action: dict) -> dict:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.label} is not connected")
        self._raise_if_faulted()
        parts = self._split(action)
        safe = {
            p: arm.prepare_action(parts[p]) for p, arm in self.members.items()
        }  # every member fresh and guarded
        for p, arm in self.members.items():
            arm.last_measured = safe[p][1].tolist()
            arm.commit_action(safe[p][0])
        return {f"{p}_{k}": v for p, (s, _) in safe.items() for k, v in s.items()}

    def disconnect(self) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.label} is not connected")
        self._connected = False
        for cam in self.top_cameras.values():
            if cam.is_connected:
                cam.disconnect()
        errors = []
        for arm in self.members.values():
            if arm.is_connected:
                try:
                    arm.disconnect()
                except Exception as e:  # disconnect every member even if one fails
                    errors.append(e)
        if errors:
            raise errors[0]
