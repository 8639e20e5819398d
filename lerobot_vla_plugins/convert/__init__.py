"""Converters from the papers' released checkpoints to LeRobot checkpoint directories and our layouts.
Import from the submodules (``convert.evo1``, ``convert.molmo``, ``convert.prismatic``, ...)."""
