"""``lerobot-vla-serve`` over loopback with LeRobot's unchanged ``RobotClient`` driving a simulated PiPer.

Each policy gets a tiny checkpoint (its ``lerobot-vla-speed`` tiny case, random weights) whose features are the
robot's: 7 joint keys (6 joints + gripper) and one 48x64 camera. Runs are bounded: the client is stopped after a
fixed number of commanded actions or a deadline.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("grpc")
pytest.importorskip("lerobot_robot_agilex_piper")

H, W = 48, 64
CAMERAS = {"front": (H, W)}
TASK = "pick up the can"
#: tiny bench case per served policy type of this collection (+ LeRobot's evo1)
CASES = {
    "evo1": "evo1@tiny",
    "a1": "a1 (tiny, flow matching)@tiny",
    "vla_adapter": "vla_adapter (pro, tiny)@tiny",
    "seer": "seer@tiny",
    "vita_vla": "vita_vla@tiny",
}


@pytest.fixture
def client_log():
    """The messages of LeRobot's ``robot_client`` logger during the test."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("robot_client")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def free_port() -> int:
    """A loopback port nothing listens on (LeRobot's server config refuses port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _logs_in_tmp(tmp_path, monkeypatch):
    """LeRobot's async-inference loggers write ``logs/`` into the working directory."""
    monkeypatch.chdir(tmp_path)


def piper_limits() -> tuple[list[float], list[float]]:
    from lerobot_robot_agilex_piper.sim_piper import PIPER_JOINT_LOWER, PIPER_JOINT_UPPER

    return [*PIPER_JOINT_LOWER, 0.0], [*PIPER_JOINT_UPPER, 1.0]


def piper_config(tmp_path: Path, cameras: dict[str, tuple[int, int]] = CAMERAS):
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot_robot_agilex_piper import PiperConfig

    cams = {
        n: OpenCVCameraConfig(index_or_path=0, width=w, height=h, fps=30) for n, (h, w) in cameras.items()
    }
    return PiperConfig(backend="sim", calibration_dir=tmp_path / "calib", cameras=cams)


def build_checkpoint(policy_type: str, out_dir: Path, scratch: Path, **extra) -> Path:
    """A tiny random-weight checkpoint of ``policy_type`` with the simulated PiPer's features (``extra``: more
    config overrides)."""
    import torch
    from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors
    from lerobot.utils.import_utils import register_third_party_plugins
    from lerobot_vla_tools.speed import iter_cases
    from lerobot_vla_tools.testing.robot_policy import robot_features, save_checkpoint

    register_third_party_plugins()
    (case,) = [c for c in iter_cases() if c.key == CASES[policy_type]]
    inputs, outputs, stats = robot_features(*piper_limits(), CAMERAS)
    cfg = make_policy_config(policy_type, **{**case.resolve_overrides(scratch), **extra})
    cfg.input_features, cfg.output_features, cfg.device = inputs, outputs, "cpu"
    cfg.push_to_hub = False
    torch.manual_seed(0)
    policy = get_policy_class(policy_type)(cfg)
    return save_checkpoint(out_dir, policy, *make_pre_post_processors(cfg, dataset_stats=stats))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """``{policy_type: checkpoint}``, built on first use."""
    root = tmp_path_factory.mktemp("serve_ckpts")
    built: dict[str, Path] = {}

    def get(policy_type: str) -> Path:
        if policy_type not in built:
            # VITA-VLA's decoder comes from a Seer teacher with the same action layout (the kit's is 4-D)
            extra = {}
            if policy_type == "vita_vla":
                teacher = build_checkpoint("seer", root / "seer_teacher", root / "scratch", history_length=2)
                extra = {"teacher_path": str(teacher)}
            built[policy_type] = build_checkpoint(policy_type, root / policy_type, root / "scratch", **extra)
        return built[policy_type]

    return get


@pytest.fixture
def server():
    """An in-process ``VLAPolicyServer`` on a free loopback port; yields ``(grpc server, servicer, port)``."""
    from lerobot.async_inference.configs import PolicyServerConfig
    from lerobot_vla_tools.serve import start_server

    srv, servicer, port = start_server(
        PolicyServerConfig(
            host="127.0.0.1", port=free_port(), fps=30, inference_latency=0.0, obs_queue_timeout=0.5
        )
    )
    yield srv, servicer, port
    srv.stop(grace=0)


def client_config(tmp_path: Path, policy_type: str, ckpt: Path, port: int, **robot_kw):
    from lerobot.async_inference.configs import RobotClientConfig

    return RobotClientConfig(
        policy_type=policy_type,
        pretrained_name_or_path=str(ckpt),
        robot=piper_config(tmp_path, **robot_kw),
        actions_per_chunk=8,
        task=TASK,
        server_address=f"127.0.0.1:{port}",
        fps=30,
        chunk_size_threshold=0.5,
    )


class ClientRun:
    """LeRobot's ``RobotClient`` with its two threads (as ``robot_client.async_client`` runs them), counting the
    actions its control loop commands to the robot."""

    def __init__(self, cfg):
        from lerobot.async_inference.robot_client import RobotClient

        self.client = RobotClient(cfg)
        self.robot = self.client.robot
        self.sent: list[dict] = []
        self.holds_at_last_send = 0  # the driver's watchdog holds counted when the last action was sent
        send = self.robot.send_action

        def counting_send(action):
            self.sent.append(action)
            out = send(action)
            self.holds_at_last_send = getattr(self.robot, "holds", 0)
            return out

        self.robot.send_action = counting_send
        self.threads = [
            threading.Thread(target=self.client.receive_actions, daemon=True),
            threading.Thread(target=self.client.control_loop, kwargs={"task": TASK}, daemon=True),
        ]

    def start(self) -> bool:
        if not self.client.start():
            return False
        for t in self.threads:
            t.start()
        return True

    def stop(self) -> None:
        self.client.shutdown_event.set()
        for t in self.threads:
            t.join(timeout=10)
        self.client.stop()


def wait_until(pred, timeout: float, period: float = 0.02) -> bool:
    from lerobot_vla_tools.testing.robots import wait_until as wait

    return wait(pred, timeout=timeout, period=period)


def test_every_policy_of_ours_and_evo1_is_served():
    from lerobot_vla_tools.serve import served_policy_types

    served = set(served_policy_types())
    assert set(CASES) <= served  # the four plugin types and LeRobot's evo1
    assert {"act", "smolvla", "pi0"} <= served  # LeRobot's own list stays served


@pytest.mark.parametrize("policy_type", list(CASES))
def test_robot_client_drives_the_sim_arm_with_served_actions(policy_type, server, checkpoints, tmp_path):
    _, servicer, port = server
    run = ClientRun(client_config(tmp_path, policy_type, checkpoints(policy_type), port))
    assert run.start()
    try:
        assert wait_until(lambda: len(run.sent) >= 12, timeout=180), "fewer than 12 actions in 180 s"
    finally:
        run.stop()
    assert servicer.policy.config.type == policy_type
    keys = list(run.robot.action_features)
    assert len(keys) == len(piper_limits()[0])  # 6 joints + gripper, the policy's action dimension
    for action in run.sent:  # the client commands every key the policy chunks carry, as finite numbers
        assert list(action) == keys
        assert all(float("-inf") < action[k] < float("inf") for k in keys)
    counts = run.robot.firmware.dyn.check
    assert counts.outside_limits == 0 and counts.non_finite == 0  # the guard kept the arm within its limits


def refused_start(cfg, client_log) -> tuple[str, ClientRun]:
    """Start LeRobot's client on ``cfg``, expecting it to fail; returns (what it logged, the run)."""
    run = ClientRun(cfg)
    try:
        assert run.start() is False
    finally:
        run.client.stop()
    return "\n".join(client_log), run


def test_client_without_a_server_fails_to_start_and_moves_nothing(tmp_path, client_log):
    logged, run = refused_start(
        client_config(tmp_path, "evo1", tmp_path / "no_ckpt", free_port()), client_log
    )
    assert "Failed to connect to policy server" in logged
    assert run.sent == []


def test_wrong_policy_type_is_refused_with_the_fix(server, checkpoints, tmp_path, client_log):
    _, servicer, port = server
    logged, run = refused_start(client_config(tmp_path, "a1", checkpoints("evo1"), port), client_log)
    assert "is a 'evo1' policy; pass --policy_type=evo1" in logged
    assert servicer.policy is None and run.sent == []


def test_unserved_policy_type_is_refused_listing_the_served_types(server, checkpoints, tmp_path, client_log):
    _, servicer, port = server
    logged, run = refused_start(
        client_config(tmp_path, "not_a_policy", checkpoints("evo1"), port), client_log
    )
    assert "--policy_type='not_a_policy' is not served" in logged and "vla_adapter" in logged


def test_robot_features_that_do_not_match_the_policy_are_refused(server, checkpoints, tmp_path, client_log):
    _, servicer, port = server
    cams = {"front": (H, W), "wrist": (H, W)}  # one camera more than the policy was trained with
    logged, run = refused_start(
        client_config(tmp_path, "evo1", checkpoints("evo1"), port, cameras=cams), client_log
    )
    assert "trained with cameras ['observation.images.front']" in logged
    assert "'observation.images.wrist'" in logged and "--rename_map" in logged
    assert servicer.policy is None


def test_state_shape_mismatch_names_both_shapes(checkpoints):
    from lerobot.async_inference.helpers import RemotePolicyConfig
    from lerobot_vla_tools.serve import check_policy_instructions

    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "observation.images.front": {"dtype": "image", "shape": (H, W, 3), "names": None},
    }
    problem = check_policy_instructions(RemotePolicyConfig("evo1", str(checkpoints("evo1")), features, 8))
    assert "observation.state: the policy was trained on (7,), the robot sends (6,)" in problem


def test_a_server_killed_mid_run_leaves_the_arm_holding_with_no_new_targets(checkpoints, tmp_path):
    """The server process is SIGKILLed while the client runs: the client commands what is left in its queue (at
    most one chunk), then nothing; the driver's watchdog holds the measured pose."""
    from lerobot_vla_tools.testing.fixtures import lerobot_env

    ckpt, port = checkpoints("evo1"), free_port()
    exe = Path(sys.executable).parent / "lerobot-vla-serve"
    proc = subprocess.Popen(
        [str(exe), "--host=127.0.0.1", f"--port={port}", "--inference_latency=0", "--obs_queue_timeout=0.5"],
        cwd=tmp_path,
        env=lerobot_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    run = None
    try:
        run = ClientRun(client_config(tmp_path, "evo1", ckpt, port))
        assert wait_until(run.client.start, timeout=120, period=0.5), "the server did not come up in 120 s"
        for t in run.threads:
            t.start()
        assert wait_until(lambda: len(run.sent) >= 12, timeout=120)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: not run.client.actions_available(), timeout=5)
        time.sleep(0.1)  # the control loop's last pop is committed
        after_drain = len(run.sent)
        arm = run.robot
        # the watchdog (command_timeout_s = 0.2 s) held the measured pose after the last action
        assert wait_until(lambda: arm.holds > run.holds_at_last_send, timeout=2)
        time.sleep(1.0)  # 30 control ticks
        assert len(run.sent) == after_drain  # no action reached the arm after the queue emptied
        assert arm.fault is None  # held, not tripped: the arm is ready once a server is back
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if run is not None:
            run.stop()


def test_policy_instructions_that_are_not_a_remote_policy_config_are_refused(server):
    import grpc
    from lerobot.transport import services_pb2, services_pb2_grpc

    _, _, port = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = services_pb2_grpc.AsyncInferenceStub(channel)
        stub.Ready(services_pb2.Empty())
        with pytest.raises(grpc.RpcError) as err:
            stub.SendPolicyInstructions(services_pb2.PolicySetup(data=pickle.dumps({"policy_type": "a1"})))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must be a RemotePolicyConfig, got dict" in err.value.details()


def test_serve_command_refuses_a_bad_port_naming_it(capsys):
    from lerobot_vla_tools.serve.server import main

    assert main(["--port=0"]) == 2
    assert "Port must be between 1 and 65535, got 0" in capsys.readouterr().err
