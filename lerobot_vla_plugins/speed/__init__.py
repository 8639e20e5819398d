"""Opt-in inference speed-ups for upstream LeRobot policies; each is tested for outputs equal to the reference path."""
