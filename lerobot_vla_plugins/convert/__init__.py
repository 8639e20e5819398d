"""Converters from the papers' released checkpoints to LeRobot checkpoint directories."""
