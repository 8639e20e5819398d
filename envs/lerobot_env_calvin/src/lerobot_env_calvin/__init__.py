"""LeRobot env plugin for the CALVIN benchmark: importing it registers ``--env.type=calvin``.

Only the configuration is imported here; the simulator (``calvin_env``) is imported when an env is created,
so a missing CALVIN installation gives a clear error at use, not a silently dropped plugin.
"""

from .configuration_calvin import CalvinEnvConfig

__all__ = ["CalvinEnvConfig"]
