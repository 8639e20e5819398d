"""Fixtures of the seer tests: tiny real encoders (MAE ViT, CLIP) saved locally, and tiny policies on them."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_seer_overrides(tmp_path_factory) -> dict:
    """``SeerConfig`` overrides for a tiny Seer (local MAE / CLIP checkpoints, a 2-layer 32-wide trunk)."""
    from lerobot_vla_tools.testing.seer import build_tiny_seer_encoders

    return build_tiny_seer_encoders(tmp_path_factory.mktemp("tiny_seer"))


@pytest.fixture
def make_seer(tiny_seer_overrides):
    """Build a tiny ``SeerPolicy`` for Meta-World-shaped features (or the given ones)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_policy_seer.configuration_seer import SeerConfig
    from lerobot_policy_seer.modeling_seer import SeerPolicy

    def build(state_dim=4, action_dim=4, cameras=("observation.image",), **overrides):
        import torch

        torch.manual_seed(0)
        cfg = SeerConfig(device="cpu", history_length=3, **{**tiny_seer_overrides, **overrides})
        cfg.input_features = {k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64)) for k in cameras}
        cfg.input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
        cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}
        return SeerPolicy(cfg)

    return build


@pytest.fixture
def seer_batch():
    """``seer_batch(policy, ...)``: a training batch shaped as LeRobot loads it with the policy's delta indices."""
    return make_batch


def make_batch(policy, batch_size=2, leading_pad=(0, 0), seed=0, image_size=64):
    import torch

    g = torch.Generator().manual_seed(seed)
    cfg = policy.config
    t = len(cfg.observation_delta_indices)
    n_act = len(cfg.action_delta_indices)
    state_dim = cfg.robot_state_feature.shape[0]
    batch = {k: torch.rand(batch_size, t, 3, image_size, image_size, generator=g) for k in cfg.camera_keys}
    batch["observation.state"] = torch.randn(batch_size, t, state_dim, generator=g)
    pad = torch.zeros(batch_size, t, dtype=torch.bool)
    for b, n in enumerate(leading_pad):
        pad[b, :n] = True
    batch["observation.state_is_pad"] = pad
    batch["action"] = torch.rand(batch_size, n_act, cfg.action_feature.shape[0], generator=g) * 2 - 1
    batch["action_is_pad"] = torch.zeros(batch_size, n_act, dtype=torch.bool)
    batch["task"] = ["press the button from the top"] * batch_size
    return batch
