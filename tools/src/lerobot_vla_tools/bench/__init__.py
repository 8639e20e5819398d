"""The papers' evaluation protocols over ``lerobot-eval`` (``lerobot-vla-bench``).

A protocol splits a paper's evaluation into units (one task at one seed, or one block of CALVIN chains), runs
each with the installed ``lerobot-eval`` in its own process, and aggregates LeRobot's ``eval_info.json`` files
into the paper's table (markdown + CSV) and a bar chart, next to the rows the papers report:

* ``metaworld`` - Evo-1 Table 1: 50 tasks in four difficulty groups, 10 trials per task, five seeds.
* ``libero`` - Evo-1 / VLA-Adapter / VITA-VLA: four suites of 10 tasks, 50 trials per task.
* ``robotwin`` - Evo-1 Table 1: four RoboTwin 2.0 tasks, easy and hard, 100 trials.
* ``calvin`` - VITA-VLA Table 1 / VLA-Adapter Table 6: ABC->D, 1000 chains of 5 subtasks.
"""

from __future__ import annotations

from .base import Protocol, ProtocolError, ResultTable, Unit, UnitResult

PROTOCOL_NAMES = ("metaworld", "libero", "robotwin", "calvin")


def get_protocol(name: str, chains_per_unit: int = 100) -> Protocol:
    """The protocol called ``name``.

    Raises:
        ProtocolError: unknown name (the message lists the protocols).
    """
    if name == "metaworld":
        from .metaworld import MetaWorldProtocol

        return MetaWorldProtocol()
    if name == "libero":
        from .libero import LiberoProtocol

        return LiberoProtocol()
    if name == "robotwin":
        from .robotwin import RoboTwinProtocol

        return RoboTwinProtocol()
    if name == "calvin":
        from .calvin import CalvinProtocol

        return CalvinProtocol(chains_per_unit=chains_per_unit)
    raise ProtocolError(f"--protocol: unknown protocol {name!r}; choose one of {', '.join(PROTOCOL_NAMES)}")


__all__ = ["PROTOCOL_NAMES", "Protocol", "ProtocolError", "ResultTable", "Unit", "UnitResult", "get_protocol"]
