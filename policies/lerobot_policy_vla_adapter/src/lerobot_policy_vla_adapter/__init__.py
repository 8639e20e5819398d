"""VLA-Adapter as a LeRobot policy (``--policy.type=vla_adapter``).

Importing the package registers the configuration and the custom processor steps (LeRobot reloads saved
pipelines by registry name before it imports any modeling code); the modeling code (transformers, peft,
diffusers) is imported lazily by LeRobot's factory.
"""

from .configuration_vla_adapter import VLAAdapterConfig
from .processor_vla_adapter import make_vla_adapter_pre_post_processors

__all__ = ["VLAAdapterConfig", "make_vla_adapter_pre_post_processors"]
