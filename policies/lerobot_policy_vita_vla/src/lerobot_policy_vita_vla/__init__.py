"""VITA-VLA as a LeRobot policy plugin: importing this package registers ``--policy.type=vita_vla``.

Only the configuration is imported here; LeRobot imports ``modeling_vita_vla`` / ``processor_vita_vla`` lazily.
"""

from .configuration_vita_vla import VitaVlaConfig

__all__ = ["VitaVlaConfig"]
