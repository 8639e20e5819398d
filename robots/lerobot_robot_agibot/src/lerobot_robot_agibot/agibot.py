"""AgiBot G1 / A2 driver (LeRobot ``Robot``): a client of ``agibot_bridge_server.py`` over TCP.

The vendor SDKs need Python 3.10 (G1 ``a2d_sdk``, A2 ROS 2 Humble) while LeRobot 0.6 needs 3.12, so the SDK runs in
the bridge process and this driver speaks the bridge's versioned JSON-lines protocol
(:mod:`.agibot_bridge_server`). Safety is applied on both sides. Here, :class:`~lerobot_vla_plugins.robots.guarded.
GuardedArm`'s state machine: the guard (limits reported by the bridge minus ``limit_margin``, a per-step cap of
``min(max_relative_target, the bridge's max_step)`` against the measured pose and the last target, NaN -> hold),
feedback freshness on the vendor's state time stamp, the fault latch and the watchdog. In the bridge: a limit check,
its own step cap and its own watchdog (hold on silence or disconnect).

Connecting needs the bridge's shared token (``token_file`` or ``$AGIBOT_BRIDGE_TOKEN``). Faults (an error reported by
the robot, a state time stamp that stops advancing, a bridge that does not answer within ``request_timeout_s``) trip
the arm: the driver asks the bridge to hold (if it still answers) and latches the fault; a silent client is held by
the bridge itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading

import numpy as np

from lerobot_vla_plugins.robots.guarded import ArmState, GuardedArm
from lerobot_vla_plugins.robots.safety import JointLimits, RobotSafetyError, per_key

from .agibot_bridge_server import (
    ARM_JOINTS,
    PROTOCOL_VERSION,
    TOKEN_ENV,
    BridgeServer,
    SimAdapter,
    check_token,
    decode,
    encode,
)
from .config_agibot import AgiBotConfig

logger = logging.getLogger(__name__)


class BridgeClient:
    """Request/reply over one TCP connection (JSON lines, :data:`PROTOCOL_VERSION`)."""

    def __init__(self, host: str, port: int, timeout_s: float):
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as e:
            raise ConnectionError(
                f"agibot: cannot reach the bridge at {host}:{port} ({e}); start agibot_bridge_server.py on the robot "
                "(README, AgiBot) or use --robot.backend=sim"
            ) from e
        self.sock.settimeout(timeout_s)
        self.file = self.sock.makefile("rb")
        self.lock = threading.Lock()

    def request(self, op: str, **fields) -> dict:
        with self.lock:
            try:
                self.sock.sendall(encode({"v": PROTOCOL_VERSION, "op": op, **fields}))
                line = self.file.readline()
            except (OSError, ValueError) as e:
                raise RobotSafetyError(f"agibot: bridge link lost during {op!r}: {e}") from e
        if not line:
            raise RobotSafetyError(f"agibot: bridge link lost during {op!r} (connection closed)")
        reply = decode(line)
        if not reply.get("ok"):
            code = reply.get("code")
            if code in ("version", "auth"):
                raise ConnectionError(
                    f"agibot: the bridge refused the connection ({code}): {reply.get('error')}"
                )
            raise RobotSafetyError(f"agibot: bridge refused {op!r} ({code}): {reply.get('error')}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class AgiBot(GuardedArm):
    config_class = AgiBotConfig
    name = "agibot"

    def __init__(self, config: AgiBotConfig):
        super().__init__(config)
        self.client: BridgeClient | None = None
        self.server: BridgeServer | None = None  # the in-process bridge of backend="sim"
        self._hello: dict = {}

    def _motor_keys(self) -> list[str]:
        return [*(f"{j}.pos" for j in ARM_JOINTS), "left_gripper.pos", "right_gripper.pos"]

    def _token(self) -> str:
        cfg = self.config
        try:
            if cfg.token_file:
                with open(os.path.expanduser(cfg.token_file)) as f:
                    return check_token(f.read())
            return check_token(os.environ.get(TOKEN_ENV))
        except (OSError, ValueError) as e:
            raise ConnectionError(f"agibot: {e}") from e

    def _open(self) -> None:
        cfg = self.config
        host, port = cfg.host, cfg.port
        if cfg.backend == "sim":
            token = secrets.token_hex(16)
            cap = per_key(cfg.max_relative_target, self._motor_keys(), "agibot.max_relative_target")[:14]
            max_step = float(min(0.1, cap.min()))
            self.server = BridgeServer(
                SimAdapter(step_cap=max_step),
                "127.0.0.1",
                0,
                token,
                command_timeout_s=max(0.5, cfg.command_timeout_s),
                max_step=max_step,
            ).start()
            host, port = self.server.address[:2]
        else:
            token = self._token()
        self.client = BridgeClient(host, port, cfg.request_timeout_s)
        self._hello = hello = self.client.request(
            "hello", client=f"lerobot_robot_agibot/{cfg.model}", token=token
        )
        if cfg.backend == "sdk" and hello["robot"] != cfg.model:
            raise ConnectionError(
                f"agibot: the bridge serves {hello['robot']!r} but --robot.model={cfg.model!r}; restart the bridge "
                "with the matching --robot"
            )

    def _joint_limits(self) -> JointLimits:
        names = tuple(self._motor_keys())
        return JointLimits(
            names, (*self._hello["lower"], 0.0, 0.0), (*self._hello["upper"], 1.0, 1.0), (1.0,) * len(names)
        )

    def _step_cap(self) -> dict[str, float]:
        """``max_relative_target`` per key, joints no larger than the bridge's ``max_step`` (never clamped twice)."""
        names = self._motor_keys()
        cap = per_key(self.config.max_relative_target, names, "agibot.max_relative_target")
        cap[:14] = np.minimum(cap[:14], float(self._hello["max_step"]))
        return {k: float(c) for k, c in zip(names, cap, strict=True) if np.isfinite(c)}

    def _read_state(self) -> ArmState:
        st = self.client.request("state")
        if st.get("error"):
            raise RobotSafetyError(f"agibot: robot reports an error: {st['error']}; stopped")
        return ArmState(np.array([*st["q"], *st["gripper"]], dtype=float), {"state": st["t"]})

    def _send_target(self, q: np.ndarray) -> None:
        values = q.tolist()
        self.client.request("command", q=values[:14], gripper=values[14:])

    def _hold(self, q: np.ndarray) -> None:
        self.client.request("hold")

    def _stop(self, hold: np.ndarray | None) -> None:
        if self.client is not None:
            self.client.request("hold")  # fails on a lost link: the bridge then holds by itself

    def _close(self) -> None:
        if self.client is not None:
            try:
                if not self.tripped:
                    self.client.request("bye")  # the bridge holds the arms and closes
            except Exception as e:
                logger.warning("agibot: bye failed: %s", e)
            self.client.close()
            self.client = None
        if self.server is not None:
            self.server.stop()
