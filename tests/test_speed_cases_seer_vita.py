"""The bench cases of seer and vita_vla build: tiny ones act on a Meta-World-shaped observation, paper ones build
(weightless, on the meta device) at the published sizes."""

from __future__ import annotations

import pytest
import torch
from lerobot_vla_tools.speed import iter_cases

CASES = [c for c in iter_cases() if c.policy_type in ("seer", "vita_vla")]


def _config(case, extra: dict):
    from lerobot.policies.factory import make_policy_config
    from lerobot.utils.import_utils import register_third_party_plugins

    from lerobot_vla_plugins.features import metaworld_policy_features

    register_third_party_plugins()

    cfg = make_policy_config(case.policy_type, **{**case.overrides, **extra})
    cfg.input_features, cfg.output_features = metaworld_policy_features()
    return cfg


@pytest.mark.parametrize("case", [c for c in CASES if c.size == "tiny"], ids=lambda c: c.name)
def test_tiny_case_acts(case, tmp_path):
    from lerobot.policies.factory import get_policy_class

    cfg = _config(case, {**case.resolve_overrides(tmp_path), "device": "cpu"})
    policy = get_policy_class(case.policy_type)(cfg)
    obs = {
        "observation.image": torch.rand(1, 3, 480, 480),
        "observation.state": torch.randn(1, 4),
        "task": ["press the button"],
    }
    assert policy.select_action(obs).shape == (1, 4)


# Parameter counts of the published parts, from their published configs (the presets) and the architectures'
# layer layouts; independent of how our policies assemble them.
def _preset(name: str) -> dict:
    import json

    from lerobot_vla_plugins.presets import PRESET_DIR

    return json.loads((PRESET_DIR / f"{name}.json").read_text())["config"]


def _vit_layer(d: int, mlp: int, layer_scale: bool = False) -> int:
    """Pre-norm ViT block: q, k, v, out projections with bias, 2-layer MLP, two LayerNorms (+ two layer scales)."""
    return 4 * (d * d + d) + (d * mlp + mlp) + (mlp * d + d) + 4 * d + (2 * d if layer_scale else 0)


def _vit_embeddings(d: int, patch: int, image: int) -> int:
    """Patch convolution (with bias), class token, one position per patch + class token."""
    return 3 * patch * patch * d + d + d + ((image // patch) ** 2 + 1) * d


def _qwen2(h: int, inter: int, heads: int, kv_heads: int, layers: int, vocab: int) -> int:
    """Qwen2 decoder without lm_head: q/k/v with bias (GQA), o without, SwiGLU MLP, two RMSNorms; final norm."""
    kv = kv_heads * (h // heads)
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h
    return vocab * h + layers * layer + h


def _gpt2_blocks(d: int, layers: int) -> int:
    """GPT-2 blocks (c_attn, c_proj, 4x MLP, two LayerNorms) and the final LayerNorm."""
    return layers * (12 * d * d + 13 * d) + 2 * d


def _internvl(config: dict) -> dict[str, int]:
    v, t = config["vision_config"], config["text_config"]
    d, h = v["hidden_size"], t["hidden_size"]
    mm = d * round(1 / config["downsample_ratio"]) ** 2  # pixel shuffle folds 2x2 patches into one token
    return {
        "backbone.model.vision_tower": _vit_embeddings(d, v["patch_size"][0], v["image_size"][0])
        + v["num_hidden_layers"] * _vit_layer(d, v["intermediate_size"], layer_scale=True),
        "backbone.model.multi_modal_projector": (2 * mm if config.get("projector_layer_norm", True) else 0)
        + (mm * h + h)
        + (h * h + h),
        "backbone.model.language_model": _qwen2(
            h,
            t["intermediate_size"],
            t["num_attention_heads"],
            t["num_key_value_heads"],
            t["num_hidden_layers"],
            t["vocab_size"],
        ),
    }


def _published_parts(case, cfg) -> dict[str, int]:
    """Module name (under ``model.``) -> parameter count of the published part it holds."""
    if case.policy_type == "seer":
        mae, clip = _preset("facebook--vit-mae-base"), _preset("openai--clip-vit-base-patch32")
        d, text = mae["hidden_size"], clip["text_config"]
        t = text["hidden_size"]
        return {
            # MAE ViT-B/16 encoder and its final LayerNorm
            "vision_encoder": _vit_embeddings(d, mae["patch_size"], mae["image_size"])
            + mae["num_hidden_layers"] * _vit_layer(d, mae["intermediate_size"])
            + 2 * d,
            # CLIP text transformer (token + position embeddings, final LayerNorm) and its bias-free projection
            "text_encoder": text["vocab_size"] * t
            + text["max_position_embeddings"] * t
            + text["num_hidden_layers"] * _vit_layer(t, text["intermediate_size"])
            + 2 * t
            + t * clip["projection_dim"],
            "trunk": _gpt2_blocks(cfg.hidden_dim, cfg.num_layers),
        }
    name = "OpenGVLab--InternVL3-1B-hf" if "evo1" in case.name else "VITA-MLLM--VITA-1.5"
    return _internvl(_preset(name))


@pytest.mark.parametrize("case", [c for c in CASES if c.size == "paper"], ids=lambda c: c.name)
def test_paper_case_builds_the_published_parts_at_their_published_sizes(case, tmp_path):
    from lerobot_vla_tools.cli.info import build_on_meta, count_parameters

    cfg = _config(case, case.resolve_overrides(tmp_path))
    counts = count_parameters(build_on_meta(cfg), depth=4)
    modules = {name.removeprefix("model."): c["total"] for name, c in counts["modules"].items()}
    parts = _published_parts(case, cfg)
    assert {name: modules[name] for name in parts} == parts
    # what the policy adds to them (state/action heads, resampler, decoders) is small next to the published parts
    assert 0 < counts["total_params"] - sum(parts.values()) < 0.25 * sum(parts.values())
