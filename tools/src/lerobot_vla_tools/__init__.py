"""Tools of lerobot-vla-plugins, above the plugins: they may import any plugin, nothing below imports them.

``data`` (Meta-World demonstrations, ``lerobot-vla-data``), ``bench`` (benchmark protocols, ``lerobot-vla-bench``),
``speed`` (speed benchmarks, ``lerobot-vla-speed``), ``recipes`` and ``convert.evo1`` (LeRobot's own evo1),
``cli`` (``lerobot-vla-info``, ``lerobot-vla-demo``), ``testing`` (tiny models, fixtures) and ``training``
(accelerate configs). Importing it registers nothing with LeRobot.
"""

__version__ = "0.1.0"
