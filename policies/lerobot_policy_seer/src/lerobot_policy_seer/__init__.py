"""Seer as a LeRobot policy plugin: importing this package registers ``--policy.type=seer``.

Only the configuration is imported here; LeRobot imports ``modeling_seer`` / ``processor_seer`` lazily.
"""

from .configuration_seer import SeerConfig

__all__ = ["SeerConfig"]
