"""LeRobot plugin for AgiBot G1 / A2 (robot type ``agibot``) over a TCP bridge.

Only the configuration is imported here. The driver lives in :mod:`.agibot`; the bridge server that runs next to the
vendor SDK (Python 3.10, standard library only) is :mod:`.agibot_bridge_server` (also a standalone script).
"""

from .config_agibot import AgiBotConfig

__all__ = ["AgiBotConfig"]
