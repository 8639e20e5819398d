"""Training recipes: the papers' multi-stage schedules and settings, run with LeRobot's own commands."""
