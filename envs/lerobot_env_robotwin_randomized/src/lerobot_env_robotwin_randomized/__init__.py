"""LeRobot env plugin: RoboTwin 2.0's hard setting. Importing it registers ``--env.type=robotwin_randomized``.

Only the configuration is imported here; RoboTwin itself is imported when an env is reset (as in LeRobot's
``robotwin`` env)."""

from .configuration_robotwin_randomized import RoboTwinRandomizedEnvConfig

__all__ = ["RoboTwinRandomizedEnvConfig"]
