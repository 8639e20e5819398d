"""The command-line wrapper the draccus-configured converters share (``lerobot-seer-convert``,
``lerobot-vita-convert``): parse the config, run, print a bad-input error on one line and exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any


def run_converter(
    prog: str, config_class: type, convert: Callable[[Any], Any], argv: list[str] | None
) -> int:
    """``convert(draccus.parse(config_class, argv))``; 0 on success, 2 with ``{prog}: error: ...`` on stderr when
    the input is refused (``ValueError`` - ``ConversionError`` included -, a missing file, an existing output)."""
    import draccus

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = draccus.parse(config_class, args=sys.argv[1:] if argv is None else argv)
    try:
        convert(cfg)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
