"""VLA-Adapter as a LeRobot policy (``--policy.type=vla_adapter``).

Importing the package registers the configuration; the modeling code (transformers, peft, diffusers) is
imported lazily by LeRobot's factory.
"""

from .configuration_vla_adapter import VLAAdapterConfig

__all__ = ["VLAAdapterConfig"]
