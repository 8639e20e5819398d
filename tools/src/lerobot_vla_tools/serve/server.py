"""``lerobot-vla-serve``: LeRobot's async-inference ``PolicyServer`` for every policy of this collection.

LeRobot 0.6.1's ``lerobot.async_inference.policy_server`` refuses any policy type outside its hard-coded
``SUPPORTED_POLICIES`` (act, smolvla, diffusion, ...). :class:`VLAPolicyServer` is that server with one method
replaced, ``SendPolicyInstructions``: it serves those types plus ``evo1`` and every policy type a
``lerobot_policy_*`` plugin registers (a1, seer, vita_vla, vla_adapter), and checks the client's instructions
before loading anything (policy type against the checkpoint, the robot's observation features against the
policy's, the device). A bad request is refused with ``INVALID_ARGUMENT`` and a message naming the field and the
fix, which LeRobot's ``RobotClient`` prints ("Failed to connect to policy server: ...") before it exits.
Observations, action chunks, timing and the wire format are LeRobot's own (the rest of ``PolicyServer``).

Usage (the robot side is LeRobot's unchanged client)::

    lerobot-vla-serve --host=0.0.0.0 --port=8080 --fps=30
    python -m lerobot.async_inference.robot_client --robot.type=xarm6 ... \\
        --server_address=<gpu-host>:8080 --policy_type=a1 --pretrained_name_or_path=<ckpt> \\
        --policy_device=cuda --actions_per_chunk=50
"""

from __future__ import annotations

import functools
import logging
import pickle  # nosec: LeRobot's protocol pickles its messages; serve trusted networks only
import sys
import time
from concurrent import futures
from dataclasses import asdict
from pprint import pformat

import draccus
import grpc
from lerobot.async_inference.configs import PolicyServerConfig
from lerobot.async_inference.constants import SUPPORTED_POLICIES
from lerobot.async_inference.helpers import RemotePolicyConfig
from lerobot.async_inference.policy_server import PolicyServer
from lerobot.transport import services_pb2, services_pb2_grpc  # type: ignore

#: LeRobot's own policy types this server adds to ``SUPPORTED_POLICIES`` (evo1 is LeRobot's, not ours).
UPSTREAM_EXTRA = ("evo1",)


@functools.cache
def served_policy_types() -> tuple[str, ...]:
    """LeRobot's ``SUPPORTED_POLICIES``, ``evo1``, and every type registered by a ``lerobot_policy_*`` plugin."""
    import lerobot.policies  # noqa: F401  (registers the built-in policy types)
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    ours = [
        name
        for name, cls in PreTrainedConfig.get_known_choices().items()
        if cls.__module__.startswith("lerobot_policy_")
    ]
    return tuple(dict.fromkeys([*SUPPORTED_POLICIES, *UPSTREAM_EXTRA, *sorted(ours)]))


def _robot_keys(specs: RemotePolicyConfig) -> dict[str, tuple]:
    """The robot's observation keys (``observation.state``, ``observation.images.<cam>``) after the client's
    ``rename_map``, with their shapes."""
    out = {}
    for key, feat in specs.lerobot_features.items():
        shape = tuple(feat["shape"]) if isinstance(feat, dict) else tuple(feat.shape)
        out[specs.rename_map.get(key, key)] = shape
    return out


def check_policy_instructions(specs: RemotePolicyConfig) -> str | None:
    """What is wrong with a client's policy instructions (None: they can be served).

    Checks, in order: the policy type is served; the checkpoint's ``config.json`` can be read and its type is the
    one the client named; the device exists here; the robot's state has the policy's state shape; the robot's
    cameras (after ``rename_map``) are exactly the policy's image features (LeRobot's server resizes each robot
    camera to the policy feature of the same key, so an extra camera fails as surely as a missing one).
    """
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.configs.types import FeatureType

    served = served_policy_types()
    if specs.policy_type not in served:
        return (
            f"--policy_type={specs.policy_type!r} is not served by lerobot-vla-serve; served types: "
            f"{', '.join(served)}"
        )
    path = specs.pretrained_name_or_path
    try:
        cfg = PreTrainedConfig.from_pretrained(path)
    except Exception as err:  # noqa: BLE001  (any reason the checkpoint cannot be read is reported)
        return (
            f"--pretrained_name_or_path={path!r}: cannot read the policy config on the server "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); the path is read on the "
            "server machine: copy the checkpoint there or pass a Hub repo id"
        )
    if cfg.type != specs.policy_type:
        return (
            f"--policy_type={specs.policy_type!r} but the checkpoint at {path!r} is a {cfg.type!r} policy; "
            f"pass --policy_type={cfg.type}"
        )
    if str(specs.device).startswith("cuda") and not torch.cuda.is_available():
        return f"--policy_device={specs.device!r}: the server has no CUDA device; pass --policy_device=cpu"
    robot = _robot_keys(specs)
    problems = []
    for key, feat in cfg.input_features.items():
        if feat.type is FeatureType.STATE:
            if key not in robot:
                problems.append(f"the policy needs {key} {tuple(feat.shape)}, the robot sends none")
            elif tuple(robot[key]) != tuple(feat.shape):
                problems.append(
                    f"{key}: the policy was trained on {tuple(feat.shape)}, the robot sends {robot[key]}"
                )
    policy_cams = sorted(k for k, f in cfg.input_features.items() if f.type is FeatureType.VISUAL)
    robot_cams = sorted(k for k in robot if k.startswith("observation.images."))
    if policy_cams != robot_cams:
        problems.append(f"the policy was trained with cameras {policy_cams}, the robot sends {robot_cams}")
    if problems:
        return (
            f"robot and {cfg.type} policy at {path!r} do not match: {'; '.join(problems)}. Configure the robot's "
            "cameras/joints to match, pass --rename_map, or retrain the policy on this robot's features"
        )
    return None


class VLAPolicyServer(PolicyServer):
    """LeRobot's ``PolicyServer`` serving :func:`served_policy_types`, with the instructions checked first."""

    def SendPolicyInstructions(  # noqa: N802  (gRPC method name)
        self, request: services_pb2.PolicySetup, context: grpc.ServicerContext
    ) -> services_pb2.Empty:
        """Check the client's :class:`RemotePolicyConfig`, then load the policy and its processors as LeRobot's
        server does (device and ``rename_map`` overrides); refuse with ``INVALID_ARGUMENT`` and the fix."""
        if not self.running:
            self.logger.warning("Server is not running. Ignoring policy instructions.")
            return services_pb2.Empty()
        specs = pickle.loads(request.data)  # nosec
        problem = (
            f"policy instructions must be a RemotePolicyConfig, got {type(specs).__name__}"
            if not isinstance(specs, RemotePolicyConfig)
            else check_policy_instructions(specs)
        )
        if problem is not None:
            self.logger.error(f"Refusing the policy instructions of {context.peer()}: {problem}")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        self.logger.info(
            f"Policy instructions from {context.peer()} | type: {specs.policy_type} | path: "
            f"{specs.pretrained_name_or_path} | actions per chunk: {specs.actions_per_chunk} | device: {specs.device}"
        )
        self.load_policy(specs)
        return services_pb2.Empty()

    def load_policy(self, specs: RemotePolicyConfig) -> None:
        """Load the policy and its pre/post-processors for ``specs`` (what LeRobot's server does after its type
        check)."""
        from lerobot.policies import get_policy_class, make_pre_post_processors

        self.device = specs.device
        self.policy_type = specs.policy_type
        self.lerobot_features = specs.lerobot_features
        self.actions_per_chunk = specs.actions_per_chunk
        start = time.perf_counter()
        self.policy = get_policy_class(specs.policy_type).from_pretrained(specs.pretrained_name_or_path)
        self.policy.to(self.device)
        self.policy.eval()
        device_override = {"device": self.device}
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            self.policy.config,
            pretrained_path=specs.pretrained_name_or_path,
            preprocessor_overrides={
                "device_processor": device_override,
                "rename_observations_processor": {"rename_map": specs.rename_map},
            },
            postprocessor_overrides={"device_processor": device_override},
        )
        self.logger.info(f"{specs.policy_type} on {self.device} in {time.perf_counter() - start:.2f} s")


def start_server(cfg: PolicyServerConfig, max_workers: int = 4) -> tuple[grpc.Server, VLAPolicyServer, int]:
    """Start a :class:`VLAPolicyServer` on ``cfg.host:cfg.port`` in background threads.

    Returns:
        ``(grpc server, servicer, bound port)``; stop it with ``server.stop(grace)``.
    """
    servicer = VLAPolicyServer(cfg)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    services_pb2_grpc.add_AsyncInferenceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if port == 0:
        raise OSError(
            f"lerobot-vla-serve: cannot bind {cfg.host}:{cfg.port} (in use, or not an address here)"
        )
    server.start()
    return server, servicer, port


def main(argv: list[str] | None = None) -> int:
    """``lerobot-vla-serve``: LeRobot's ``PolicyServerConfig`` options (``--host``, ``--port``, ``--fps``,
    ``--inference_latency``, ``--obs_queue_timeout``)."""
    try:
        cfg = draccus.parse(PolicyServerConfig, args=sys.argv[1:] if argv is None else argv)
    except (ValueError, draccus.utils.ParsingError) as err:  # LeRobot's checks (port range, fps, latencies)
        print(f"lerobot-vla-serve: error: {err.__cause__ or err}", file=sys.stderr)
        return 2
    logging.info(pformat(asdict(cfg)))
    try:
        server, servicer, port = start_server(cfg)
    except OSError as err:
        print(err, file=sys.stderr)
        return 2
    servicer.logger.info(
        f"lerobot-vla-serve on {cfg.host}:{port}; serving {', '.join(served_policy_types())}"
    )
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
