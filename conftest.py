"""Fixtures shared by the tests of the core and of every plugin package."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _writes_to_a_closed_stream(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return bool(getattr(stream, "closed", False))


@pytest.fixture(autouse=True)
def _no_logging_handler_outlives_its_test():
    """Removes the logging handlers a test left behind (LeRobot's ``init_logging``, run in-process by the CLI tests,
    replaces the root handlers with one on the test's captured stderr). Once pytest closes that stream, every later
    log call prints a "Logging error" traceback while holding the handler's lock, which slows every thread that logs
    (robot watchdogs, bridge servers) and made timing tests fail in the full run only."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        ours = type(handler).__module__.startswith("_pytest")
        if (handler not in before and not ours) or _writes_to_a_closed_stream(handler):
            root.removeHandler(handler)
    root.setLevel(level)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            for handler in [h for h in logger.handlers if _writes_to_a_closed_stream(h)]:
                logger.removeHandler(handler)


@pytest.fixture(scope="session")
def metaworld_dataset() -> tuple[str, os.PathLike]:
    """A real 2-episode Meta-World expert dataset (button-press-topdown-v3, MP4 frames), cached across runs.

    Returns ``(repo_id, root)``.
    """
    from lerobot_vla_tools.testing.fixtures import cached_metaworld_dataset

    return cached_metaworld_dataset(episodes=2)


@pytest.fixture(scope="session")
def tiny_internvl(tmp_path_factory):
    """Path of a tiny InternVL checkpoint (2-layer vision, 4-layer Qwen2, 32x32 images) with its tokenizer."""
    from lerobot_vla_tools.testing import build_tiny_internvl

    return build_tiny_internvl(tmp_path_factory.mktemp("tiny_internvl"))
