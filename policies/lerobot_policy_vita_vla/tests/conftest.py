"""Fixtures of the vita_vla tests: a tiny converted-VITA-1.5-shaped InternVL, a tiny Seer teacher, tiny policies."""

from __future__ import annotations

import pytest

HISTORY = 2


@pytest.fixture(scope="session")
def tiny_vita_path(tmp_path_factory):
    from lerobot_vla_tools.testing.vita import build_tiny_vita

    return build_tiny_vita(tmp_path_factory.mktemp("tiny_vita"))


@pytest.fixture(scope="session")
def tiny_seer_overrides(tmp_path_factory) -> dict:
    from lerobot_vla_tools.testing.seer import build_tiny_seer_encoders

    return build_tiny_seer_encoders(tmp_path_factory.mktemp("tiny_seer"))


def metaworld_features(state_dim=4, action_dim=4, cameras=("observation.image",)):
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64)) for k in cameras}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    return inputs, {"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}


def unit_stats(state_dim=4, action_dim=4) -> dict:
    """Dataset statistics under which the normalised state equals the raw one (mean 0, std 1)."""
    import numpy as np

    return {
        "observation.state": {"mean": np.zeros(state_dim), "std": np.ones(state_dim)},
        "action": {"min": -np.ones(action_dim), "max": np.ones(action_dim)},
    }


@pytest.fixture(scope="session")
def save_teacher(tmp_path_factory, tiny_seer_overrides):
    """``save_teacher(**config)`` -> directory of a tiny, randomly initialised ``seer`` policy saved as LeRobot saves one."""

    def save(state_dim=4, action_dim=4, cameras=("observation.image",), stats="unit", **overrides):
        import torch
        from lerobot_policy_seer.configuration_seer import SeerConfig
        from lerobot_policy_seer.modeling_seer import SeerPolicy
        from lerobot_policy_seer.processor_seer import make_seer_pre_post_processors

        torch.manual_seed(0)
        cfg = SeerConfig(
            device="cpu", history_length=HISTORY, push_to_hub=False, **{**tiny_seer_overrides, **overrides}
        )
        cfg.input_features, cfg.output_features = metaworld_features(state_dim, action_dim, cameras)
        policy = SeerPolicy(cfg)
        path = tmp_path_factory.mktemp("teacher")
        policy.save_pretrained(path)
        if stats == "unit":
            stats = unit_stats(state_dim, action_dim)
        for pipeline in make_seer_pre_post_processors(cfg, dataset_stats=stats):
            pipeline.save_pretrained(path)
        return path

    return save


@pytest.fixture(scope="session")
def teacher_path(save_teacher):
    return save_teacher()


@pytest.fixture
def make_vita(tiny_vita_path, teacher_path):
    """``make_vita(stage, **overrides)``: a tiny ``VitaVlaPolicy`` on Meta-World-shaped features."""

    def build(stage="align", pretrained=False, features=None, dataset_stats="unit", **overrides):
        import torch
        from lerobot_policy_vita_vla.configuration_vita_vla import VitaVlaConfig
        from lerobot_policy_vita_vla.modeling_vita_vla import VitaVlaPolicy

        torch.manual_seed(0)
        kwargs = {
            "stage": stage,
            "vlm_path": str(tiny_vita_path),
            "vlm_dtype": "float32",
            "vlm_image_size": 56,
            "history_length": HISTORY,
            "teacher_path": str(teacher_path),
            "device": "cpu",
        }
        cfg = VitaVlaConfig(**{**kwargs, **overrides})
        cfg.input_features, cfg.output_features = features or metaworld_features()
        if pretrained:  # as when LeRobot loads it with --policy.path (weights are not needed here)
            cfg.pretrained_path = "checkpoint"
        if dataset_stats == "unit":  # lerobot-train passes the dataset's statistics to the policy
            dataset_stats = unit_stats(cfg.robot_state_feature.shape[0], cfg.action_feature.shape[0])
        return VitaVlaPolicy(cfg, dataset_stats=dataset_stats)

    return build


@pytest.fixture
def vita_batch():
    """``vita_batch(policy, batch_size=2, leading_pad=(0, 1))``: a training batch as LeRobot loads it."""

    def make(policy, batch_size=2, leading_pad=(0, 1), seed=0):
        import torch

        g = torch.Generator().manual_seed(seed)
        cfg = policy.config
        t, n_act = len(cfg.observation_delta_indices), len(cfg.action_delta_indices)
        batch = {k: torch.rand(batch_size, t, 3, 64, 64, generator=g) for k in cfg.camera_keys}
        batch["observation.state"] = torch.randn(batch_size, t, cfg.robot_state_feature.shape[0], generator=g)
        pad = torch.zeros(batch_size, t, dtype=torch.bool)
        for b, n in enumerate(leading_pad[:batch_size]):
            pad[b, :n] = True
        batch["observation.state_is_pad"] = pad
        batch["action"] = torch.rand(batch_size, n_act, cfg.action_feature.shape[0], generator=g) * 2 - 1
        batch["action_is_pad"] = torch.zeros(batch_size, n_act, dtype=torch.bool)
        batch["task"] = ["press the button from the top"] * batch_size
        return batch

    return make
