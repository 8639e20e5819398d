"""Converters that belong to the tools: ``convert.evo1`` (official Evo-1 checkpoints -> LeRobot's own ``evo1``).
The converters of our policies live in their plugins, their shared checks in ``lerobot_vla_plugins.convert``."""
