"""The Prismatic family (PrismaticBackbone) and the testing kit's tiny Prismatic directory."""

from __future__ import annotations

import pytest
import torch
from lerobot_vla_tools.testing.prismatic import build_tiny_prismatic

from lerobot_vla_plugins.backbones import load_backbone_class
from lerobot_vla_plugins.backbones.prismatic import PrismaticBackbone, prismatic_prompt


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_prismatic(tmp_path_factory.mktemp("prismatic"))


@pytest.fixture(scope="module")
def backbone(tiny_dir):
    return PrismaticBackbone.from_pretrained(tiny_dir).eval()


def test_family_registry_resolves_prismatic():
    assert load_backbone_class("prismatic") is PrismaticBackbone


def test_tiny_prismatic_loads_with_its_tokenizer(tiny_dir):
    bb = PrismaticBackbone.from_pretrained(tiny_dir)
    assert bb.num_image_tokens == 16 and bb.num_layers == 4
    assert bb.tokenizer.convert_ids_to_tokens(bb.tokenize(prismatic_prompt("x"))[:1]) == ["<|im_start|>"]


def test_prompt_is_the_released_qwen_chat_string_with_the_instruction_lower_cased():
    p = prismatic_prompt("Press The Button")
    assert p.startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    )
    assert "<|im_start|>user\nWhat action should the robot take to press the button?<|im_end|>\n" in p
    assert p.endswith("<|im_start|>assistant\n")


def test_image_tokens_follow_the_first_prompt_token_and_extras_follow_the_prompt(backbone):
    images = torch.rand(2, 2, 3, 48, 48)  # 2 views, resized to 32 px -> 2 x 16 patches
    prompts = [prismatic_prompt("open the drawer"), prismatic_prompt("press the button now please")]
    extras = {"query": torch.randn(2, 5, backbone.hidden_size)}
    inputs = backbone.prepare_inputs(images, prompts, extras=extras)
    assert inputs.image_positions.tolist() == [list(range(1, 33))] * 2
    for b, prompt in enumerate(prompts):
        n_text = backbone.tokenize(prompt).numel()
        assert inputs.extra_positions["query"][b].tolist() == list(range(32 + n_text, 32 + n_text + 5))
        assert int(inputs.attention_mask[b].sum()) == 32 + n_text + 5
    torch.testing.assert_close(
        inputs.inputs_embeds[:, 1:33], backbone.encode_images(images).reshape(2, 32, -1)
    )


def test_hidden_states_equal_the_language_models_own_forward(backbone):
    images = torch.rand(1, 1, 3, 32, 32)
    out = backbone(images, [prismatic_prompt("open the drawer")])
    ref = backbone.llm(inputs_embeds=out.inputs.inputs_embeds, output_hidden_states=True)
    assert len(out.hidden_states) == backbone.num_layers + 1
    for ours, theirs in zip(out.hidden_states, ref.hidden_states, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_from_parts_takes_each_towers_second_to_last_block_patch_tokens(tmp_path):
    """Full published-style towers (3 blocks) saved separately: the backbone keeps 2 blocks, and its patch
    features equal the towers' own hidden_states[-2] without CLS/register tokens."""
    from lerobot_vla_tools.testing.tokenizers import train_byte_level_bpe
    from transformers import (
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        Qwen2Config,
        Qwen2Model,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    dino = Dinov2WithRegistersModel(
        Dinov2WithRegistersConfig(
            hidden_size=16, num_hidden_layers=3, num_attention_heads=2, image_size=32, patch_size=8
        )
    ).eval()
    siglip = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=24,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    ).eval()
    tok = train_byte_level_bpe(vocab_size=300)
    llm = Qwen2Model(
        Qwen2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
            vocab_size=len(tok),
        )
    )
    for name, m in (("dino", dino), ("siglip", siglip), ("llm", llm)):
        m.save_pretrained(tmp_path / name)
    tok.save_pretrained(tmp_path / "llm")
    bb = PrismaticBackbone.from_parts(
        str(tmp_path / "dino"), str(tmp_path / "siglip"), str(tmp_path / "llm")
    ).eval()
    assert (bb.dino.config.num_hidden_layers, bb.siglip.config.num_hidden_layers) == (2, 2)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        d = dino(((x - bb._dino_mean) / bb._dino_std), output_hidden_states=True).hidden_states[-2][
            :, 1 + 4 :
        ]
        s = siglip(((x - 0.5) / 0.5), output_hidden_states=True).hidden_states[-2]
        expected = bb.projector(torch.cat([d, s], dim=-1))
        got = bb.encode_images(x[:, None])[:, 0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
