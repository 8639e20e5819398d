"""Converters from the papers' released checkpoints to our layouts. Import from the submodules
(``convert.molmo``, ...)."""
