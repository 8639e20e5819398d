"""Fixtures of the VLA-Adapter tests: a tiny Prismatic backbone directory and tiny policy configs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_prismatic(tmp_path_factory):
    """Path of a tiny Prismatic directory (DINOv2-with-registers + SigLIP + Qwen2, 32 px images, 16 patches)."""
    from lerobot_vla_tools.testing.prismatic import build_tiny_prismatic

    return build_tiny_prismatic(tmp_path_factory.mktemp("tiny_prismatic"))


@pytest.fixture
def make_config(tiny_prismatic):
    """Factory of tiny VLA-Adapter configs with Meta-World features (one 480 px camera, 4-D state and action)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_policy_vla_adapter.configuration_vla_adapter import VLAAdapterConfig

    def make(**overrides):
        kw = {
            "vlm_path": str(tiny_prismatic),
            "device": "cpu",
            "num_action_queries": 8,
            "training_mode": "full",
            "input_features": {
                "observation.image": PolicyFeature(FeatureType.VISUAL, (3, 480, 480)),
                "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
            },
            "output_features": {"action": PolicyFeature(FeatureType.ACTION, (4,))},
        }
        kw.update(overrides)
        return VLAAdapterConfig(**kw)

    return make


@pytest.fixture
def make_batch():
    """Factory of normalised batches as the preprocessor hands them to the policy."""
    return _make_batch


def _make_batch(
    b: int = 2, t: int = 8, image_size: int = 64, task: str = "press the button", training: bool = True
):
    import torch

    batch = {
        "observation.image": torch.rand(b, 3, image_size, image_size),
        "observation.state": torch.rand(b, 4) * 2 - 1,
        "task": [task] * b,
    }
    if training:
        batch["action"] = torch.rand(b, t, 4) * 2 - 1
        batch["action_is_pad"] = torch.zeros(b, t, dtype=torch.bool)
    return batch


@pytest.fixture(scope="session")
def ref():
    """``released_reference``: the independent re-implementation of the released inference (loaded by path: the
    tests run with ``--import-mode=importlib``)."""
    import importlib.util
    import sys
    from pathlib import Path

    pytest.importorskip("timm")
    if "released_reference" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "released_reference", Path(__file__).with_name("released_reference.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["released_reference"] = module
        spec.loader.exec_module(module)
    return sys.modules["released_reference"]
