"""Seer's configuration: paper sizes, clear errors, and the paper-size parameter counts lerobot-vla-info reports."""

from __future__ import annotations

import json

import pytest
from lerobot_policy_seer.configuration_seer import SeerConfig

from lerobot_vla_plugins.errors import ConfigError


def test_sizes_default_to_the_released_base_and_large_models():
    base, large = SeerConfig(), SeerConfig(size="large")
    assert (
        base.hidden_dim,
        base.num_layers,
        base.num_heads,
        base.num_resampler_queries,
        base.num_foresight_tokens,
    ) == (384, 24, 12, 6, 9)
    assert (
        large.hidden_dim,
        large.num_layers,
        large.num_heads,
        large.num_resampler_queries,
        large.num_foresight_tokens,
    ) == (1024, 24, 16, 16, 16)
    assert base.history_length == 10 and base.action_pred_steps == 3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"size": "huge"}, "size='huge' is unknown"),
        ({"num_foresight_tokens": 8}, "perfect square"),
        ({"hidden_dim": 100, "num_heads": 12}, "not divisible by num_heads"),
        ({"gripper_state_mode": "angle"}, "gripper_state_mode='angle' is unknown"),
        ({"history_length": 0}, "history_length must be >= 1"),
        ({"random_shift_pads": [-1]}, "random_shift_pads"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SeerConfig(**kwargs)


def test_a_dataset_without_state_is_refused():
    from lerobot.configs.types import FeatureType, PolicyFeature

    cfg = SeerConfig()
    cfg.input_features = {"observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64))}
    cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))}
    with pytest.raises(ValueError, match="needs the robot state"):
        cfg.validate_features()


def _gpt2_params(width: int, layers: int) -> int:
    """GPT-2 blocks: 12 D^2 + 13 D each (attention 4 D^2 + 4 D, MLP 8 D^2 + 5 D, 2 LayerNorms 4 D) + final LayerNorm."""
    return layers * (12 * width * width + 13 * width) + 2 * width


@pytest.mark.parametrize("size,width", [("base", 384), ("large", 1024)])
def test_lerobot_vla_info_reports_the_paper_size_seer(size, width, capsys):
    from lerobot_vla_tools.cli.info import main

    assert main(["--policy.type=seer", f"--policy.size={size}", "--json=true"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    modules = counts["modules"]
    assert modules["model.trunk"]["total"] == _gpt2_params(width, 24)
    assert (
        modules["model.vision_encoder"]["trainable"] == 0 and modules["model.text_encoder"]["trainable"] == 0
    )
    assert modules["model.vision_encoder"]["total"] == pytest.approx(85.8e6, rel=0.01)  # MAE ViT-B/16 encoder
    assert (
        counts["trainable_params"]
        == counts["total_params"]
        - modules["model.vision_encoder"]["total"]
        - modules["model.text_encoder"]["total"]
    )
