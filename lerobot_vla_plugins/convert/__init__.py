"""Weight checks and the backbone converters the plugins' converters share (``convert.checks``, ``convert.internvl``,
``convert.molmo``, ``convert.prismatic``). The converter for LeRobot's own evo1 is a tool: ``lerobot_vla_tools.convert.evo1``."""
