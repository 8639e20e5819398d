"""Remote inference: LeRobot's async-inference policy server for every policy of this collection (and ``evo1``).

``lerobot-vla-serve`` (:mod:`.server`) speaks LeRobot 0.6's own gRPC protocol (``lerobot.async_inference``), so
the robot side is LeRobot's unchanged ``RobotClient`` (``python -m lerobot.async_inference.robot_client``).
"""

from .server import VLAPolicyServer, check_policy_instructions, served_policy_types, start_server

__all__ = ["VLAPolicyServer", "check_policy_instructions", "served_policy_types", "start_server"]
