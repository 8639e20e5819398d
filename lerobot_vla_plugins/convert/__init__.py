"""Converters from the papers' released checkpoints to this collection's layouts."""
