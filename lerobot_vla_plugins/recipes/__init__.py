"""Recipes: the papers' settings for LeRobot's own policies (e.g. upstream ``evo1``), as plain data and
functions used by the command-line tools. Nothing here registers anything with LeRobot."""
