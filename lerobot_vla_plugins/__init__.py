"""Shared core of lerobot-vla-plugins.

Building blocks used by the plugin distributions (``lerobot_policy_*``, ``lerobot_env_*``,
``lerobot_robot_*``): VLM backbones, action heads, adaptive inference, the local Meta-World
demonstration builder, benchmarks and the testing kit. Importing it registers nothing with LeRobot.
"""

__version__ = "0.1.0"
