"""Fixtures shared by the tests of the core and of every plugin package."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
