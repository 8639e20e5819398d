"""Training at scale: the accelerate configs shipped with the collection (``accelerate_configs/``) and helpers
to read them as ``accelerate launch`` does."""
