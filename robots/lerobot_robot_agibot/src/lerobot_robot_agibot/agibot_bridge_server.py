#!/usr/bin/env python3
"""AgiBot bridge server: runs next to the vendor SDK (Python >= 3.10, standard library only) and serves the LeRobot
``agibot`` driver over TCP.

Run it on the robot's computer, in the environment where the vendor SDK works, bound to the interface that faces the
LeRobot PC, with a shared secret (the same secret goes to the driver; at least 16 characters)::

    export AGIBOT_BRIDGE_TOKEN=$(cat ~/.agibot_bridge_token)     # or --token-file ~/.agibot_bridge_token
    python agibot_bridge_server.py --robot g1 --host 192.168.1.10 --port 5599 --limits-json g1_limits.json
    python agibot_bridge_server.py --robot a2 --host 192.168.1.10 --port 5599
    python agibot_bridge_server.py --robot sim --host 127.0.0.1 --port 5599

Refusals at start-up (the script exits with the fix): G1 without ``--limits-json`` (AgiBot does not publish G1 joint
limits; take them from your robot's URDF), a wildcard ``--host`` (``0.0.0.0`` / ``::`` would expose the arms to
every network the robot is on), no token.

Wire format (version :data:`PROTOCOL_VERSION`): one JSON object per line (UTF-8, ``\\n``-terminated), request ->
reply, in order. Every request has ``"v"`` (protocol version) and ``"op"``; every reply has ``"v"``, ``"ok"`` and,
if not ok, ``"error"`` (text) and ``"code"`` (``"version"``, ``"auth"``, ``"bad_request"``, ``"robot_error"``,
``"limits"``). A connection must start with ``hello`` carrying the token; any other op before that, or a wrong token,
is refused with code ``auth`` and the connection is closed.

=========  =================================================  ====================================================
op         request fields                                     reply fields
=========  =================================================  ====================================================
hello      ``client`` (text), ``token`` (text)                ``robot`` (g1/a2/sim), ``joints`` (14 names),
                                                              ``lower``/``upper`` (14 rad), ``grippers`` (2 names),
                                                              ``max_step`` (rad)
state      -                                                  ``q`` (14 rad), ``gripper`` (2, [0,1]), ``t`` (s, the
                                                              vendor's state time stamp), ``error`` (null or text)
command    ``q`` (14 rad), ``gripper`` (2, [0,1])             ``capped`` (joint names the server clamped)
                                                              (refused with code ``limits`` if outside limits or
                                                              non-finite: the server never forwards such a target)
hold       -                                                  -  (command the measured pose)
bye        -                                                  -  (the server holds, then closes the connection)
=========  =================================================  ====================================================

Server-side safety, independent of the client: commands are checked against the adapter's limits and each joint
target is clamped to within ``--max-step`` rad of the measured pose and of the last forwarded target (the client's
guard applies the same rule with the same or a smaller cap, so a well-behaved client is never clamped); if no request
arrives for ``--command-timeout`` seconds, or the client disconnects, the arms hold their measured pose.

Adapters wrap the vendor layer at its boundary: :class:`G1Adapter` (``a2d_sdk.RobotDds``), :class:`A2Adapter`
(:class:`A2Ros2Transport`: ROS 2 topics + the motion-control HTTP RPC), :class:`SimAdapter` (in-process dynamics).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import math
import os
import socketserver
import threading
import time
from collections.abc import Sequence
from typing import Any

PROTOCOL_VERSION = 2
TOKEN_ENV = "AGIBOT_BRIDGE_TOKEN"
MIN_TOKEN_LENGTH = 16
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 - listed to be refused
LOG = logging.getLogger("agibot_bridge")

ARM_JOINTS = [f"left_joint_{i}" for i in range(1, 8)] + [f"right_joint_{i}" for i in range(1, 8)]
GRIPPERS = ["left_gripper", "right_gripper"]

# A2 (AimDK v1.3 docs, rad): left arm limits; the right arm is taken as the mirror image (negated, swapped).
# Verify against your robot's URDF before the first run.
_A2_LEFT = [
    (-2.91, 2.91),
    (-0.46, 1.60),
    (-2.91, 2.91),
    (-2.00, -0.03),
    (-2.94, 2.94),
    (-0.45, 0.45),
    (-0.35, 0.35),
]
A2_LIMITS = _A2_LEFT + [(-hi, -lo) for lo, hi in _A2_LEFT]
SIM_LIMITS = A2_LIMITS

#: What :meth:`Adapter.read` returns: ``(q14 or None, grip2 or None, t, error_or_None)`` (None: no state yet).
AdapterState = tuple[list[float] | None, list[float] | None, float, str | None]


def encode(msg: dict[str, Any]) -> bytes:
    """One message as a JSON line."""
    return (json.dumps(msg, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def decode(line: bytes) -> dict[str, Any]:
    msg = json.loads(line.decode("utf-8"))
    if not isinstance(msg, dict):
        raise ValueError("a message must be a JSON object")
    return msg


def _finite(values: Sequence[object]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def cap_step(
    target: Sequence[float], measured: Sequence[float], last: Sequence[float], max_step: float
) -> tuple[list[float], list[int]]:
    """Each target within ``max_step`` of the measured pose and of the last forwarded target (the plugin's guard rule:
    if the two windows do not overlap, the point within ``max_step`` of the measured pose nearest to the last target).

    Returns ``(capped_targets, indices_that_changed)``.
    """
    out, changed = [], []
    for i, (t, m, p) in enumerate(zip(target, measured, last, strict=True)):
        lo, hi = max(m, p) - max_step, min(m, p) + max_step
        if lo > hi:
            lo = hi = min(max(p, m - max_step), m + max_step)
        c = min(max(t, lo), hi)
        if c != t:
            changed.append(i)
        out.append(c)
    return out, changed


# ------------------------------------------------------------------------------------------------------------------
# Adapters
# ------------------------------------------------------------------------------------------------------------------
class Adapter:
    """Vendor boundary: ``name``, ``limits`` (14 (lo, hi)), ``read() -> (q14, grip2, t, error_or_None)``,
    ``command(q14, grip2)``, ``hold()``, ``close()``."""

    name = "base"
    limits = SIM_LIMITS

    def read(self) -> AdapterState:
        raise NotImplementedError

    def command(self, q: Sequence[float], gripper: Sequence[float]) -> None:
        raise NotImplementedError

    def hold(self) -> None:
        q, g, _, _ = self.read()
        self.command(q, g)

    def close(self) -> None:
        pass


class SimFaults:
    """Switches for the simulated adapter: collision (error reported, arms stop), freeze_feedback (time stamp and
    joints stop changing), disconnected (the server stops answering)."""

    def __init__(self) -> None:
        self.collision = False
        self.freeze_feedback = False
        self.disconnected = False


class SimAdapter(Adapter):
    """Two simulated 7-DoF arms tracking targets at ``speed`` rad/s; counts commands outside limits or above
    ``step_cap`` from the true simulated pose (tests assert these stay 0; the server passes its ``max_step``: the
    bound it promises)."""

    name = "sim"

    def __init__(
        self, limits: list[tuple[float, float]] | None = None, speed: float = 1.5, step_cap: float = 0.1
    ) -> None:
        self.limits = limits or SIM_LIMITS
        self.q = [0.5 * (lo + hi) for lo, hi in self.limits]
        self.target = list(self.q)
        self.gripper = [0.0, 0.0]
        self.gripper_target = [0.0, 0.0]
        self.speed, self.step_cap = speed, step_cap
        self.faults = SimFaults()
        self.commands = self.outside_limits = self.above_step_cap = self.holds = 0
        self._t = time.monotonic()
        self._frozen: AdapterState | None = None
        self._lock = threading.Lock()

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._t = now - self._t, now
        if self.faults.collision:
            return
        step = self.speed * dt
        self.q = [q + max(-step, min(step, t - q)) for q, t in zip(self.q, self.target, strict=False)]
        self.gripper = [
            g + max(-2 * dt, min(2 * dt, t - g))
            for g, t in zip(self.gripper, self.gripper_target, strict=False)
        ]

    def read(self) -> AdapterState:
        with self._lock:
            self._advance()
            err = "collision detected (arm stopped)" if self.faults.collision else None
            if self.faults.freeze_feedback:
                if self._frozen is None:
                    self._frozen = (list(self.q), list(self.gripper), time.time(), err)
                return self._frozen
            self._frozen = None
            return list(self.q), list(self.gripper), time.time(), err

    def hold(self) -> None:
        """Stay at the measured pose (counted in ``holds``, not as a command)."""
        with self._lock:
            self._advance()
            self.holds += 1
            self.target, self.gripper_target = list(self.q), list(self.gripper)

    def command(self, q: Sequence[float], gripper: Sequence[float]) -> None:
        with self._lock:
            self._advance()
            self.commands += 1
            if any(
                v < lo - 1e-9 or v > hi + 1e-9 for v, (lo, hi) in zip(q, self.limits, strict=False)
            ) or any(g < 0 or g > 1 for g in gripper):
                self.outside_limits += 1
                return
            if any(abs(v - m) > self.step_cap + 1e-9 for v, m in zip(q, self.q, strict=False)):
                self.above_step_cap += 1
            if self.faults.collision:
                return
            self.target, self.gripper_target = list(q), list(gripper)


class G1Adapter(Adapter):
    """AgiBot G1 through ``a2d_sdk.RobotDds`` (vendor SDK installed from the robot, Python 3.10).

    ``arm_joint_states() -> ([14 rad], ts)``, ``gripper_states() -> ([l, r], ts)``, ``move_arm([14])``,
    ``move_gripper([l, r])``; errors from ``RobotController().get_motion_status()`` when available.
    """

    name = "g1"

    def __init__(self, limits: list[tuple[float, float]] | None, sdk_module: Any = None) -> None:
        if limits is None or len(limits) != 14:
            raise ValueError(
                "G1: AgiBot does not publish the G1 joint limits; pass your robot's 14 limits (left 7 then right 7, "
                'rad, from its URDF) with --limits-json \'{"lower": [...], "upper": [...]}\''
            )
        if sdk_module is None:
            import a2d_sdk as sdk_module  # noqa: PLC0415 - only on the robot
        self.sdk = sdk_module
        self.robot = sdk_module.RobotDds()
        self.controller = sdk_module.RobotController() if hasattr(sdk_module, "RobotController") else None
        self.limits = list(limits)

    def read(self) -> AdapterState:
        q, t = self.robot.arm_joint_states()
        g, _ = self.robot.gripper_states()
        err = None
        if self.controller is not None:
            status = self.controller.get_motion_status()
            err = status.get("error") if isinstance(status, dict) else None
        return [float(v) for v in q], [float(v) for v in g], float(t), err

    def command(self, q: Sequence[float], gripper: Sequence[float]) -> None:
        self.robot.move_arm(list(q))
        self.robot.move_gripper(list(gripper))

    def close(self) -> None:
        if hasattr(self.robot, "shutdown"):
            self.robot.shutdown()


class A2Ros2Transport:
    """A2 vendor boundary: ROS 2 topics (``rclpy``) and the motion-control HTTP RPC (AimDK v1.3).

    ``set_ext_action(name)`` posts ``McAction_USE_EXT_CMD`` with ``ext_action`` to
    ``http://<rpc_host>:56322/rpc/aimdk.protocol.McActionService/SetAction``; arm targets go to
    ``/motion/control/arm_joint_command`` and hand grasp to ``/motion/control/hand_joint_command``
    (``sensor_msgs/JointState``); state comes from ``/motion/control/arm_joint_state`` and ``.../hand_joint_state``.
    """

    def __init__(self, rpc_host: str = "192.168.100.100") -> None:
        import rclpy  # noqa: PLC0415 - system ROS 2 (Humble), not pip
        from rclpy.node import Node  # noqa: PLC0415
        from sensor_msgs.msg import JointState  # noqa: PLC0415

        self.rpc_url = f"http://{rpc_host}:56322/rpc/aimdk.protocol.McActionService/SetAction"
        self.JointState = JointState
        rclpy.init()
        self.node = Node("lerobot_agibot_bridge")
        self.arm_pub = self.node.create_publisher(JointState, "/motion/control/arm_joint_command", 10)
        self.hand_pub = self.node.create_publisher(JointState, "/motion/control/hand_joint_command", 10)
        self.arm_state: tuple[list[str], list[float], float] | None = None
        self.hand_state: tuple[list[str], list[float]] | None = None
        self.node.create_subscription(JointState, "/motion/control/arm_joint_state", self._on_arm, 10)
        self.node.create_subscription(JointState, "/motion/control/hand_joint_state", self._on_hand, 10)
        self._spin = threading.Thread(target=rclpy.spin, args=(self.node,), daemon=True)
        self._spin.start()

    def _on_arm(self, msg: Any) -> None:
        self.arm_state = (
            list(msg.name),
            list(msg.position),
            msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec,
        )

    def _on_hand(self, msg: Any) -> None:
        self.hand_state = (list(msg.name), list(msg.position))

    def set_ext_action(self, ext_action: str) -> dict[str, Any]:
        import urllib.request  # noqa: PLC0415

        body = json.dumps({"command": {"action": "McAction_USE_EXT_CMD", "ext_action": ext_action}}).encode()
        req = urllib.request.Request(self.rpc_url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=2.0) as resp:  # noqa: S310 - robot-local address
            return json.loads(resp.read().decode() or "{}")

    def publish_arm(self, names: Sequence[str], positions: Sequence[float]) -> None:
        msg = self.JointState()
        msg.name, msg.position = list(names), [float(p) for p in positions]
        self.arm_pub.publish(msg)

    def publish_hand(self, names: Sequence[str], positions: Sequence[float]) -> None:
        msg = self.JointState()
        msg.name, msg.position = list(names), [float(p) for p in positions]
        self.hand_pub.publish(msg)

    def latest_arm(self) -> tuple[list[str], list[float], float] | None:
        return self.arm_state

    def latest_hand(self) -> tuple[list[str], list[float]] | None:
        return self.hand_state


A2_ARM_NAMES = [f"idx{12 + i:02d}_left_arm_joint{i}" for i in range(1, 8)] + [
    f"idx{19 + i:02d}_right_arm_joint{i}" for i in range(1, 8)
]


class A2Adapter(Adapter):
    """AgiBot A2 through :class:`A2Ros2Transport` (or any object with its methods, e.g. a test double).

    On start it switches motion control to ``PASSIVE_UPPER_BODY_JOINT_SERVO``. The 5-finger hands are driven by one
    grasp scalar per side (every finger flexion = grasp x ``hand_max`` rad) and read back as the mean flexion.
    """

    name = "a2"
    hand_max = 1.0

    def __init__(
        self, transport: A2Ros2Transport | None = None, limits: list[tuple[float, float]] | None = None
    ) -> None:
        self.t = transport or A2Ros2Transport()
        self.limits = limits or A2_LIMITS
        self.t.set_ext_action("PASSIVE_UPPER_BODY_JOINT_SERVO")

    def read(self) -> AdapterState:
        arm = self.t.latest_arm()
        if arm is None:
            return None, None, 0.0, "no /motion/control/arm_joint_state received yet"
        names, pos, stamp = arm
        by_name = dict(zip(names, pos, strict=False))
        q = [float(by_name[n]) for n in A2_ARM_NAMES]
        hand = self.t.latest_hand()
        grip = [0.0, 0.0]
        if hand is not None:
            for side_i, side in enumerate(("left", "right")):
                vals = [p for n, p in zip(hand[0], hand[1], strict=False) if n.startswith(side)]
                grip[side_i] = min(1.0, max(0.0, sum(vals) / len(vals) / self.hand_max)) if vals else 0.0
        return q, grip, float(stamp), None

    def command(self, q: Sequence[float], gripper: Sequence[float]) -> None:
        self.t.publish_arm(A2_ARM_NAMES, q)
        names = [f"{s}_hand_joint{i}" for s in ("left", "right") for i in range(1, 7)]
        self.t.publish_hand(names, [gripper[0] * self.hand_max] * 6 + [gripper[1] * self.hand_max] * 6)


# ------------------------------------------------------------------------------------------------------------------
# Server
# ------------------------------------------------------------------------------------------------------------------
def check_token(token: str | None) -> str:
    """The shared secret, refused if missing or shorter than :data:`MIN_TOKEN_LENGTH`."""
    if not token or len(token.strip()) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"the bridge needs a shared token of at least {MIN_TOKEN_LENGTH} characters (--token-file PATH or "
            f"${TOKEN_ENV}); generate one with `python3 -c 'import secrets; print(secrets.token_hex(16))'` and give "
            "the same one to the plugin (--robot.token_file or the same environment variable)"
        )
    return token.strip()


def check_host(host: str) -> str:
    """The interface to bind; wildcard addresses are refused."""
    if host in WILDCARD_HOSTS:
        raise ValueError(
            f"--host {host!r} would listen on every network interface of the robot; pass the address of the interface "
            "that faces the LeRobot PC (e.g. --host 192.168.1.10), or 127.0.0.1 with an SSH tunnel"
        )
    return host


class BridgeServer:
    """Serves one adapter on ``host:port`` (port 0 = any free port; see :attr:`address`).

    Args:
        adapter: the vendor adapter.
        host: the interface to bind (never a wildcard, :func:`check_host`).
        port: TCP port.
        token: shared secret every connection's ``hello`` must carry (:func:`check_token`).
        command_timeout_s: hold the arms when no request arrives for this long while a client is connected.
        max_step: largest change of a joint target per command against the measured pose and the last forwarded
            target (rad); larger steps are clamped.
    """

    def __init__(
        self,
        adapter: Adapter,
        host: str,
        port: int,
        token: str | None,
        command_timeout_s: float = 0.5,
        max_step: float = 0.1,
    ) -> None:
        if not max_step > 0:
            raise ValueError(f"--max-step must be > 0 rad, got {max_step}")
        self.adapter = adapter
        self.token = check_token(token)
        self.command_timeout_s = command_timeout_s
        self.max_step = float(max_step)
        self.holds = 0
        self.capped = 0  # commands the server had to clamp (a well-behaved client never needs it)
        self.refused_auth = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._last_target: list[float] | None = None
        self._clients = 0
        bridge = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with bridge._lock:
                    bridge._clients += 1
                    bridge._last = time.monotonic()
                authed = False
                try:
                    for line in self.rfile:
                        if (
                            getattr(bridge.adapter, "faults", None) is not None
                            and bridge.adapter.faults.disconnected
                        ):
                            return  # cable pulled: no reply, connection dropped
                        reply, authed = bridge.handle_line(line, authed)
                        self.wfile.write(encode(reply))
                        if reply.get("bye") or reply.get("code") == "auth":
                            return
                except (ConnectionError, OSError):
                    pass
                finally:
                    with bridge._lock:
                        bridge._clients -= 1
                    if authed:
                        bridge._safe_hold("client disconnected")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((check_host(host), port), Handler)
        self.address = self.server.server_address
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _safe_hold(self, why: str) -> None:
        try:
            self.adapter.hold()
            with self._lock:
                self._last_target = None
            self.holds += 1
            LOG.warning("holding the arms: %s", why)
        except Exception as e:  # noqa: BLE001 - keep serving
            LOG.error("hold failed (%s): %s", why, e)

    @staticmethod
    def _refuse(code: str, error: str | None) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, "ok": False, "code": code, "error": error}

    def handle_line(self, line: bytes, authed: bool = True) -> tuple[dict[str, Any], bool]:
        """One request line -> ``(reply, authenticated)``."""
        with self._lock:
            self._last = time.monotonic()
        try:
            msg = decode(line)
        except ValueError as e:
            return self._refuse("bad_request", f"not a JSON object: {e}"), authed
        if msg.get("v") != PROTOCOL_VERSION:
            return self._refuse(
                "version",
                f"bridge speaks protocol v{PROTOCOL_VERSION}, client sent v{msg.get('v')}; update the plugin or the "
                "bridge script",
            ), authed
        op = msg.get("op")
        if op == "hello":
            token = msg.get("token")
            if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
                self.refused_auth += 1
                LOG.warning("refused a client with a wrong or missing token")
                return self._refuse("auth", "wrong or missing token; use the bridge's token"), False
            authed = True
        elif not authed:
            self.refused_auth += 1
            return self._refuse("auth", "send hello with the bridge's token first"), False
        try:
            return self._handle_op(op, msg), authed
        except Exception as e:  # noqa: BLE001 - vendor errors go back to the client
            return self._refuse("robot_error", f"{type(e).__name__}: {e}"), authed

    def _handle_op(self, op: str | None, msg: dict[str, Any]) -> dict[str, Any]:
        if op == "hello":
            with self._lock:
                self._last_target = None
            return {
                "v": PROTOCOL_VERSION,
                "ok": True,
                "robot": self.adapter.name,
                "joints": ARM_JOINTS,
                "lower": [a for a, _ in self.adapter.limits],
                "upper": [b for _, b in self.adapter.limits],
                "grippers": GRIPPERS,
                "max_step": self.max_step,
            }
        if op == "state":
            q, g, t, err = self.adapter.read()
            if q is None:
                return self._refuse("robot_error", err)
            return {"v": PROTOCOL_VERSION, "ok": True, "q": q, "gripper": g, "t": t, "error": err}
        if op == "command":
            q, g = msg.get("q"), msg.get("gripper")
            if not (isinstance(q, list) and len(q) == 14 and isinstance(g, list) and len(g) == 2):
                return self._refuse("bad_request", "command needs q (14 floats) and gripper (2 floats)")
            if (
                not _finite(q + g)
                or any(v < lo or v > hi for v, (lo, hi) in zip(q, self.adapter.limits, strict=True))
                or any(x < 0 or x > 1 for x in g)
            ):
                return self._refuse(
                    "limits", "target outside the joint limits or gripper range; not forwarded"
                )
            measured, _, _, err = self.adapter.read()
            if measured is None or err:
                return self._refuse("robot_error", f"no usable state to cap the step against: {err}")
            with self._lock:
                last = self._last_target or measured
            target, changed = cap_step([float(v) for v in q], measured, last, self.max_step)
            if changed:
                self.capped += 1
                LOG.warning(
                    "clamped a step above %.3f rad on %s", self.max_step, [ARM_JOINTS[i] for i in changed]
                )
            self.adapter.command(target, [float(v) for v in g])
            with self._lock:
                self._last_target = target
            return {"v": PROTOCOL_VERSION, "ok": True, "capped": [ARM_JOINTS[i] for i in changed]}
        if op == "hold":
            self.adapter.hold()
            with self._lock:
                self._last_target = None
            return {"v": PROTOCOL_VERSION, "ok": True}
        if op == "bye":
            return {"v": PROTOCOL_VERSION, "ok": True, "bye": True}
        return self._refuse("bad_request", f"unknown op {op!r}")

    def _watchdog(self) -> None:
        held = False
        while not self._stop.wait(self.command_timeout_s / 4):
            with self._lock:
                stale = self._clients > 0 and time.monotonic() - self._last > self.command_timeout_s
            if stale and not held:
                self._safe_hold(f"no request for {self.command_timeout_s:.2f} s")
            held = stale

    def start(self) -> BridgeServer:
        """Serve in background threads (used by the plugin's sim backend and the tests)."""
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._watchdog, daemon=True),
        ]
        for th in self._threads:
            th.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.adapter.close()


def _load_limits(path: str | None) -> list[tuple[float, float]] | None:
    if not path:
        return None
    with open(path) as f:
        data = json.load(f)
    limits = [(float(lo), float(hi)) for lo, hi in zip(data["lower"], data["upper"], strict=False)]
    if len(limits) != 14 or len(data["lower"]) != len(data["upper"]):
        raise SystemExit("--limits-json needs 14 lower and 14 upper values (left 7 then right 7)")
    if any(not lo < hi for lo, hi in limits):
        raise SystemExit("--limits-json: every lower limit must be below its upper limit")
    return limits


def _read_token(path: str | None) -> str | None:
    if path:
        with open(os.path.expanduser(path)) as f:
            return f.read()
    return os.environ.get(TOKEN_ENV)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--robot", choices=["g1", "a2", "sim"], required=True)
    p.add_argument(
        "--host", required=True, help="address of the interface facing the LeRobot PC (no wildcard)"
    )
    p.add_argument("--port", type=int, default=5599)
    p.add_argument("--token-file", help=f"file holding the shared token (default: ${TOKEN_ENV})")
    p.add_argument("--command-timeout", type=float, default=0.5)
    p.add_argument("--max-step", type=float, default=0.1, help="largest joint step per command (rad)")
    p.add_argument(
        "--limits-json", help='{"lower": [14], "upper": [14]} rad, from your robot\'s URDF (required for g1)'
    )
    p.add_argument("--a2-rpc-host", default="192.168.100.100")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        token = check_token(_read_token(args.token_file))
        check_host(args.host)
        limits = _load_limits(args.limits_json)
        if args.robot == "g1" and limits is None:
            raise ValueError(
                "--robot g1 needs --limits-json: AgiBot does not publish the G1 joint limits; take the 14 joint "
                "ranges (left 7 then right 7, rad) from your robot's URDF"
            )
    except (ValueError, OSError) as e:
        raise SystemExit(f"agibot bridge: {e}") from None
    if args.robot == "g1":
        adapter = G1Adapter(limits)
    elif args.robot == "a2":
        adapter = A2Adapter(A2Ros2Transport(args.a2_rpc_host), limits=limits)
    else:
        adapter = SimAdapter(limits=limits, step_cap=args.max_step)
    server = BridgeServer(adapter, args.host, args.port, token, args.command_timeout, args.max_step)
    LOG.info("agibot bridge v%d serving %s on %s:%d", PROTOCOL_VERSION, adapter.name, *server.address[:2])
    watchdog = threading.Thread(target=server._watchdog, daemon=True)
    watchdog.start()
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._stop.set()
        server._safe_hold("bridge shutting down")
        adapter.close()


if __name__ == "__main__":
    main()
