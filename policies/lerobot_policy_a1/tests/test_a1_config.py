"""A1's configuration: registration with LeRobot, the paper's defaults, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from lerobot_vla_plugins.errors import ConfigError


def test_a1_is_registered_with_lerobot_and_resolves_to_its_policy_and_processors():
    import lerobot_policy_a1  # noqa: F401  (registers --policy.type=a1)
    from lerobot.policies.factory import get_policy_class, make_policy_config
    from lerobot_policy_a1.modeling_a1 import A1Policy

    cfg = make_policy_config("a1", device="cpu")
    assert cfg.type == "a1" and get_policy_class("a1") is A1Policy
    assert cfg.get_scheduler_preset().type == "a1_cosine_with_vlm_freeze"


def test_defaults_are_the_papers_full_size_model():
    from lerobot_policy_a1.configuration_a1 import A1Config

    c = A1Config(device="cpu")
    assert (c.backbone_family, c.vlm_name) == ("molmo", "openai/clip-vit-large-patch14-336+Qwen/Qwen2-7B")
    assert (c.expert_hidden_size, c.expert_num_heads, c.expert_intermediate_size) == (1024, 8, 2048)
    assert (c.chunk_size, c.num_inference_steps, c.exit_interval, c.exit_metric, c.exit_fm_steps) == (
        8,
        10,
        2,
        "cosine",
        2,
    )
    assert (c.optimizer_lr, c.optimizer_vlm_lr, c.scheduler_warmup_steps, c.scheduler_vlm_freeze_steps) == (
        5e-5,
        5e-6,
        2000,
        1000,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("head", "diffusion", r"head='diffusion' is not one of \['flow_matching', 'mlp'\]"),
        ("exit_training", "some", r"exit_training='some' is not one of \['none', 'random', 'all'\]"),
        ("exit_metric", "l3", r"exit_metric: exit metric 'l3' does not exist"),
        ("backbone_family", "llava", r"backbone_family='llava' is not one of"),
        ("n_action_steps", 9, r"n_action_steps \(9\) must be in \[1, chunk_size=8\]"),
        ("expert_num_heads", 7, r"expert_hidden_size \(1024\) must be divisible by expert_num_heads \(7\)"),
        ("prompt_template", "User: Assistant:", r"prompt_template must contain '\{instruction\}'"),
        ("state_mask_prob", 1.0, r"state_mask_prob must be in \[0, 1\)"),
    ],
)
def test_bad_config_values_are_refused_with_the_field_name(field, value, message):
    from lerobot_policy_a1.configuration_a1 import A1Config

    with pytest.raises(ConfigError, match=message):
        A1Config(device="cpu", **{field: value})


def test_features_without_a_camera_or_with_too_many_action_dims_are_refused():
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_policy_a1.configuration_a1 import A1Config

    state = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(4,))}
    action = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))}
    with pytest.raises(ValueError, match="needs at least one camera"):
        A1Config(device="cpu", input_features=state, output_features=action).validate_features()
    img = {"observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64))}
    big = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(40,))}
    with pytest.raises(
        ValueError, match="action has 40 dims but max_action_dim=32; raise --policy.max_action_dim"
    ):
        A1Config(device="cpu", input_features={**img, **state}, output_features=big).validate_features()


def test_schedule_freezes_the_vlm_then_warms_up_and_decays_to_ten_percent():
    from lerobot_policy_a1.configuration_a1 import A1SchedulerConfig

    s = A1SchedulerConfig(num_warmup_steps=10, vlm_freeze_steps=5, final_lr_ratio=0.1)
    assert s.lr_factor(3, 100, frozen=True) == 0.0 and s.lr_factor(3, 100, frozen=False) == pytest.approx(0.3)
    assert s.lr_factor(10, 100, frozen=True) == pytest.approx(1.0)
    assert s.lr_factor(100, 100, frozen=False) == pytest.approx(0.1)


def test_lerobot_vla_info_reports_the_paper_size_expert_and_backbone(capsys):
    from lerobot_vla_tools.cli.info import main

    assert main(["--policy.type=a1", "--json=true", "--depth=3"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mods = info["modules"]
    # expert: Qwen2 decoder 1024/28/8 heads/4 KV/2048 = 264.4M + projections and MLP-ResNet = ~271M (no lm_head)
    assert 2.69e8 < mods["model.head"]["total"] < 2.73e8
    assert 2.63e8 < mods["model.head.expert"]["total"] < 2.66e8
    # backbone: CLIP ViT-L/14-336 with 23 of 24 layers 290.9M; pooling + connector 114.0M; Qwen2-7B 7.07B (no LM head)
    assert 2.90e8 < mods["model.backbone.vision"]["total"] < 2.92e8
    assert 1.13e8 < mods["model.backbone.connector"]["total"] < 1.15e8
    assert 7.0e9 < mods["model.backbone.language_model"]["total"] < 7.1e9
    # ViT and connector frozen (paper: ViT LR 0; released: connector frozen)
    assert (
        mods["model.backbone.vision"]["trainable"] == 0 and mods["model.backbone.connector"]["trainable"] == 0
    )
