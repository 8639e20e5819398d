"""Config-only presets, weightless model construction and ``lerobot-vla-info``."""

from __future__ import annotations

import json

import pytest
import torch
from lerobot_vla_tools.cli.info import build_on_meta, count_parameters
from lerobot_vla_tools.testing.weightless import weightless_kwargs, weightless_pretrained

from lerobot_vla_plugins.presets import available_presets, load_preset

TINY_EVO1 = {
    "image_resolution": (32, 32),
    "embed_dim": 64,
    "hidden_dim": 128,
    "state_hidden_dim": 128,
    "num_heads": 4,
    "num_layers": 2,
    "chunk_size": 8,
    "n_action_steps": 8,
    "vlm_num_layers": 4,
    "vlm_dtype": "float32",
    "use_flash_attn": False,
    "max_text_length": 256,
    "num_inference_timesteps": 4,
    "enable_gradient_checkpointing": False,
}


def test_every_preset_is_a_buildable_transformers_config():
    from lerobot_vla_plugins.presets import preset_config

    assert "OpenGVLab/InternVL3-1B-hf" in available_presets()
    for hub_id in available_presets():
        preset = load_preset(hub_id)
        assert preset["source"], f"{hub_id}: cite where the sizes come from"
        assert preset_config(hub_id).model_type == preset["config"]["model_type"]


def test_weightless_pretrained_builds_internvl3_1b_on_meta_and_restores_transformers():
    from transformers import AutoModel

    original = AutoModel.from_pretrained
    with weightless_pretrained("meta"):
        model = AutoModel.from_pretrained("OpenGVLab/InternVL3-1B-hf", dtype=torch.bfloat16)
    assert AutoModel.from_pretrained.__func__ is original.__func__
    params = list(model.parameters())
    assert all(p.is_meta for p in params)
    assert params[0].dtype == torch.bfloat16
    vision = sum(p.numel() for p in model.vision_tower.parameters())
    language = sum(p.numel() for p in model.language_model.parameters())
    assert 300e6 < vision < 310e6  # InternViT-300M
    assert 490e6 < language < 500e6  # Qwen2.5-0.5B without lm_head (494M)


def test_weightless_pretrained_is_not_reentrant():
    with weightless_pretrained("meta"), pytest.raises(RuntimeError, match="not re-entrant"):  # noqa: SIM117
        with weightless_pretrained("meta"):
            pass


def test_weightless_is_an_explicit_constructor_argument_of_our_policies_only():
    """Our policies take ``weightless`` (they skip their own weight files); LeRobot's own are built unchanged."""
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy
    from lerobot_policy_a1.modeling_a1 import A1Policy
    from lerobot_policy_vita_vla.modeling_vita_vla import VitaVlaPolicy
    from lerobot_policy_vla_adapter.modeling_vla_adapter import VLAAdapterPolicy

    for cls in (A1Policy, VitaVlaPolicy, VLAAdapterPolicy):
        assert weightless_kwargs(cls) == {"weightless": True}, cls.__name__
    assert weightless_kwargs(Evo1Policy) == {}


def test_weightless_pretrained_refuses_an_unknown_hub_id():
    from transformers import AutoModel

    with (
        weightless_pretrained("meta"),
        pytest.raises(OSError, match="neither a local checkpoint nor a shipped preset"),
    ):
        AutoModel.from_pretrained("someone/unknown-model")


def test_paper_size_evo1_matches_the_papers_077b():
    from lerobot.policies.factory import make_policy_config

    counts = count_parameters(build_on_meta(make_policy_config("evo1")))
    assert counts["total_params"] == pytest.approx(0.77e9, rel=0.01)
    # the official head's own arithmetic (8 layers, 896 wide): ~122.0M, trained in stage 1 alone
    assert counts["modules"]["model.action_head"]["total"] == pytest.approx(122.0e6, rel=0.001)
    assert counts["trainable_params"] == counts["modules"]["model.action_head"]["total"]


def test_meta_counts_equal_a_real_instantiation(tiny_internvl):
    from lerobot.policies.factory import get_policy_class, make_policy_config

    from lerobot_vla_plugins.features import metaworld_policy_features

    meta = count_parameters(
        build_on_meta(make_policy_config("evo1", vlm_model_name=str(tiny_internvl), **TINY_EVO1))
    )
    cfg = make_policy_config("evo1", vlm_model_name=str(tiny_internvl), device="cpu", **TINY_EVO1)
    cfg.input_features, cfg.output_features = metaworld_policy_features()
    real = count_parameters(get_policy_class("evo1")(cfg))
    assert meta == real


def test_cli_json_has_totals_and_a_module_breakdown():
    from lerobot_vla_tools.testing import run_cli

    out = run_cli("lerobot-vla-info", "--policy.type=evo1", "--json=true", "--depth=3").stdout
    info = json.loads(out.strip().splitlines()[-1])
    assert info["policy_type"] == "evo1"
    assert {"total_params", "trainable_params", "modules"} <= info.keys()
    assert "model.embedder.model" in info["modules"]
    assert info["total_params"] > info["trainable_params"] > 0


def test_cli_without_a_policy_type_lists_the_registered_types(capsys):
    from lerobot_vla_tools.cli.info import main

    assert main([]) == 2
    err = capsys.readouterr().err
    assert "pass --policy.type=<type>" in err and "evo1" in err
