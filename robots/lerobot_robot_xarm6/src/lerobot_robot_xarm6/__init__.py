"""LeRobot plugin for the UFACTORY xArm6: robot type ``xarm6``.

Only the configuration is imported here (registering ``xarm6`` with LeRobot); the driver (:mod:`.xarm6`) and the
vendor SDK load when LeRobot builds the robot (``make_robot_from_config`` finds ``XArm6`` in ``.xarm6``).
"""

from .config_xarm6 import XArm6Config

__all__ = ["XArm6Config"]
