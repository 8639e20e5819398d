"""Bad input gets an error that names the field and says how to fix it."""

from __future__ import annotations

import pytest
import torch
from lerobot_policy_vla_adapter.modeling_vla_adapter import VLAAdapterPolicy

from lerobot_vla_plugins.errors import ConfigError


@pytest.fixture(scope="module")
def policy(tiny_prismatic):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_policy_vla_adapter.configuration_vla_adapter import VLAAdapterConfig

    cfg = VLAAdapterConfig(
        vlm_path=str(tiny_prismatic),
        device="cpu",
        num_action_queries=8,
        training_mode="full",
        input_features={
            "observation.image": PolicyFeature(FeatureType.VISUAL, (3, 480, 480)),
            "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (4,))},
    )
    return VLAAdapterPolicy(cfg).eval()


def test_missing_camera_names_the_camera_and_rename_map(policy, make_batch):
    batch = make_batch(training=False)
    batch["observation.images.front"] = batch.pop("observation.image")
    with pytest.raises(ValueError, match=r"observation.image missing.*--rename_map"):
        policy.select_action(batch)


def test_extra_camera_names_the_camera(policy, make_batch):
    batch = make_batch(training=False)
    batch["observation.images.wrist"] = batch["observation.image"].clone()
    with pytest.raises(ValueError, match=r"unexpected camera observation.images.wrist.*retrain"):
        policy.select_action(batch)


def test_wrong_state_dim_names_the_state_and_dims(policy, make_batch):
    batch = make_batch(training=False)
    batch["observation.state"] = torch.zeros(2, 7)
    with pytest.raises(ValueError, match=r"observation.state has 7 dims but the policy was trained with 4"):
        policy.select_action(batch)


def test_wrong_action_dim_names_the_action_and_dims(policy, make_batch):
    batch = make_batch()
    batch["action"] = torch.zeros(2, 8, 7)
    with pytest.raises(ValueError, match=r"action has 7 dims but the policy was built for 4"):
        policy.forward(batch)


@pytest.mark.parametrize("task", ["", "   "])
def test_empty_task_names_the_task(policy, make_batch, task):
    with pytest.raises(ValueError, match=r"task of sample 0 is empty.*non-empty --task"):
        policy.select_action(make_batch(training=False, task=task))


def test_prompt_longer_than_the_context_names_the_task(policy, make_batch):
    """The tiny LLM has a 512-token context; 16 image + 8 query tokens leave room for ~480 prompt tokens."""
    with pytest.raises(
        ValueError, match=r"over the language model's context of 512; shorten the task string"
    ):
        policy.select_action(make_batch(training=False, task="press the red button " * 200))


def test_checkpoint_of_the_other_variant_names_attention_variant(make_config, tmp_path):
    VLAAdapterPolicy(make_config(attention_variant="original")).save_pretrained(tmp_path / "ckpt")
    with pytest.raises(
        ValueError, match=r"'original' Bridge Attention variant.*--policy.attention_variant=original"
    ):
        VLAAdapterPolicy.from_pretrained(tmp_path / "ckpt", config=make_config(attention_variant="pro"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("attention_variant", "fast", r"attention_variant='fast' is not one of \['original', 'pro'\]"),
        ("training_mode", "qlora", r"training_mode='qlora'.*--policy.training_mode"),
        ("head", "mse", r"head='mse'"),
        ("n_action_steps", 9, r"n_action_steps \(9\) cannot exceed chunk_size \(8\)"),
    ],
)
def test_invalid_config_values_name_the_field(make_config, field, value, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**{field: value})


def test_config_without_state_names_observation_state(make_config):
    from lerobot.configs.types import FeatureType, PolicyFeature

    cfg = make_config(input_features={"observation.image": PolicyFeature(FeatureType.VISUAL, (3, 480, 480))})
    with pytest.raises(ValueError, match=r"observation.state missing from the input features"):
        VLAAdapterPolicy(cfg)
