"""Light shared library of lerobot-vla-plugins.

Building blocks the plugin distributions (``lerobot_policy_*``, ``lerobot_env_*``, ``lerobot_robot_*``) import at
runtime: VLM backbones, action heads, adaptive inference, robot safety, converters' checks, config presets and
errors. It imports no plugin and no tool (``lerobot_vla_tools``: data, benchmarks, recipes, CLIs, testing kit).
Importing it registers nothing with LeRobot.
"""

__version__ = "0.1.0"
