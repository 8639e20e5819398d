"""A1 as a LeRobot policy (``--policy.type=a1``). Importing the package registers the config (and A1's
learning-rate schedule); the model is imported lazily by LeRobot's factory."""

from .configuration_a1 import A1Config, A1SchedulerConfig

__all__ = ["A1Config", "A1SchedulerConfig"]
