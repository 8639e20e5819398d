"""Robot-driver building blocks shared by the ``lerobot_robot_*`` plugins (safety, streaming, simulation).

* :mod:`.safety`: :class:`ActionGuard` (key/finiteness validation, joint-limit clamp, per-step cap against the
  measured position) and :class:`RobotSafetyError`.
* :mod:`.streaming`: :class:`Watchdog` (hold on stale commands) and :class:`JointStreamer` (30 Hz policy targets
  interpolated to a >= 100 Hz setpoint stream with per-joint speed caps, fault propagation).
* :mod:`.sim`: simulated joint dynamics with command checks, fault switches and synthetic cameras for ``backend="sim"``.
* :mod:`.sdk_contract`: method-signature comparison of a simulated SDK with the installed vendor SDK.
* :mod:`.config`: the ``backend`` / safety fields every driver config shares.

Importing this package registers nothing with LeRobot.
"""
