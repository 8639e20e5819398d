"""The error types every part of the collection raises for bad user input.

- :class:`ConfigError`: a bad configuration value, raised while a config (policy, env, robot, command) is built
  (``__post_init__`` / ``validate``). It derives from draccus' ``DecodingError`` (a ``ParsingError``) on purpose:
  draccus, LeRobot's command-line parser, replaces the message of a ``ValueError`` or ``TypeError`` raised while
  it builds a config with "Couldn't instantiate class ... using the given arguments"; a ``ParsingError`` keeps its
  text, and a ``DecodingError`` is what LeRobot's ``parser.wrap`` prints as ``error: <message>`` (exit status 1)
  instead of a traceback, for ``--policy.*``, ``--env.*`` and ``--robot.*`` alike (``tests/test_cli.py``).
  Messages name the field and the fix.
- :class:`ConversionError`: a released checkpoint cannot be converted as asked (wrong layout, weights that do not
  fit, non-finite or exploding weights); the message says why and what to pass.
"""

from __future__ import annotations

from draccus.utils import DecodingError


class ConfigError(DecodingError):
    """A bad configuration value; the message names the field, the value and the fix."""

    def __init__(self, message: str):
        # No key path: draccus prints the message as it is (its own errors prefix the path of the field).
        super().__init__((), message)

    def __reduce__(self):
        return type(self), (self.message,)


class ConversionError(ValueError):
    """A released checkpoint cannot be converted as asked; the message says why and what to pass."""
