"""Opt-in speed-ups, each tested for outputs equal to the reference path: ``evo1`` accelerates LeRobot's upstream
``evo1`` policy; ``compile`` is ``--policy.compile_model`` of the policies of this package (``torch.compile``)."""
