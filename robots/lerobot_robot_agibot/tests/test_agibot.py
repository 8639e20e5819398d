"""agibot driver <-> bridge server over loopback TCP: protocol, token, safety on both sides, G1/A2 adapters.

The fuzz and fault suites shared by every arm are in ``tests/robots/test_guarded_arms.py``."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import lerobot_robot_agibot.agibot_bridge_server as bridge
import pytest
from lerobot.robots.config import RobotConfig
from lerobot.robots.utils import make_robot_from_config
from lerobot_robot_agibot import AgiBotConfig
from lerobot_robot_agibot.agibot import AgiBot, BridgeClient
from lerobot_vla_tools.testing.robots import connected, wait_until

from lerobot_vla_plugins.robots.safety import RobotSafetyError

TOKEN = "0123456789abcdef-test-token"
G1_LIMITS = [(-2.5, 2.5)] * 14  # what a --limits-json from a URDF provides


@pytest.fixture
def robot(tmp_path):
    with connected(AgiBotConfig(backend="sim", calibration_dir=tmp_path)) as r:
        yield r


def adapter(robot) -> bridge.SimAdapter:
    return robot.server.adapter


def raw(address, *messages) -> list[dict]:
    """Sends JSON lines on one fresh connection; returns the replies (until the server closes it)."""
    with socket.create_connection(address[:2], timeout=2) as s:
        f = s.makefile("rb")
        replies = []
        for m in messages:
            s.sendall(json.dumps(m).encode() + b"\n")
            line = f.readline()
            if not line:
                break
            replies.append(json.loads(line))
        return replies


def hello(token=TOKEN) -> dict:
    return {"v": bridge.PROTOCOL_VERSION, "op": "hello", "client": "raw", "token": token}


def sim_server(**kw) -> bridge.BridgeServer:
    return bridge.BridgeServer(bridge.SimAdapter(), "127.0.0.1", 0, TOKEN, **kw).start()


def test_type_is_registered_and_lerobot_builds_the_driver(tmp_path):
    assert RobotConfig.get_choice_class("agibot") is AgiBotConfig
    r = make_robot_from_config(AgiBotConfig(backend="sim", calibration_dir=tmp_path))
    assert isinstance(r, AgiBot) and len(r.action_features) == 16


def test_bridge_script_is_standalone_python_3_10_stdlib():
    src = Path(bridge.__file__).read_text()
    ast.parse(src, feature_version=(3, 10))
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import)}
    imported |= {
        n.module.split(".")[0] for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "a2d_sdk", "rclpy", "sensor_msgs"}


def test_sim_backend_talks_tcp_to_an_in_process_bridge(robot):
    assert robot.server.address[0] == "127.0.0.1"
    assert robot.client.sock.getpeername()[1] == robot.server.address[1]


def test_connect_does_not_move_and_targets_are_reached(robot):
    a = adapter(robot)
    q0 = list(a.read()[0])
    wait_until(lambda: False, timeout=0.2)
    assert a.read()[0] == pytest.approx(q0) and a.commands == 0
    keys = list(robot.action_features)
    goal = [q + 0.05 for q in q0]
    action = {**dict(zip(keys[:14], goal, strict=True)), "left_gripper.pos": 0.3, "right_gripper.pos": 0.0}
    assert wait_until(
        lambda: robot.send_action(action) is not None and a.read()[0] == pytest.approx(goal, abs=1e-3),
        timeout=3.0,
        period=1 / 30,
    )
    assert a.above_step_cap == 0


def test_protocol_version_mismatch_is_a_clear_error(robot):
    (reply,) = raw(robot.server.address, {"v": 99, "op": "hello"})
    assert reply["ok"] is False and reply["code"] == "version" and "protocol v2" in reply["error"]


def test_a_client_without_the_token_gets_nothing_and_is_dropped():
    server = sim_server()
    try:
        replies = raw(server.address, {"v": bridge.PROTOCOL_VERSION, "op": "state"}, hello())
        assert [r["code"] for r in replies] == ["auth"]  # refused, then the connection was closed
        (reply,) = raw(server.address, hello(token="wrong-token-0000000"))
        assert reply["code"] == "auth"
        assert raw(server.address, hello(), {"v": bridge.PROTOCOL_VERSION, "op": "state"})[1]["ok"] is True
    finally:
        server.stop()
    assert server.adapter.commands == 0 and server.refused_auth == 2


def test_the_driver_with_a_wrong_token_cannot_connect(tmp_path):
    server = bridge.BridgeServer(
        bridge.G1Adapter(G1_LIMITS, sdk_module=types.SimpleNamespace(RobotDds=FakeRobotDds)),
        "127.0.0.1",
        0,
        TOKEN,
    ).start()
    token_file = tmp_path / "token"
    token_file.write_text("another-secret-0123456789")
    try:
        r = make_robot_from_config(
            AgiBotConfig(port=server.address[1], token_file=str(token_file), calibration_dir=tmp_path)
        )
        with pytest.raises(ConnectionError, match="refused the connection \\(auth\\)"):
            r.connect()
    finally:
        server.stop()
    assert server.adapter.robot.moves == []


def test_the_bridge_refuses_targets_outside_limits_even_from_a_raw_client():
    server = sim_server()
    try:
        replies = raw(
            server.address,
            hello(),
            {"v": bridge.PROTOCOL_VERSION, "op": "command", "q": [10.0] * 14, "gripper": [0.0, 0.0]},
            {"v": bridge.PROTOCOL_VERSION, "op": "command", "q": [0.0] * 3, "gripper": [0.0, 0.0]},
        )
        assert [r.get("code") for r in replies[1:]] == ["limits", "bad_request"]
    finally:
        server.stop()
    assert server.adapter.commands == 0  # never forwarded


def test_the_bridge_caps_a_raw_clients_jump_to_its_max_step():
    """A raw client asked for a 2.93 rad jump on left_joint_1: the bridge forwards at most max_step (0.1 rad) from
    the measured pose, and the simulated arm counts no step above it."""
    server = sim_server(max_step=0.1)
    forwarded, command = [], server.adapter.command
    # what the bridge forwards (the arm's target itself goes back to the measured pose when the client hangs up)
    server.adapter.command = lambda q, gripper: (forwarded.append(list(q)), command(q, gripper))[1]
    try:
        server.adapter.q[0] = server.adapter.target[
            0
        ] = -1.46  # -1.46 -> +1.47: both inside the +-2.91 limits
        q, _, _, _ = server.adapter.read()
        jump = [q[0] + 2.93, *q[1:]]
        _, reply = raw(
            server.address,
            hello(),
            {"v": bridge.PROTOCOL_VERSION, "op": "command", "q": jump, "gripper": [0.0, 0.0]},
        )
        assert reply["ok"] and reply["capped"] == ["left_joint_1"]
        assert len(forwarded) == 1 and forwarded[0][0] == pytest.approx(q[0] + 0.1)
        assert forwarded[0][1:] == pytest.approx(q[1:])
        assert server.adapter.above_step_cap == 0 and server.capped == 1
    finally:
        server.stop()


def test_the_driver_caps_to_the_bridges_max_step_so_the_bridge_never_has_to(robot):
    assert robot.guard.cap[:14] == pytest.approx([robot.server.max_step] * 14)
    obs = robot.get_observation()
    robot.send_action({k: obs[k] + 5.0 for k in list(robot.action_features)[:14]})
    assert robot.server.capped == 0


def test_the_bridge_holds_when_the_client_goes_silent(robot):
    robot.send_action({})
    holds = robot.server.holds
    robot._stop_event.set()  # silence the driver's monitor: no request reaches the bridge any more
    assert wait_until(lambda: robot.server.holds > holds, timeout=2.0)


def test_link_loss_mid_episode_raises_and_the_bridge_holds(robot):
    robot.send_action({})
    holds = robot.server.holds
    adapter(robot).faults.disconnected = True
    with pytest.raises(RobotSafetyError, match="bridge link lost"):
        robot.send_action({})
    assert wait_until(lambda: robot.server.holds > holds)  # server side: client gone -> hold


class FakeRobotDds:
    """a2d_sdk.RobotDds at its boundary: the G1 calls the adapter makes, with G1 return shapes."""

    def __init__(self):
        self.q = [0.1] * 14
        self.g = [0.2, 0.4]
        self.moves = []

    def arm_joint_states(self):
        return list(self.q), time.time()

    def gripper_states(self):
        return list(self.g), time.time()

    def move_arm(self, q):
        self.moves.append(list(q))
        self.q = list(q)

    def move_gripper(self, g):
        self.g = list(g)

    def shutdown(self):
        pass


def g1_server() -> bridge.BridgeServer:
    sdk = types.SimpleNamespace(RobotDds=FakeRobotDds)
    return bridge.BridgeServer(bridge.G1Adapter(G1_LIMITS, sdk_module=sdk), "127.0.0.1", 0, TOKEN).start()


def test_g1_adapter_over_loopback_tcp_drives_the_vendor_calls(tmp_path, monkeypatch):
    monkeypatch.setenv(bridge.TOKEN_ENV, TOKEN)
    server = g1_server()
    try:
        r = make_robot_from_config(AgiBotConfig(model="g1", port=server.address[1], calibration_dir=tmp_path))
        r.connect()
        obs = r.get_observation()
        assert obs["left_joint_1.pos"] == pytest.approx(0.1) and obs["right_gripper.pos"] == pytest.approx(
            0.4
        )
        sent = r.send_action({**dict.fromkeys(list(r.action_features)[:14], 0.15), "left_gripper.pos": 1.0})
        dds = server.adapter.robot
        assert dds.moves[-1] == pytest.approx([sent[k] for k in list(r.action_features)[:14]])
        assert dds.moves[-1] == pytest.approx([0.15] * 14)
        assert dds.g == pytest.approx([0.3, 0.4])  # 0.2 + cap 0.1
        assert r.guard.upper[:14] == pytest.approx([2.5] * 14)  # the limits the bridge was given
        r.disconnect()
    finally:
        server.stop()


def test_g1_without_real_limits_is_refused():
    with pytest.raises(ValueError, match="does not publish the G1 joint limits"):
        bridge.G1Adapter(None, sdk_module=types.SimpleNamespace(RobotDds=FakeRobotDds))


def test_model_mismatch_between_plugin_and_bridge_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(bridge.TOKEN_ENV, TOKEN)
    server = g1_server()
    try:
        r = make_robot_from_config(AgiBotConfig(model="a2", port=server.address[1], calibration_dir=tmp_path))
        with pytest.raises(ConnectionError, match="serves 'g1'"):
            r.connect()
    finally:
        server.stop()


def test_the_bridge_refuses_a_wildcard_interface_and_a_missing_token():
    with pytest.raises(ValueError, match="every network interface"):
        bridge.BridgeServer(bridge.SimAdapter(), "0.0.0.0", 0, TOKEN)  # noqa: S104 - refused
    with pytest.raises(ValueError, match="shared token of at least 16"):
        bridge.BridgeServer(bridge.SimAdapter(), "127.0.0.1", 0, "short")


class FakeA2Transport:
    """A2's ROS 2 topics + HTTP RPC at their boundary."""

    def __init__(self):
        self.ext_actions, self.arm_cmds, self.hand_cmds = [], [], []

    def set_ext_action(self, name):
        self.ext_actions.append(name)

    def publish_arm(self, names, positions):
        self.arm_cmds.append((list(names), list(positions)))

    def publish_hand(self, names, positions):
        self.hand_cmds.append((list(names), list(positions)))

    def latest_arm(self):
        names = bridge.A2_ARM_NAMES[::-1]  # topic order differs from ours: the adapter maps by name
        return names, [0.01 * (bridge.A2_ARM_NAMES.index(n) + 1) - 0.5 * ("right" in n) for n in names], 12.5

    def latest_hand(self):
        return ["left_hand_joint1", "left_hand_joint2", "right_hand_joint1"], [0.5, 0.7, 0.2]


def test_a2_adapter_switches_to_joint_servo_and_maps_topics_by_name():
    t = FakeA2Transport()
    a = bridge.A2Adapter(transport=t)
    assert t.ext_actions == ["PASSIVE_UPPER_BODY_JOINT_SERVO"]
    q, g, stamp, err = a.read()
    assert q[0] == pytest.approx(0.01) and q[7] == pytest.approx(0.08 - 0.5) and stamp == 12.5 and err is None
    assert g == pytest.approx([0.6, 0.2])  # mean finger flexion per side
    a.command([0.0] * 14, [1.0, 0.0])
    assert t.arm_cmds[-1][0] == bridge.A2_ARM_NAMES and t.hand_cmds[-1][1] == [1.0] * 6 + [0.0] * 6


def run_script(*args, env=None, timeout=30) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != bridge.TOKEN_ENV}, **(env or {})}
    return subprocess.run(
        [sys.executable, bridge.__file__, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--robot", "g1", "--host", "127.0.0.1"],
            {bridge.TOKEN_ENV: TOKEN},
            "--robot g1 needs --limits-json",
        ),
        (["--robot", "sim", "--host", "0.0.0.0"], {bridge.TOKEN_ENV: TOKEN}, "every network interface"),  # noqa: S104
        (["--robot", "sim", "--host", "127.0.0.1"], {}, "shared token"),
        (["--robot", "sim"], {bridge.TOKEN_ENV: TOKEN}, "--host"),
    ],
    ids=["g1-without-limits", "wildcard-host", "no-token", "no-host"],
)
def test_the_bridge_script_refuses_to_start_unsafely(args, env, message):
    proc = run_script(*args, env=env)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_bridge_script_runs_as_a_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            bridge.__file__,
            "--robot",
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        c = None
        for _ in range(100):
            try:
                c = BridgeClient("127.0.0.1", port, 1.0)
                break
            except ConnectionError:
                time.sleep(0.05)
        assert c is not None
        assert c.request("hello", client="test", token=TOKEN)["robot"] == "sim"
        assert len(c.request("state")["q"]) == 14
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
