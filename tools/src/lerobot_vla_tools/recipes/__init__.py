"""Recipes: the papers' settings and multi-stage schedules for LeRobot's own policies (e.g. upstream ``evo1``),
run with LeRobot's own commands. Nothing here registers anything with LeRobot."""
