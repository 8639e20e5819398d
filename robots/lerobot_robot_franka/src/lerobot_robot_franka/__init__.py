"""LeRobot plugin for Franka arms (FR3, Panda): robot type ``franka``.

Only the configuration is imported here; the driver (:mod:`.franka`) and franky load when LeRobot builds the robot.
"""

from .config_franka import FrankaConfig

__all__ = ["FrankaConfig"]
